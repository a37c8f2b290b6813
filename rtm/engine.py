"""The per-user engine: apply one event, or settle what is due by a time.

The Flink job keeps one serialised UserState per user key and calls apply_event for
each event and settle when the user's timer fires; preview calls the same functions
over files, so both give the same triggers. Rules of time: DESIGN.md, "Time".

State holds, per campaign, only the partial match (state number, start, matched ids,
the bound fields later conditions read, the absence deadline) and the caps: never the
events themselves. A user has at most one partial match per campaign; while it lasts,
new starts of that campaign are not tracked.
"""

import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgspec

from rtm import sessions
from rtm.campaigns import Campaign, CampaignSet
from rtm.events import Event, event_dict
from rtm.expressions import Scope, prune
from rtm.patterns import Transition
from rtm.sessions import Session
from rtm.triggers import in_holdout, make_trigger, trigger_id

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
_EMPTY_PROFILE: dict[str, Any] = {"segments": [], "attributes": {}}


@dataclass(frozen=True)
class EngineConfig:
    session_gap_ms: int = 30 * MINUTE
    dedup_horizon_ms: int = HOUR  # an event id seen this long before the latest event is a duplicate
    dedup_max_ids: int = 128  # and at most this many ids are kept
    idle_expiry_ms: int = 30 * DAY  # a user quiet this long is forgotten (caps and first-seen included)
    # An event older than the user's latest by more than this is not applied (result.late): caps
    # and settled deadlines could not be honoured for it. Keep it above the job's watermark delay.
    allowed_lateness_ms: int = 5 * MINUTE
    page_view_type: str = "page_view"  # counted in session.pages
    max_emit_depth: int = 4  # synthetic events feeding campaigns that emit again, at most this deep


class Run(msgspec.Struct, array_like=True):
    """A partial match: where it is, since when, and what later steps need."""

    state: int
    start: int
    session: int  # session index at the first step (same_session)
    ids: list[str] = []
    binds: dict[str, dict[str, Any]] = {}
    deadline: int | None = None  # set while waiting for the absence


class Progress(msgspec.Struct, array_like=True):
    """One user's standing with one campaign."""

    fingerprint: int
    run: Run | None = None
    fired: int = 0  # completions ever (lifetime caps, reenter)
    recent: list[int] = []  # times of recent completions (cap per period, cooldown)
    muted: int = 0  # session index in which `audience.exclude` suppressed the campaign


class UserState(msgspec.Struct, array_like=True):
    last_seen: int  # largest event time applied
    first_seen: int
    user_id: str | None
    anonymous_id: str | None
    sessions: int = 0  # sessions so far; the open one has this index
    session: Session | None = None  # None once closed
    seen: dict[int, int] = {}  # hash(event_id) -> ts, oldest first, for dedup
    progress: dict[str, Progress] = {}

    @property
    def key(self) -> str:
        return self.user_id or self.anonymous_id  # type: ignore[return-value]


@dataclass
class Result:
    """What one call changed. `state` None means: clear the user's state."""

    state: bytes | None
    next_deadline: int | None  # arm the user's one timer here (event time), or none
    triggers: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    duplicate: bool = False  # the event was a duplicate and was dropped
    late: bool = False  # the event was too far behind the user's latest event and was dropped
    errors: list[str] = field(default_factory=list)  # conditions/templates that failed on this data


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(UserState)
DEFAULT_CONFIG = EngineConfig()


def decode_state(state: bytes | None) -> UserState | None:
    return _decoder.decode(state) if state else None


def apply_event(state: bytes | None, event: Event, campaigns: CampaignSet, profile: dict[str, Any] | None,
                config: EngineConfig = DEFAULT_CONFIG) -> Result:
    """Settle what is due by the event's time, then apply the event (unless a duplicate)."""
    user = decode_state(state)
    id_hash = _id_hash(event.event_id)
    if user is not None:
        if id_hash in user.seen:
            return Result(state, _next_deadline(user, config), duplicate=True)
        if event.ts < user.last_seen - config.allowed_lateness_ms:
            return Result(state, _next_deadline(user, config), late=True)
    step = _Pass(user, campaigns, profile, config)
    step.settle(event.ts)
    step.apply(event, id_hash)
    return step.result()


