"""What conditions and templates see of one event of one user (campaigns/README.md).

`event`, `profile`, `session` and `user`. The session and user views are built the
first time a condition or template reads them, once per event, so an event that no
condition looks at costs no views (and no session id hash).
"""

from typing import Any

from rtm import sessions
from rtm.expressions import NAMES, Scope
from rtm.state import UserState


class EventScope(Scope):
    """The names for one event (real or synthetic) of one user, views built on first use."""

    __slots__ = ("event", "user", "profile", "first_time", "_session", "_user")

    def __init__(self, event: dict[str, Any], user: UserState, profile: dict[str, Any], first_time: bool) -> None:
        super().__init__()
        self.event = event
        self.user = user
        self.profile = profile
        self.first_time = first_time
        self._session: dict[str, Any] | None = None
        self._user: dict[str, Any] | None = None

    def for_event(self, event: dict[str, Any]) -> "EventScope":
        """The scope of a later (synthetic) event of the same user in the same call."""
        return EventScope(event, self.user, self.profile, False)

    def get(self, name: str, default: Any = None) -> Any:
        if name == "event":
            return self.event
        if name == "session":
            if self._session is None:
                user = self.user
                self._session = sessions.view(user.session, user.key)
            return self._session
        if name == "profile":
            return self.profile
        if name == "user":
            if self._user is None:
                self._user = user_view(self.user, self.first_time)
            return self._user
        return default

    def names(self) -> tuple[str, ...]:
        return NAMES


def user_view(user: UserState, first_time: bool) -> dict[str, Any]:
    """The user as conditions see it (`user.known`, `user.first_time`, ...)."""
    return {"key": user.key, "known": user.user_id is not None, "anonymous": user.user_id is None,
            "first_time": first_time, "returning": not first_time, "first_seen": user.first_seen,
            "sessions": user.sessions}
