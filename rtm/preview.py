"""The engine over files, no Flink: what `rtm campaigns preview` runs.

It calls the very apply_event/settle the Flink job calls, one user state per key,
events in file order, most users' states decoded (UserStates); at the end
event time stops at the largest event time (or `until`) and everything due by then is
settled (docs/CONTRACTS.md, "Time").
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtm.campaigns import CampaignSet
from rtm.engine import DEFAULT_CONFIG, EngineConfig, Result, apply_event, settle, without_cycle_collection
from rtm.events import Event, InvalidEvent, InvalidProfile, parse_event, parse_profile
from rtm.records import Conversion, SessionRecord, Suppressed, Trigger
from rtm.state import UserState, decode_state, encode_state
from rtm.time_rules import DEFAULT_MAX_FUTURE_MS, too_far_ahead

OnError = Callable[[str], None]
DECODED_USERS = 100_000  # users whose states preview keeps decoded at most (UserStates)


@dataclass
class PreviewResult:
    triggers: list[Trigger] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)  # over a channel cap of the policy
    sessions: list[SessionRecord] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # triggers outside a send window that could not be held
    events: int = 0
    duplicates: int = 0
    late: int = 0  # too far behind the user's latest event (EngineConfig.allowed_lateness_ms)
    after_until: int = 0  # events later than `until`, not applied
    users: int = 0


def read_events(path: Path, on_error: OnError, max_future_ms: int = DEFAULT_MAX_FUTURE_MS) -> Iterator[Event]:
    """Events of a JSONL file; a bad line is reported (file:line: reason) and skipped, as is
    an event more than `max_future_ms` ahead of the largest event time before it (the
    clock-skew rule over files, as the backtest applies it)."""
    newest = None
    for lineno, line in _lines(path):
        try:
            event = parse_event(line)
        except InvalidEvent as err:
            on_error(f"{path}:{lineno}: {err}")
            continue
        refused = too_far_ahead(event.ts, newest, max_future_ms, "the largest event time before it")
        if refused:
            on_error(f"{path}:{lineno}: {refused}")
            continue
        if newest is None or event.ts > newest:
            newest = event.ts
        yield event


def read_profiles(path: Path, on_error: OnError) -> dict[str, dict[str, Any]]:
    """Profiles of a JSONL file by user_id; a later line for a user replaces the earlier."""
    profiles = {}
    for lineno, line in _lines(path):
        try:
            profile = parse_profile(line)
        except InvalidProfile as err:
            on_error(f"{path}:{lineno}: {err}")
        else:
            profiles[profile["user_id"]] = profile
    return profiles


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield lineno, line


def run_preview(campaigns: CampaignSet, events: Iterable[Event], profiles: Mapping[str, dict[str, Any]],
                until: int | None = None, config: EngineConfig = DEFAULT_CONFIG,
                decoded_users: int = DECODED_USERS, sessions: bool = True) -> PreviewResult:
    """Without `sessions`, the session records are not made (out.sessions stays empty). No
    timers are armed here: each event settles what is due before it."""
    out = PreviewResult()
    states = UserStates(decoded_users)
    latest = None
    applied = 0  # out.events, counted in a local: this loop runs once per event
    with without_cycle_collection():
        for event in events:
            ts = event.ts
            if until is not None and ts > until:
                out.after_until += 1
                continue
            key = event.key
            applied += 1
            user = states.get(key)
            _collect(out, states, key, user, apply_event(user, event, campaigns, profiles.get(key), config,
                                                         timer=False, session_records=sessions))
            if latest is None or ts > latest:
                latest = ts
        out.events = applied
        out.users = len(states)
        end = latest if until is None else until
        if end is not None:
            for key in sorted(states.keys()):
                user = states.get(key)
                _collect(out, states, key, user, settle(user, end, campaigns, profiles.get(key), config,
                                                        timer=False, session_records=sessions))
    return out


class UserStates:
    """The users' states by key: up to `decoded` of them as UserStates (about 1.3 KB each),
    the others encoded as the job keeps them (about 0.2 KB), so that memory stays bounded
    over a file of millions of users. Past the limit the user decoded first goes back to
    bytes (no reordering per event: that cost more than it saved)."""

    def __init__(self, decoded: int) -> None:
        self._decoded: dict[str, UserState] = {}
        self._encoded: dict[str, bytes] = {}
        self._limit = decoded

    def get(self, key: str) -> UserState | None:
        """The user's state, for a call that changes it in place (then `put` it)."""
        user = self._decoded.get(key)
        if user is None:
            data = self._encoded.pop(key, None)
            if data is not None:
                user = decode_state(data)
                self._keep(key, user)
        return user

    def put(self, key: str, user: UserState | None, given: UserState | None) -> None:
        """The user's state after a call that `get` gave `given` (None: forget the user)."""
        if user is None:
            self._decoded.pop(key, None)
            self._encoded.pop(key, None)
        elif user is not given or not self._limit:  # else kept decoded since `get` (the common case: no work)
            self._keep(key, user)

    def _keep(self, key: str, user: UserState) -> None:
        decoded = self._decoded
        decoded[key] = user
        if len(decoded) > self._limit:
            first = next(iter(decoded))
            self._encoded[first] = encode_state(decoded.pop(first))

    def keys(self) -> set[str]:
        return self._decoded.keys() | self._encoded.keys()

    def __len__(self) -> int:
        return len(self._decoded) + len(self._encoded)


def _collect(out: PreviewResult, states: UserStates, key: str, user: UserState | None, result: Result) -> None:
    """Keep the user's state (`user`: the one the call was given) and gather the call's outputs."""
    states.put(key, result.user, user)
    # Most calls bring nothing: test before extending (this runs once per event).
    if result.triggers:
        out.triggers += result.triggers
    if result.sessions:
        out.sessions += result.sessions
    if result.suppressed:
        out.suppressed += result.suppressed
    if result.conversions:
        out.conversions += result.conversions
    if result.errors:
        out.errors += result.errors
    if result.dropped:
        out.dropped += result.dropped
    if result.duplicate:
        out.duplicates += 1
    if result.late:
        out.late += 1