def settle(state: bytes | None, now: int, campaigns: CampaignSet, profile: dict[str, Any] | None,
           config: EngineConfig = DEFAULT_CONFIG) -> Result:
    """Fire what is due at or before `now` (event time): deadlines, session end, expiry."""
    step = _Pass(decode_state(state), campaigns, profile, config)
    step.settle(now)
    return step.result()


def _id_hash(event_id: str) -> int:
    # 8 bytes instead of the id keeps the dedup set small; collisions are negligible.
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


def _expires_at(user: UserState, config: EngineConfig) -> int:
    deadlines = [p.run.deadline for p in user.progress.values() if p.run and p.run.deadline is not None]
    return max([user.last_seen + config.idle_expiry_ms, *deadlines])


def _next_deadline(user: UserState | None, config: EngineConfig) -> int | None:
    if user is None:
        return None
    due = _next_due(user, config)
    return due[0] if due else None


def _next_due(user: UserState, config: EngineConfig) -> tuple[int, int, str] | None:
    """The earliest pending item: (time, kind, campaign id); kinds sort deadlines first."""
    items = [(p.run.deadline, 0, cid) for cid, p in user.progress.items() if p.run and p.run.deadline is not None]
    if user.session is not None:
        items.append((user.session.last + config.session_gap_ms, 1, ""))
    items.append((_expires_at(user, config), 2, ""))
    return min(items)


