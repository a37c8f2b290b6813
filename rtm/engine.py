"""The per-user engine: apply one event, or settle what is due by a time.

The Flink job keeps one serialised UserState (rtm.state) per user key and calls
apply_event for each event and settle when the user's timer fires; preview calls the
same functions over files, so both give the same triggers. Rules of time: docs/CONTRACTS.md,
"Time". A call changes the UserState it is given, in place, and returns it (decoding and
encoding are the caller's: the job decodes a user once per batch, preview never). One
call: settle what falls due (rtm.schedule), offer the
event to each campaign that consumes its type (one rtm.matcher step each, higher
priority first), fire the completed matches the caps allow (rtm.caps) now or when their
send window opens (rtm.send_windows), and as they leave, suppress those over the policy's
channel caps (rtm.arbitration); record the goals reached (rtm.goals).
"""

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import xxhash

from rtm import arbitration, caps, goals, send_windows, sessions
from rtm.campaigns import Campaign, CampaignSet, visit_order
from rtm.events import Event
from rtm.matcher import AWAITING, COMPLETED, IGNORED, step
from rtm.patterns import INITIAL
from rtm.records import Conversion, SessionRecord, Suppressed, Trigger
from rtm.schedule import ABSENCE, RELEASE, SESSION_END, absence_deadlines, next_due, nothing_due
from rtm.state import GoalWait, Progress, Run, UserState, decode_state, encode_state
from rtm.triggers import in_holdout, make_trigger, trigger_id
from rtm.variants import assign
from rtm.views import EventScope

__all__ = ["DEFAULT_CONFIG", "EngineConfig", "Result", "apply_event", "decode_state", "encode_state", "settle",
           "without_cycle_collection"]

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
_EMPTY_PROFILE: dict[str, Any] = {"segments": [], "attributes": {}}


@dataclass(frozen=True, slots=True)  # slots: its fields are read several times per event
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


class Result(msgspec.Struct, gc=False):  # a Struct: one per call, and cheaper to make than a dataclass
    """What one call changed. `user` is the state given, changed, or a new one; None means:
    forget the user (clear the state)."""

    user: UserState | None
    next_deadline: int | None  # arm the user's one timer here (event time), or none (or not asked for)
    triggers: list[Trigger] = []
    sessions: list[SessionRecord] | None = []  # None: not asked for
    conversions: list[Conversion] = []  # goals reached (rtm.goals)
    suppressed: list[Suppressed] = []  # triggers over a channel cap of the policy (rtm.arbitration)
    dropped: list[str] = []  # triggers outside their send window that could not be held, and why
    duplicate: bool = False  # the event was a duplicate and was dropped
    late: bool = False  # the event was too far behind the user's latest event and was dropped
    errors: list[str] = []  # conditions/templates that failed on this data


DEFAULT_CONFIG = EngineConfig()


def apply_event(user: UserState | None, event: Event, campaigns: CampaignSet, profile: dict[str, Any] | None,
                config: EngineConfig = DEFAULT_CONFIG, *, timer: bool = True, session_records: bool = True) -> Result:
    """Settle what is due by the event's time, then apply the event (unless a duplicate).
    `user` is changed in place; after an exception it may be half changed: decode it again.
    Without `timer` the result has no next_deadline, without `session_records` no sessions:
    a caller that arms no timers and keeps no sessions (preview) skips their cost."""
    id_hash = _id_hash(event.event_id)
    if user is not None:
        if id_hash in user.seen:
            return Result(user, _next_deadline(user, absence_deadlines(user), config) if timer else None,
                          duplicate=True)
        if event.ts < user.last_seen - config.allowed_lateness_ms:
            return Result(user, _next_deadline(user, absence_deadlines(user), config) if timer else None, late=True)
    out = Result(None, None) if session_records else Result(None, None, sessions=None)
    profile = profile or _EMPTY_PROFILE
    deadlines: dict[str, int] = {}
    if user is not None:
        if user.progress:
            deadlines = _reconcile(user, campaigns)
        user = _settle(user, deadlines, event.ts, campaigns, profile, config, out)
    user = _apply(user, deadlines, event, id_hash, campaigns, profile, config, out)
    return _finish(user, deadlines, campaigns, config, out, timer)


def settle(user: UserState | None, now: int, campaigns: CampaignSet, profile: dict[str, Any] | None,
           config: EngineConfig = DEFAULT_CONFIG, *, timer: bool = True, session_records: bool = True) -> Result:
    """Fire what is due at or before `now` (event time): deadlines, session end, expiry.
    `user` is changed in place, as by apply_event; `timer` and `session_records` as there."""
    out = Result(None, None) if session_records else Result(None, None, sessions=None)
    deadlines: dict[str, int] = {}
    if user is not None:
        deadlines = _reconcile(user, campaigns)
        user = _settle(user, deadlines, now, campaigns, profile or _EMPTY_PROFILE, config, out)
    return _finish(user, deadlines, campaigns, config, out, timer)


