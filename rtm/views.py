"""What conditions and templates see of one event of one user (campaigns/README.md).

`event`, `profile`, `session` and `user`. The event as a dict and the session and user
views are built the first time a condition or template reads them, at most once per
event, so an event that no condition looks at costs none of them; the session's id (a
hash) is left out unless some campaign reads it (CampaignSet.reads_session_id).
"""

from typing import Any

from rtm import sessions
from rtm.events import Event, event_dict
from rtm.expressions import NAMES, Scope
from rtm.state import UserState


class EventScope(Scope):
    """The names for one event (parsed, or a synthetic dict) of one user, built on first use.

    `type`, `ts` and `event_id` are the event's, for the engine.
    """

    __slots__ = ("type", "ts", "event_id", "user", "profile", "first_time", "session_id", "_parsed", "_event",
                 "_session", "_user")

    def __init__(self, event: Event | dict[str, Any], user: UserState, profile: dict[str, Any], first_time: bool,
                 session_id: bool) -> None:
        self._context = None  # Scope's: no super().__init__(), this runs for every event
        if type(event) is dict:
            self.type, self.ts, self.event_id = event["type"], event["ts"], event["event_id"]
            self._parsed, self._event = None, event
        else:
            self.type, self.ts, self.event_id = event.type, event.ts, event.event_id
            self._parsed, self._event = event, None
        self.user = user
        self.profile = profile
        self.first_time = first_time
        self.session_id = session_id  # whether the session view carries its id
        self._session: dict[str, Any] | None = None
        self._user: dict[str, Any] | None = None

    def for_event(self, event: dict[str, Any]) -> "EventScope":
        """The scope of a later (synthetic) event of the same user in the same call."""
        return EventScope(event, self.user, self.profile, False, self.session_id)

    @property
    def event(self) -> dict[str, Any]:
        if self._event is None:
            self._event = event_dict(self._parsed)
        return self._event

    def get(self, name: str, default: Any = None) -> Any:
        if name == "event":
            return self._event if self._event is not None else self.event
        if name == "session":
            if self._session is None:
                user = self.user
                # The user key only for the id: a campaign set that never reads it skips both.
                self._session = sessions.view(user.session, user.key if self.session_id else None)
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