class _Pass:
    """One apply_event or settle call on one user's state."""

    def __init__(self, user: UserState | None, campaigns: CampaignSet, profile: dict[str, Any] | None,
                 config: EngineConfig) -> None:
        self.user = user
        self.campaigns = campaigns
        self.profile = profile or _EMPTY_PROFILE
        self.config = config
        self.triggers: list[dict[str, Any]] = []
        self.sessions: list[dict[str, Any]] = []
        self.errors: list[str] = []
        if user is not None:
            self._reconcile()

    def result(self) -> Result:
        state = None
        if self.user is not None:
            self._compact()
            state = _encoder.encode(self.user)
        return Result(state, _next_deadline(self.user, self.config), self.triggers, self.sessions,
                      errors=self.errors)

    def _reconcile(self) -> None:
        """Drop state of retired campaigns and partial matches of replaced versions."""
        progress = self.user.progress
        for cid in list(progress):
            campaign = self.campaigns.get(cid)
            if campaign is None:
                del progress[cid]
            elif progress[cid].fingerprint != campaign.fingerprint:
                progress[cid].fingerprint = campaign.fingerprint
                progress[cid].run = None

    def _compact(self) -> None:
        """Forget campaign standings that can no longer change an outcome."""
        user = self.user
        oldest_next = user.last_seen - self.config.allowed_lateness_ms  # the oldest event still applied
        for cid, p in list(user.progress.items()):
            if p.run is not None:
                continue
            limits = self.campaigns.get(cid).limits
            keep = max(limits.per or 0, limits.cooldown or 0)
            if not ((p.muted == user.sessions and user.session is not None)
                    or (limits.lifetime_cap is not None and p.fired)
                    or any(t > oldest_next - keep for t in p.recent)):
                del user.progress[cid]

    # -- time -------------------------------------------------------------------------

    def settle(self, now: int) -> None:
        while self.user is not None:
            due = _next_due(self.user, self.config)
            if due[0] > now:
                return
            at, kind, cid = due
            if kind == 0:
                self._absence_passed(cid, at)
            elif kind == 1:
                self._close_session()
            else:
                self.user = None  # idle too long: forget the user

    def _close_session(self) -> None:
        user = self.user
        self.sessions.append(sessions.record("session_end", user.session, user.key, user.user_id, user.anonymous_id))
        user.session = None

    def _absence_passed(self, cid: str, at: int) -> None:
        progress = self.user.progress[cid]
        run = progress.run
        run.deadline = None
        marker = self._synthetic_event("absence", f"absence:{cid}:{at}", at, {})
        self._complete(self.campaigns.get(cid), progress, run, marker, self._scope(marker), marker_id=marker["event_id"])

    # -- events -----------------------------------------------------------------------

    def apply(self, event: Event, id_hash: int) -> None:
        ts, first_time = event.ts, self.user is None
        is_page = event.type == self.config.page_view_type
        if self.user is None:
            self.user = UserState(ts, ts, event.user_id, event.anonymous_id)
        user = self.user
        user.last_seen = max(user.last_seen, ts)
        user.user_id, user.anonymous_id = event.user_id, event.anonymous_id
        if user.session is None:
            user.sessions += 1
            user.session = sessions.open_session(user.sessions, ts, is_page, event.context.get("platform"))
            self.sessions.append(sessions.record("session_start", user.session, user.key, user.user_id,
                                                 user.anonymous_id))
        else:
            sessions.touch(user.session, ts, is_page)
        self._remember(id_hash, ts)
        as_dict = event_dict(event)
        self._feed(as_dict, self._scope(as_dict, first_time), synthetic=False, depth=0)

    def _remember(self, id_hash: int, ts: int) -> None:
        seen = self.user.seen
        seen[id_hash] = ts
        cutoff = self.user.last_seen - self.config.dedup_horizon_ms
        while len(seen) > self.config.dedup_max_ids or next(iter(seen.values())) < cutoff:
            del seen[next(iter(seen))]

    def _scope(self, event: dict[str, Any], first_time: bool = False) -> Scope:
        user = self.user
        return Scope({
            "event": event,
            "profile": self.profile,
            "session": sessions.view(user.session, user.key),
            "user": {"key": user.key, "known": user.user_id is not None, "anonymous": user.user_id is None,
                     "first_time": first_time, "returning": not first_time, "first_seen": user.first_seen,
                     "sessions": user.sessions},
        })

    def _feed(self, event: dict[str, Any], scope: Scope, synthetic: bool, depth: int) -> None:
        """Offer one event to the campaigns that consume its type, in campaign id order."""
        etype = event["type"]
        visit = {c.id: c for c in self.campaigns.starting(etype, synthetic)}
        for cid, progress in self.user.progress.items():
            run = progress.run
            if run is not None and cid not in visit:
                campaign = self.campaigns.get(cid)
                wakes = campaign.wakes[campaign.pattern.waiting if run.deadline is not None else run.state]
                if wakes.has(etype, synthetic):
                    visit[cid] = campaign
        emitted: list[dict[str, Any]] = []
        errors = self.errors
        for cid in sorted(visit):
            reported = len(errors)
            self._visit(visit[cid], event, scope, synthetic, emitted)
            errors[reported:] = [f"{cid}: {e} (event {event['event_id']})" for e in errors[reported:]]
        for signal in emitted:
            if depth >= self.config.max_emit_depth:
                self.errors.append(f"synthetic event {signal['type']!r} dropped: emits nested deeper than "
                                   f"{self.config.max_emit_depth}; check campaigns that emit what they listen to")
                continue
            self._feed(signal, self._scope(signal), synthetic=True, depth=depth + 1)

    def _visit(self, campaign: Campaign, event: dict[str, Any], scope: Scope, synthetic: bool,
               emitted: list[dict[str, Any]]) -> None:
        user, pattern, errors = self.user, campaign.pattern, self.errors
        etype, ts = event["type"], event["ts"]
        progress = user.progress.get(campaign.id)
        run = progress.run if progress else None
        if not synthetic and any(f.matches(etype, False, scope, errors, "audience.exclude")
                                 for f in campaign.audience.exclude):
            progress = self._progress(campaign)
            progress.muted, progress.run = user.sessions, None
            return
        if run is not None and ((pattern.within is not None and ts - run.start > pattern.within)
                                or (pattern.same_session and not synthetic and run.session != user.sessions)):
            run = progress.run = None
        if run is not None:
            run_scope = _with_binds(scope, run)
            if pattern.cancels(etype, synthetic, run_scope, errors):
                run = progress.run = None
            elif run.deadline is not None:
                if not pattern.absence.filter.matches(etype, synthetic, run_scope, errors, "pattern.absence"):
                    return
                run = progress.run = None  # the absence is broken: the event may start a new match
            else:
                transition = pattern.next_transition(run.state, etype, synthetic, run_scope, errors)
                if transition is not None:
                    self._advance(campaign, progress, run, transition, event, scope, emitted)
                return
        if not campaign.wakes[0].has(etype, synthetic) or not self._may_enter(campaign, progress):
            return
        transition = pattern.next_transition(0, etype, synthetic, scope, errors)
        if transition is None or not campaign.audience.admits(scope.vars["user"], self.profile, scope, errors):
            return
        progress = self._progress(campaign)
        progress.run = Run(0, ts, user.sessions)
        self._advance(campaign, progress, progress.run, transition, event, scope, emitted)

    def _progress(self, campaign: Campaign) -> Progress:
        progress = self.user.progress.get(campaign.id)
        if progress is None:
            progress = self.user.progress[campaign.id] = Progress(campaign.fingerprint)
        return progress

    def _may_enter(self, campaign: Campaign, progress: Progress | None) -> bool:
        if progress is None:
            return True
        cap = campaign.limits.lifetime_cap
        return progress.muted != self.user.sessions and (cap is None or progress.fired < cap)

    def _advance(self, campaign: Campaign, progress: Progress, run: Run, transition: Transition,
                 event: dict[str, Any], scope: Scope, emitted: list[dict[str, Any]]) -> None:
        if transition.target == 0:  # a state machine back in its initial state
            progress.run = None
            return
        run.state = transition.target
        run.ids.append(event["event_id"])
        del run.ids[:-campaign.pattern.max_ids]
        if transition.bind in campaign.bind_paths:
            run.binds[transition.bind] = prune(event, campaign.bind_paths[transition.bind])
        if run.state in campaign.pattern.final:
            self._complete(campaign, progress, run, event, scope, emitted)

    def _complete(self, campaign: Campaign, progress: Progress, run: Run, event: dict[str, Any], scope: Scope,
                  emitted: list[dict[str, Any]] | None = None, marker_id: str | None = None) -> None:
        """The pattern's last step matched (or its absence deadline passed)."""
        pattern, ts = campaign.pattern, event["ts"]
        if pattern.absence is not None and marker_id is None:
            run.deadline = ts + pattern.absence.for_ms
            if pattern.within is not None and run.deadline - run.start > pattern.within:
                progress.run = None  # the absence would end outside the window
            return
        progress.run = None
        if not self._allowed(campaign, progress, ts):
            return
        ids = [*run.ids, marker_id] if marker_id else run.ids
        scope = _with_binds(scope, run)
        user = self.user
        try:
            if campaign.action is not None:
                action = campaign.action
                trigger = make_trigger(
                    campaign_id=campaign.id, version=campaign.version, user_key=user.key, user_id=user.user_id,
                    anonymous_id=user.anonymous_id, channel=action.channel, endpoint=action.endpoint,
                    message=action.message.render(scope), data=action.data.render(scope), matched_event_ids=ids,
                    event_time=ts, holdout=in_holdout(user.key, campaign.id, campaign.limits.holdout))
            else:
                params = campaign.emit.params.render(scope)
        except Exception as err:  # noqa: BLE001 - a template failing on this user's data
            self.errors.append(f"rendering failed, no trigger: {type(err).__name__}: {err}")
            return
        self._count_completion(campaign, progress, ts)
        if campaign.action is not None:
            self.triggers.append(trigger)
            return
        signal = self._synthetic_event(campaign.emit.event,
                                       f"{campaign.emit.event}:{trigger_id(campaign.id, campaign.version, user.key, ids)}",
                                       ts, params)
        if emitted is None:  # fired by a deadline: feed it now
            self._feed(signal, self._scope(signal), synthetic=True, depth=1)
        else:
            emitted.append(signal)

    def _allowed(self, campaign: Campaign, progress: Progress, ts: int) -> bool:
        limits = campaign.limits
        if progress.muted == self.user.sessions or (limits.lifetime_cap is not None
                                                    and progress.fired >= limits.lifetime_cap):
            return False
        if limits.cooldown is not None and progress.recent and ts - progress.recent[-1] < limits.cooldown:
            return False
        if limits.per is not None and sum(t > ts - limits.per for t in progress.recent) >= limits.max:
            return False
        return True

    def _count_completion(self, campaign: Campaign, progress: Progress, ts: int) -> None:
        limits = campaign.limits
        progress.fired += 1
        keep = max(limits.per or 0, limits.cooldown or 0)
        if keep:
            progress.recent = [t for t in progress.recent if t > ts - keep] + [ts]

    def _synthetic_event(self, etype: str, event_id: str, ts: int, params: dict[str, Any]) -> dict[str, Any]:
        return {"event_id": event_id, "type": etype, "ts": ts, "user_id": self.user.user_id,
                "anonymous_id": self.user.anonymous_id, "params": params, "context": {}}


def _with_binds(scope: Scope, run: Run) -> Scope:
    return Scope({**scope.vars, **run.binds}) if run.binds else scope