@contextmanager
def without_cycle_collection() -> Iterator[None]:
    """The engine makes no reference cycles (its states are trees), so the cyclic garbage
    collector would only walk the states, triggers and sessions a run holds, again and
    again: ~10% of a preview's time. Callers pause it around their calls (preview for the
    whole run, the job per batch); reference counting frees everything as before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_xxh3 = xxhash.xxh3_64_intdigest  # one lookup, not one per event


def _id_hash(event_id: str) -> int:
    # 8 bytes instead of the id keeps the dedup set small; collisions are negligible. xxh3,
    # not blake2b: measured 0.11 against 1.28 us, per event.
    return _xxh3(event_id.encode())


def _next_deadline(user: UserState, deadlines: dict[str, int], config: EngineConfig) -> int:
    return next_due(user, deadlines, config.session_gap_ms, config.idle_expiry_ms)[0]


def _reconcile(user: UserState, campaigns: CampaignSet) -> dict[str, int]:
    """Drop state of retired campaigns and partial matches of replaced versions; return the
    absence deadlines of the matches left (as schedule.absence_deadlines, in the same pass)."""
    retired = None
    deadlines = {}
    for cid, progress in user.progress.items():
        campaign = campaigns.get(cid)
        if campaign is None:
            retired = [cid] if retired is None else [*retired, cid]
        elif progress.fingerprint != campaign.fingerprint:
            progress.fingerprint = campaign.fingerprint
            progress.run = None
        elif progress.run is not None and progress.run.deadline is not None:
            deadlines[cid] = progress.run.deadline
    for cid in retired or ():
        del user.progress[cid]
    return deadlines


def _finish(user: UserState | None, deadlines: dict[str, int], campaigns: CampaignSet, config: EngineConfig,
            out: Result, timer: bool) -> Result:
    if user is not None:
        if user.progress or user.sent:
            _compact(user, campaigns, config)
        out.user = user
        if timer:
            out.next_deadline = _next_deadline(user, deadlines, config)
    return out


def _compact(user: UserState, campaigns: CampaignSet, config: EngineConfig) -> None:
    """Forget campaign standings that can no longer change an outcome."""
    oldest_next = user.last_seen - config.allowed_lateness_ms  # the oldest event still applied
    open_session = user.sessions if user.session is not None else None
    if user.sent:
        arbitration.forget_spent(campaigns.policy, user, oldest_next)
    spent = None
    for cid, progress in user.progress.items():
        if progress.goal is not None and not goals.still_open(campaigns.goals.get(cid), progress.goal, oldest_next):
            progress.goal = None
        if progress.run is None and progress.goal is None and not caps.still_counts(
                campaigns.get(cid).limits, progress, open_session, oldest_next):
            spent = [cid] if spent is None else [*spent, cid]
    for cid in spent or ():
        del user.progress[cid]


# -- time -----------------------------------------------------------------------------


def _settle(user: UserState, deadlines: dict[str, int], now: int, campaigns: CampaignSet, profile: dict[str, Any],
            config: EngineConfig, out: Result) -> UserState | None:
    """Settle every item due at or before `now`, in order; None when the user expired (the
    expiry comes after every deadline, so `deadlines` is empty then)."""
    if nothing_due(user, deadlines, now, config.session_gap_ms, config.idle_expiry_ms):
        return user  # the common call
    while True:
        at, kind, cid = next_due(user, deadlines, config.session_gap_ms, config.idle_expiry_ms, campaigns.rank)
        if at > now:
            return user
        if kind is ABSENCE:
            _absence_passed(user, deadlines, campaigns.get(cid), at, campaigns, profile, config, out)
        elif kind is RELEASE:
            _release(user, at, campaigns, out)
        elif kind is SESSION_END:
            if out.sessions is not None:
                out.sessions.append(sessions.record("session_end", user.session, user.key, user.user_id,
                                                    user.anonymous_id))
            user.session = None
        else:
            return None  # idle too long: forget the user


def _absence_passed(user: UserState, deadlines: dict[str, int], campaign: Campaign, at: int,
                    campaigns: CampaignSet, profile: dict[str, Any], config: EngineConfig, out: Result) -> None:
    del deadlines[campaign.id]
    progress = user.progress[campaign.id]
    run, progress.run = progress.run, None
    marker = _synthetic_event(user, "absence", f"absence:{campaign.id}:{at}", at, {})
    scope = EventScope(marker, user, profile, False, campaigns.reads_session_id)
    signal = _fire(campaign, progress, run, scope, scope.event_id, campaigns.policy, out)
    if signal is not None:
        _feed_signal(scope.for_event(signal), 1, deadlines, campaigns, config, out)


def _release(user: UserState, at: int, campaigns: CampaignSet, out: Result) -> None:
    """The held triggers whose send window opens at `at` leave, higher priority first, within the channel caps."""
    released = send_windows.release_due(user, at, campaigns)
    policy = campaigns.policy
    if not policy.caps:
        out.triggers += released
        return
    if len(released) > 1:
        released.sort(key=lambda t: visit_order(campaigns.get(t.campaign_id)))
    for trigger in released:
        reason = arbitration.admit(policy, user, trigger, at)
        if reason is None:
            out.triggers.append(trigger)
            continue
        out.suppressed.append(arbitration.suppressed(trigger, reason))
        progress = user.progress.get(trigger.campaign_id)
        if progress is not None and progress.goal is not None and progress.goal.trigger_id == trigger.trigger_id:
            progress.goal = None  # never sent: nothing to convert

# -- events -----------------------------------------------------------------------------


def _apply(user: UserState | None, deadlines: dict[str, int], event: Event, id_hash: int, campaigns: CampaignSet,
           profile: dict[str, Any], config: EngineConfig, out: Result) -> UserState:
    ts, etype, first_time = event.ts, event.type, user is None
    is_page = etype == config.page_view_type
    if user is None:
        user = UserState(ts, ts, event.user_id, event.anonymous_id)
    elif ts > user.last_seen:
        user.last_seen = ts
    user.user_id, user.anonymous_id = event.user_id, event.anonymous_id
    session = user.session
    if session is None:
        user.sessions += 1
        user.session = session = sessions.open_session(user.sessions, ts, is_page, event.context.get("platform"))
        if out.sessions is not None:
            out.sessions.append(sessions.record("session_start", session, user.key, user.user_id, user.anonymous_id))
    else:
        sessions.touch(session, ts, is_page)
    seen = user.seen  # remember the id, forget the oldest past the dedup horizon or the count
    seen[id_hash] = ts
    over, cutoff = len(seen) - config.dedup_max_ids, user.last_seen - config.dedup_horizon_ms
    forgotten = None
    for seen_id, seen_ts in seen.items():  # oldest first; one pass, its deletions after it
        if over <= 0 and seen_ts >= cutoff:
            break
        if forgotten is None:
            forgotten = [seen_id]
        else:
            forgotten.append(seen_id)
        over -= 1
    for seen_id in forgotten or ():
        del seen[seen_id]
    scope = None
    if user.held and campaigns.exits:
        scope = EventScope(event, user, profile, first_time, campaigns.reads_session_id)
        send_windows.cancel(user, campaigns.exits, scope, etype, out.errors)
    if campaigns.goals:  # first: the event may not convert a trigger it makes
        goal_types = campaigns.goal_types  # Types.has, inlined
        if etype in goal_types.names or goal_types.any:
            if scope is None:
                scope = EventScope(event, user, profile, first_time, campaigns.reads_session_id)
            conversions = goals.reach(user, scope, campaigns.goals, out.errors)
            if conversions:
                out.conversions = conversions
    visits = _visits(user, etype, False, campaigns)
    if visits:
        if scope is None:
            scope = EventScope(event, user, profile, first_time, campaigns.reads_session_id)
        _feed(scope, visits, False, 0, deadlines, campaigns, config, out)
    return user


def _visits(user: UserState, etype: str, synthetic: bool, campaigns: CampaignSet) -> Sequence[Campaign]:
    """The campaigns that consume an event of this type, in visit order (priority, then id):
    those that start on it, and those whose partial match consumes it."""
    visits = campaigns.starting(etype, synthetic)
    woken = None
    for cid, progress in user.progress.items():
        run = progress.run
        if run is not None:
            campaign = campaigns.get(cid)
            wakes = campaign.wakes
            if not wakes[INITIAL].has(etype, synthetic):  # else it starts on the type: visited anyway
                now = wakes[campaign.pattern.waiting if run.deadline is not None else run.state]
                if etype in now.names or (now.any and not synthetic):
                    woken = [campaign] if woken is None else [*woken, campaign]
    return visits if woken is None else sorted((*visits, *woken), key=visit_order)


def _feed(scope: EventScope, visits: Sequence[Campaign], synthetic: bool, depth: int, deadlines: dict[str, int],
          campaigns: CampaignSet, config: EngineConfig, out: Result) -> None:
    """Offer one event to the campaigns that consume it (`visits`, from _visits), in order."""
    user = scope.user
    errors = out.errors
    emitted = []
    for campaign in visits:
        cid = campaign.id
        reported = len(errors)
        progress = user.progress.get(cid)
        waited = progress is not None and progress.run is not None and progress.run.deadline is not None
        outcome = step(campaign, progress, scope, synthetic, errors)
        if outcome is not IGNORED:
            progress = user.progress[cid]
            if outcome is AWAITING:
                deadlines[cid] = progress.run.deadline
            elif waited:
                del deadlines[cid]
            if outcome is COMPLETED:
                run, progress.run = progress.run, None
                signal = _fire(campaign, progress, run, scope, None, campaigns.policy, out)
                if signal is not None:
                    emitted.append(signal)
        if len(errors) > reported:
            errors[reported:] = [f"{cid}: {e} (event {scope.event_id})" for e in errors[reported:]]
    for signal in emitted:
        if depth >= config.max_emit_depth:
            errors.append(f"synthetic event {signal['type']!r} dropped: emits nested deeper than "
                          f"{config.max_emit_depth}; check campaigns that emit what they listen to")
            continue
        _feed_signal(scope.for_event(signal), depth + 1, deadlines, campaigns, config, out)


def _feed_signal(scope: EventScope, depth: int, deadlines: dict[str, int], campaigns: CampaignSet,
                 config: EngineConfig, out: Result) -> None:
    """Offer a synthetic event (an emit campaign's) to the campaigns that listen to its type."""
    visits = _visits(scope.user, scope.type, True, campaigns)
    if visits:
        _feed(scope, visits, True, depth, deadlines, campaigns, config, out)


def _fire(campaign: Campaign, progress: Progress, run: Run, scope: EventScope, marker_id: str | None,
          policy: arbitration.Policy, out: Result) -> dict[str, Any] | None:
    """A completed match (`marker_id`: by its absence deadline), caps permitting: its trigger
    goes into `out` (suppressed, over a channel cap of `policy`); an emit campaign's
    synthetic event is returned, to be fed back."""
    user, ts = scope.user, scope.ts
    limits = campaign.limits
    if not caps.may_fire(limits, progress, ts, user.sessions):
        return None
    ids = [*run.ids, marker_id] if marker_id else run.ids
    scope = scope.with_binds(run.binds)
    try:
        if campaign.action is not None:
            action = campaign.action
            holdout = in_holdout(user.key, campaign.id, limits.holdout)  # before variants: the control group
            variant = (assign(action.variants, user.key, campaign.id, campaign.version)
                       if action.variants and not holdout else None)
            content = action if variant is None else variant
            trigger = make_trigger(
                campaign_id=campaign.id, version=campaign.version, user_key=user.key, user_id=user.user_id,
                anonymous_id=user.anonymous_id, channel=action.channel, endpoint=action.endpoint,
                message=content.message.render(scope), data=content.data.render(scope), matched_event_ids=ids,
                event_time=ts, holdout=holdout, variant=None if variant is None else variant.name)
            window = campaign.send_window
            release = None if window is None else send_windows.release_time(window, scope, ts, out.errors)
        else:
            params = campaign.emit.params.render(scope)
            release = None
    except Exception as err:  # noqa: BLE001 - a template failing on this user's data
        out.errors.append(f"rendering failed, no trigger: {type(err).__name__}: {err}")
        return None
    if release is not None:  # outside the send window: held, or dropped (and then not counted by the caps)
        if action.channel in send_windows.NEVER_HELD:
            out.dropped.append(f"{campaign.id}: outside its send window, and {action.channel} triggers are never held")
            return None
        if release - ts > window.within:
            out.dropped.append(f"{campaign.id}: its send window opens after send_window.within")
            return None
    elif policy.caps and campaign.action is not None:  # leaves now: the channel caps decide (a held one's at release)
        reason = arbitration.admit(policy, user, trigger, ts)
        if reason is not None:  # not sent, so not counted by the campaign's caps either, nor waiting for its goal
            out.suppressed.append(arbitration.suppressed(trigger, reason))
            return None
    caps.count_completion(limits, progress, ts, user.sessions)
    if campaign.action is not None:
        if release is None:
            out.triggers.append(trigger)
        else:
            send_windows.hold(user, release, campaign.id, trigger)
        if campaign.goal is not None:
            progress.goal = GoalWait(trigger.trigger_id, ts, trigger.variant, holdout)
        return None
    emit = campaign.emit.event
    return _synthetic_event(user, emit, f"{emit}:{trigger_id(campaign.id, campaign.version, user.key, ids)}", ts,
                            params)


def _synthetic_event(user: UserState, etype: str, event_id: str, ts: int, params: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": etype, "ts": ts, "user_id": user.user_id,
            "anonymous_id": user.anonymous_id, "params": params, "context": {}}
