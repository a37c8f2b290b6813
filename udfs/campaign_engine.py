"""The campaign engine as a Flink function: one keyed state per user, campaigns broadcast.

The only Python operator an event meets (jobs.kafka_io): it receives the Kafka record as
it was read (kind, ts, key, value, topic, partition, offset, in one frame: udfs.rows),
keyed by user key in the JVM, parses it once, and sends what breaks the contract to the DLQ.

Per user the function keeps ONE ValueState (a msgpack UserSlot: the engine's bytes, the
profile, the armed timers), so an event costs one state read and one write: in PyFlink
every state access and Java<->Python crossing is expensive, the Python logic is not.
All matching logic is rtm.engine's; this module only moves data and arms timers.

No record can stop the job (with restarts it would stop it again on every replay): a
record that fails to parse or makes the engine fail goes to the DLQ with the reason, the
user's state is written only once everything for the record has succeeded, and the next
record is processed. An event on whose data a condition or template failed (a type error,
a message past the size limit) is applied and dead-lettered too, with what failed.

Time (docs/CONTRACTS.md, "Time"): the engine settles what is due before each event, so timers only
serve users who go quiet. Each user has at most one event-time timer, at or before the
engine's next deadline, only ever moved earlier (rtm.time_rules.event_timer_to_arm). In
a live run a processing-time timer backs it up, moved the same way: when no input
arrives anywhere the watermark stands still, yet a deadline must fire within seconds of
wall time.
"""

import logging
import time

import msgspec
from pyflink.common import Types
from pyflink.datastream import KeyedBroadcastProcessFunction, TimeDomain
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from rtm.campaign_updates import apply_update
from rtm.campaigns import CampaignSet
from rtm.engine import Result, apply_event, settle
from rtm.events import InvalidEvent, InvalidProfile, parse_event, parse_profile
from rtm.time_rules import TimeRules, event_timer_to_arm, wall_timer_to_arm
from udfs.rows import CONVERSIONS, END, LATE, PROFILE, SESSIONS, SUPPRESSED, TRIGGERS, read_input, refuse, routed_out

log = logging.getLogger(__name__)

# The job's state, all of it. Broadcast: campaign id -> its definition as published (JSON
# text), and the policy's under its key (rtm.arbitration.POLICY_KEY); "" marks a retired
# campaign or a removed policy, so a bootstrap version does not come back after a restore.
CAMPAIGNS_STATE = MapStateDescriptor("campaigns", Types.STRING(), Types.STRING())
RETIRED = ""
# Keyed: one UserSlot (below) per user key, msgpack. Pickled, though it holds bytes: PyFlink's
# embedded converter for a byte array type builds a tuple of ints per access (and fails on an
# empty state).
USER_STATE = ValueStateDescriptor("user", Types.PICKLED_BYTE_ARRAY())
_encode_json = msgspec.json.Encoder().encode


class UserSlot(msgspec.Struct, array_like=True):
    """Everything the job keeps for one user key."""

    engine: bytes | None = None
    profile: dict | None = None
    event_timer: int | None = None  # armed event-time timer (event millis)
    wall_timer: int | None = None  # armed processing-time timer (wall millis)
    # (wall millis, event millis) at the user's last event: in a quiet live run, event
    # time is taken to advance with the wall clock from here.
    anchor: tuple[int, int] | None = None


_slot_decoder = msgspec.msgpack.Decoder(UserSlot)
_slot_encoder = msgspec.msgpack.Encoder()


