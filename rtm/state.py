"""One user's engine state, as the Flink job keeps it between calls (msgpack bytes).

It holds, per campaign, only the partial match (state number, start, matched ids, the
bound fields later conditions read, the absence deadline), the caps and the trigger
waiting for its goal; the triggers held for a send window; and the sends per channel
the policy caps: never the events themselves. The layout is what savepoints hold:
change it only compatibly.
A state is a tree, never a cycle, so the garbage collector need not track it (gc=False):
one is decoded per event.
"""

from typing import Any

import msgspec

from rtm.events import user_key
from rtm.sessions import Session


class Run(msgspec.Struct, array_like=True, gc=False):
    """A partial match: where it is, since when, and what later steps need."""

    state: int
    start: int
    session: int  # session index at the first step (same_session)
    ids: list[str] = []
    binds: dict[str, dict[str, Any]] = {}
    deadline: int | None = None  # set while waiting for the absence


class GoalWait(msgspec.Struct, array_like=True, gc=False):
    """The latest trigger of a campaign with a goal, until the goal is reached or its time runs out."""

    trigger_id: str
    at: int  # the trigger's event time
    variant: str | None
    holdout: bool


class Progress(msgspec.Struct, array_like=True, gc=False):
    """One user's standing with one campaign."""

    fingerprint: int
    run: Run | None = None
    fired: int = 0  # completions ever (lifetime caps, reenter)
    recent: list[int] = []  # times of recent completions (cap per period, cooldown)
    muted: int = 0  # session index in which `audience.exclude` suppressed the campaign
    fired_session: int = 0  # session index of the latest completion (`per: session` caps)...
    fired_in_session: int = 0  # ...and completions in that session
    goal: GoalWait | None = None  # rtm.goals


class Held(msgspec.Struct, array_like=True, gc=False):
    """A trigger completed outside its campaign's send window, until the window opens (rtm.send_windows)."""

    release: int  # event time the window opens
    campaign_id: str
    trigger: bytes  # the trigger, msgpack-encoded, scheduled_for not yet set


class Sends(msgspec.Struct, array_like=True, gc=False):
    """A user's triggers on one channel the policy caps (rtm.arbitration)."""

    recent: list[int] = []  # times sent, within the channel's longest cap period
    session: int = 0  # session index of the latest send...
    in_session: int = 0  # ...and sends in that session


class UserState(msgspec.Struct, array_like=True, gc=False):
    last_seen: int  # largest event time applied
    first_seen: int
    user_id: str | None
    anonymous_id: str | None
    sessions: int = 0  # sessions so far; the open one has this index
    session: Session | None = None  # None once closed
    seen: dict[int, int] = {}  # hash(event_id) -> ts, oldest first, for dedup
    progress: dict[str, Progress] = {}
    held: list[Held] = []  # in release order
    sent: dict[str, Sends] = {}  # channel -> sends, for the policy's channel caps

    @property
    def key(self) -> str:
        return user_key(self.user_id, self.anonymous_id)  # type: ignore[return-value]


encode_state = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(UserState).decode


def decode_state(state: bytes | None) -> UserState | None:
    return _decode(state) if state else None