def _subtask_index(runtime_context) -> int:
    try:
        return runtime_context.get_index_of_this_subtask()
    except AttributeError:
        # PyFlink 2.3 thread mode calls RuntimeContext.getIndexOfThisSubtask, which
        # Flink 2.0 moved to getTaskInfo().
        return runtime_context._runtime_context.getTaskInfo().getIndexOfThisSubtask()


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class CampaignEngine(KeyedBroadcastProcessFunction):
    """Keyed input: input rows of events and profiles; broadcast input: keyed rows of
    campaign records, and the END of a bounded input.

    Output: routed records keyed by user key for TRIGGERS, SUPPRESSED, SESSIONS, CONVERSIONS and LATE, and dead
    letters (DLQ) of events and profiles that break the contract and of rejected campaign
    updates.
    """

    def __init__(self, bootstrap_campaigns: dict[str, str], rules: TimeRules):
        self._bootstrap_campaigns = bootstrap_campaigns
        self._rules = rules

    def open(self, runtime_context):
        self._slots = runtime_context.get_state(USER_STATE)
        self._reports_rejections = _subtask_index(runtime_context) == 0
        metrics = runtime_context.get_metrics_group()
        self._triggers = metrics.counter("triggers")
        self._dead_letters = metrics.counter("dead_letters")
        self._late = metrics.counter("late_events")
        self._duplicates = metrics.counter("duplicate_events")
        self._after_until = metrics.counter("events_after_until")
        self._rejected = metrics.counter("rejected_campaigns")
        self._condition_errors = metrics.counter("condition_errors")
        self._dropped_triggers = metrics.counter("dropped_triggers")  # outside a send window, not holdable
        self._suppressed = metrics.counter("suppressed_triggers")  # over a channel cap of the policy
        self._engine_errors = metrics.counter("engine_errors")
        self._campaigns: CampaignSet | None = None
        # Where event time stops: --until, or the largest event time of a bounded input
        # once it has ended (None while it runs, and in a live run).
        self._until = self._rules.until

    # -- campaigns ------------------------------------------------------------------

    def _campaign_set(self, ctx) -> CampaignSet:
        # Built once per task from the bootstrap set and the broadcast state (which holds
        # what the topic said before a restore), then kept up to date by broadcast updates.
        if self._campaigns is None:
            campaigns = CampaignSet.from_definitions(self._bootstrap_campaigns)
            for campaign_id, definition in ctx.get_broadcast_state(CAMPAIGNS_STATE).items():
                apply_update(campaigns, campaign_id, None if definition == RETIRED else definition)
            self._campaigns = campaigns
        return self._campaigns

    def process_broadcast_element(self, keyed, ctx):
        record = read_input(keyed[1])
        if record.kind == END:
            if self._rules.until is None:
                self._until = record.ts if self._until is None else max(self._until, record.ts)
            return
        campaigns = self._campaign_set(ctx)
        try:
            apply_update(campaigns, record.key, record.value)
        except ValueError as err:  # CampaignError among them
            # Every parallel instance sees the update; one reports it.
            self._rejected.inc()
            if self._reports_rejections:
                log.warning("campaign update rejected, the previous version stays: %s", err)
                yield refuse(record, f"campaign rejected, the previous version stays active: {err}")
            return
        state = ctx.get_broadcast_state(CAMPAIGNS_STATE)
        state.put(record.key, RETIRED if record.value is None else record.value.decode())

    # -- users ----------------------------------------------------------------------

    def process_element(self, frame, ctx):
        record = read_input(frame)
        if record.kind == PROFILE:
            yield from self._update_profile(record)
            return
        try:
            event = parse_event(record.value)
        except InvalidEvent as err:
            yield self._dead_letter(record, str(err))
            return
        except Exception as err:  # noqa: BLE001 - no record may stop the job (it would again on every replay)
            yield self._dead_letter(record, f"the event could not be parsed: {type(err).__name__}: {err}")
            return
        # The JVM keyed it by the same rule (io.rtm.flink.Inputs, which refuses repeated
        # fields), so event.key is the current key: no call into the JVM to ask.
        key = event.key
        rules = self._rules
        if rules.until is not None and event.ts > rules.until:
            self._after_until.inc()
            return
        raw = self._slots.value()
        slot = _slot_decoder.decode(raw) if raw else UserSlot()
        try:
            result = apply_event(slot.engine, event, self._campaign_set(ctx), slot.profile, rules.engine)
            if result.late:
                self._late.inc()
                yield routed_out(LATE, key, record.value)
                return  # nothing changed
            slot.anchor = (_wall_ms(), event.ts)
            outputs = self._outputs(key, result)
            self._store(slot, result, ctx.timer_service())
        except Exception as err:  # noqa: BLE001 - as above; the state is only written once all succeeded
            yield self._dead_letter(record, f"the engine failed on this event, the user's state is as it was "
                                            f"before: {type(err).__name__}: {err}")
            return
        if result.duplicate:
            self._duplicates.inc()
        yield from outputs
        if result.errors:
            # Applied, but a condition or template failed on its data (counted in _outputs):
            # the record goes to the DLQ too, where someone looks, with what failed.
            yield self._dead_letter(record, "the event was applied, but on its data " + "; ".join(result.errors))

    def _update_profile(self, record):
        key = record.key  # profiles are keyed by their message key
        try:
            profile = parse_profile(record.value)
        except InvalidProfile as err:
            yield self._dead_letter(record, str(err))
            return
        if profile is not None and profile["user_id"] != key:
            yield self._dead_letter(record, f"profile user_id {profile['user_id']!r} differs from its message key {key!r}")
            return
        raw = self._slots.value()
        slot = _slot_decoder.decode(raw) if raw else UserSlot()
        slot.profile = profile
        if slot.engine is None and profile is None:
            self._slots.clear()
        else:
            self._slots.update(_slot_encoder.encode(slot))

    def _dead_letter(self, record, reason: str):
        self._dead_letters.inc()
        return refuse(record, reason)

    def on_timer(self, timestamp, ctx):
        raw = self._slots.value()
        if not raw:
            return
        slot = _slot_decoder.decode(raw)
        rules = self._rules
        if ctx.time_domain() == TimeDomain.EVENT_TIME:
            if slot.event_timer == timestamp:
                slot.event_timer = None
            if self._until is not None and timestamp > self._until:
                return  # bounded input ended before this deadline
            now = timestamp
        else:
            if slot.wall_timer == timestamp:
                slot.wall_timer = None
            now = rules.event_time_at(slot.anchor, timestamp)
        key = ctx.get_current_key()
        try:
            result = settle(slot.engine, now, self._campaign_set(ctx), slot.profile, rules.engine)
            outputs = self._outputs(key, result)
            self._store(slot, result, ctx.timer_service())
        except Exception:  # noqa: BLE001 - a failing timer must not stop the job; the next event retries
            self._engine_errors.inc()
            log.exception("user %s: settling the deadline at %s failed; the state is as it was", key, now)
            return
        yield from outputs

    def _outputs(self, key: str, result: Result) -> list:
        """The routed records of one call, all made before any leaves (a failure emits none)."""
        for error in result.errors:
            self._condition_errors.inc()
            log.warning("user %s: %s", key, error)
        if result.dropped:
            self._dropped_triggers.inc(len(result.dropped))
        rows = []
        for output, triggers, counter in ((TRIGGERS, result.triggers, self._triggers),
                                          (SUPPRESSED, result.suppressed, self._suppressed)):
            if triggers:
                emitted_at = _wall_ms()
                for trigger in triggers:
                    trigger.emitted_at = emitted_at
                    rows.append(routed_out(output, key, _encode_json(trigger)))
                counter.inc(len(triggers))
        for session in result.sessions:
            rows.append(routed_out(SESSIONS, key, _encode_json(session)))
        for conversion in result.conversions:
            rows.append(routed_out(CONVERSIONS, key, _encode_json(conversion)))
        return rows

    def _store(self, slot: UserSlot, result: Result, timers) -> None:
        """Write the user's state and move the timers; the state is encoded first, so if
        that fails nothing has changed."""
        slot.engine = result.state
        if slot.engine is None and slot.profile is None:
            self._slots.clear()  # forgotten by the engine (idle expiry); stale timers find nothing
            return
        deadline, armed = result.next_deadline, slot.event_timer
        event_timer = slot.event_timer = event_timer_to_arm(armed, deadline)
        wall_deadline = None
        if deadline is not None and self._rules.live and slot.anchor is not None:
            # From the deadline itself, not from an early event-time timer: the wall time of
            # that one has passed when the wall timer fires, so it would be due at once, again
            # and again, while the watermark stands still.
            wall_deadline = wall_timer_to_arm(slot.wall_timer, self._rules.wall_time_of(slot.anchor, deadline))
            if wall_deadline is not None:
                slot.wall_timer = wall_deadline
        encoded = _slot_encoder.encode(slot)
        if event_timer != armed:
            if armed is not None:
                timers.delete_event_time_timer(armed)
            if event_timer is not None:
                timers.register_event_time_timer(event_timer)
        if wall_deadline is not None:
            timers.register_processing_time_timer(wall_deadline)
        self._slots.update(encoded)
