"""The campaign engine in Flink: the Python half of io.rtm.flink.CampaignEngineOperator.

The operator keeps each user's state, the timers and the metrics in the JVM, and calls
`CampaignEngine.process` with a batch of items: keyed input records (events and profiles,
as read: kind, ts, key, value, topic, partition, offset, in one frame: udfs.rows) and fired
timers, each user's state sent with the first item of that user. It gets back one byte
array: the routed records, the users' new states, the timer operations, the counters'
increments (`Batch.response`). In PyFlink every call into Python, every state access and
every timer call crosses between Java and Python, and those crossings cost more than the
engine; a batch crosses twice. All matching logic is rtm.engine's; this module moves data
and decides the timers.

Per user there is ONE state (a msgpack UserSlot: the engine's UserState, the profile, the
armed timers), decoded once per batch: the engine changes the UserState in place, and the
slot is encoded after each item, so a failing item falls back to the bytes before it.

No record can stop the job (with restarts it would stop it again on every replay): a
record that fails to parse or makes the engine fail goes to the DLQ with the reason, the
user's state changes only once everything for the record has succeeded, and the next
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
import pickle
import struct
import time

import msgspec

from rtm import compiled
from rtm.arbitration import POLICY_KEY
from rtm.campaign_updates import apply_update
from rtm.campaigns import CampaignSet
from rtm.engine import Result, apply_event, decode_state, settle, without_cycle_collection
from rtm.events import InvalidEvent, InvalidProfile, parse_event, parse_profile
from rtm.state import UserState
from rtm.time_rules import TimeRules, event_timer_to_arm, wall_timer_to_arm
from udfs.rows import CONVERSIONS, END, LATE, PROFILE, SESSIONS, SUPPRESSED, TRIGGERS, read_input, refuse, routed_out

log = logging.getLogger(__name__)

# The campaigns state (io.rtm.flink.CampaignEngineOperator.CAMPAIGNS_STATE) holds each
# campaign's definition as published, and the policy's under its key
# (rtm.arbitration.POLICY_KEY); RETIRED marks a retired campaign or a removed policy, so a
# bootstrap version does not come back after a restore.
RETIRED = ""
_encode_json = msgspec.json.Encoder().encode

# The wire format of io.rtm.flink.CampaignEngineOperator (request items, timer operations).
INPUT, EVENT_TIMER, WALL_TIMER = 0, 1, 2
NO_STATE, STATE_SENT_BEFORE = -1, -2
DELETE_EVENT_TIMER, REGISTER_EVENT_TIMER, REGISTER_WALL_TIMER = 0, 1, 2
_INT = struct.Struct(">i")
_TAG_AND_SIZE = struct.Struct(">bi")
_LONG = struct.Struct(">q")
_NULL = _INT.pack(-1)

# The operator's metrics, in the order of a response's increments.
COUNTERS = (
    "triggers",
    "dead_letters",
    "late_events",
    "duplicate_events",
    "events_after_until",
    "rejected_campaigns",
    "condition_errors",
    "dropped_triggers",  # outside a send window, not holdable
    "suppressed_triggers",  # over a channel cap of the policy
    "engine_errors",
)
(TRIGGERS_SENT, DEAD_LETTERS, LATE_EVENTS, DUPLICATE_EVENTS, AFTER_UNTIL, REJECTED, CONDITION_ERRORS,
 DROPPED_TRIGGERS, SUPPRESSED_TRIGGERS, ENGINE_ERRORS) = range(len(COUNTERS))


class UserSlot(msgspec.Struct, array_like=True, gc=False):  # a tree, like the UserState it holds
    """Everything the job keeps for one user key."""

    # bytes: the engine's state as earlier versions nested it (msgpack in msgpack), read
    # from a savepoint they took; decoded with the slot (_decode_slot)
    engine: UserState | bytes | None = None
    profile: dict | None = None
    event_timer: int | None = None  # armed event-time timer (event millis)
    wall_timer: int | None = None  # armed processing-time timer (wall millis)
    # (wall millis, event millis) at the user's last event: in a quiet live run, event
    # time is taken to advance with the wall clock from here.
    anchor: tuple[int, int] | None = None


_slot_decoder = msgspec.msgpack.Decoder(UserSlot)
_slot_encoder = msgspec.msgpack.Encoder()


def _decode_slot(data: bytes | memoryview | None) -> UserSlot | None:
    if data is None:
        return None
    slot = _slot_decoder.decode(data)
    if type(slot.engine) is bytes:
        slot.engine = decode_state(slot.engine)
    return slot


def engine_config(bootstrap_campaigns: dict[str, str], rules: TimeRules) -> bytes:
    """What the operator builds its CampaignEngine from (opaque to the JVM)."""
    return pickle.dumps((bootstrap_campaigns, rules))


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _pack(data: bytes | None) -> bytes:
    return _NULL if data is None else _INT.pack(len(data)) + data


class Batch:
    """What one call changes: routed records, users' states and timers, counters."""

    def __init__(self):
        self.outputs: list[bytes] = []
        self.received: dict[str, memoryview | None] = {}  # user key -> the slot as the request sent it
        self.states: dict[str, bytes | None] = {}  # user key -> msgpack UserSlot, None: cleared
        self.timer_ops: list[bytes] = []
        self.campaign_writes: list[bytes] = []
        self.counts = [0] * len(COUNTERS)

    def slot_before(self, key: str) -> UserSlot | None:
        """The user's slot after the last item that succeeded: for an item that failed
        half way through the engine's changes."""
        return _decode_slot(self.states[key] if key in self.states else self.received[key])

    def timer(self, op: int, key: str, ts: int) -> None:
        self.timer_ops.append(bytes([op]) + _pack(key.encode()) + _LONG.pack(ts))

    def response(self) -> bytes:
        states = [_pack(key.encode()) + _pack(state) for key, state in self.states.items()]
        return b"".join((
            _INT.pack(len(self.outputs)), *map(_pack, self.outputs),
            _INT.pack(len(states)), *states,
            _INT.pack(len(self.timer_ops)), *self.timer_ops,
            _INT.pack(len(self.campaign_writes)), *self.campaign_writes,
            *map(_INT.pack, self.counts),
        ))


class CampaignEngine:
    """Built by the operator from `engine_config`, its subtask index and its campaigns state
    (id, definition pairs framed as the operator writes them)."""

    def __init__(self, config: bytes, subtask_index: int, campaigns_state: bytes):
        bootstrap_campaigns, self._rules = pickle.loads(config)
        self._reports_rejections = subtask_index == 0  # every instance sees an update; one reports it
        if subtask_index == 0:
            log.info("the campaign engine runs %s", "compiled (rtm.compiled)" if compiled.active() else "as Python")
        # Built from the bootstrap set and the campaigns state (which holds what the topic
        # said before a restore), then kept up to date by broadcast records.
        self._campaigns = CampaignSet.from_definitions(bootstrap_campaigns)
        view, start = memoryview(campaigns_state), 0
        while start < len(view):
            (size,) = _INT.unpack_from(view, start)
            campaign_id = bytes(view[start + 4:start + 4 + size]).decode()
            start += 4 + size
            (size,) = _INT.unpack_from(view, start)
            definition = bytes(view[start + 4:start + 4 + size]).decode()
            start += 4 + size
            apply_update(self._campaigns, campaign_id, None if definition == RETIRED else definition)
        # Where event time stops: --until, or the largest event time of a bounded input
        # once it has ended (None while it runs, and in a live run).
        self._until = self._rules.until

    @staticmethod
    def counter_names() -> str:
        return ",".join(COUNTERS)

    # -- campaigns ------------------------------------------------------------------

    def broadcast(self, frame: bytes) -> bytes:
        """A record of the broadcast input: a campaign update, or the END of a bounded input."""
        batch = Batch()
        record = read_input(frame)
        if record.kind == END:
            if self._rules.until is None:
                self._until = record.ts if self._until is None else max(self._until, record.ts)
            return batch.response()
        try:
            apply_update(self._campaigns, record.key, record.value)
        except ValueError as err:  # CampaignError among them
            batch.counts[REJECTED] += 1
            if self._reports_rejections:
                what = "policy" if record.key == POLICY_KEY else "campaign"
                log.warning("%s update rejected, the previous version stays: %s", what, err)
                batch.outputs.append(refuse(record, f"{what} rejected, the previous version stays active: {err}"))
            return batch.response()
        definition = RETIRED if record.value is None else record.value.decode()
        batch.campaign_writes.append(_pack(record.key.encode()) + _pack(definition.encode()))
        return batch.response()

    # -- users ----------------------------------------------------------------------

    def process(self, request: bytes) -> bytes:
        """A batch of the operator's items, in order (io.rtm.flink.CampaignEngineOperator.request)."""
        # The users' states live through the batch: without the pause the cyclic collector
        # would walk them, and now and then the whole interpreter's heap (PyFlink's too).
        with without_cycle_collection():
            return self._process(request)

    def _process(self, request: bytes) -> bytes:
        batch = Batch()
        slots: dict[str, UserSlot | None] = {}
        view = memoryview(request)
        (count,) = _INT.unpack_from(view, 0)
        start = 4
        for _ in range(count):
            tag, size = _TAG_AND_SIZE.unpack_from(view, start)
            start += 5
            key = str(view[start:start + size], "utf-8")
            start += size
            (size,) = _INT.unpack_from(view, start)
            start += 4
            if size >= 0:
                batch.received[key] = view[start:start + size]
                slots[key] = _decode_slot(batch.received[key])
                start += size
            elif size == NO_STATE:
                batch.received[key] = slots[key] = None
            if tag == INPUT:
                (size,) = _INT.unpack_from(view, start)
                start += 4
                frame = bytes(view[start:start + size])
                start += size
                self._input(key, read_input(frame), slots, batch)
            else:
                (ts,) = _LONG.unpack_from(view, start)
                start += 8
                self._timer(key, ts, tag == EVENT_TIMER, slots, batch)
        return batch.response()

    def _input(self, key: str, record, slots: dict, batch: Batch) -> None:
        if record.kind == PROFILE:
            self._update_profile(key, record, slots, batch)
            return
        try:
            event = parse_event(record.value)
        except InvalidEvent as err:
            self._dead_letter(record, str(err), batch)
            return
        except Exception as err:  # noqa: BLE001 - no record may stop the job (it would again on every replay)
            self._dead_letter(record, f"the event could not be parsed: {type(err).__name__}: {err}", batch)
            return
        # The JVM keyed it by the same rule (io.rtm.flink.Inputs, which refuses repeated
        # fields), so event.key is `key`.
        rules = self._rules
        if rules.until is not None and event.ts > rules.until:
            batch.counts[AFTER_UNTIL] += 1
            return
        slot = slots[key] or UserSlot()
        try:
            result = apply_event(slot.engine, event, self._campaigns, slot.profile, rules.engine)
            if result.late:
                batch.counts[LATE_EVENTS] += 1
                batch.outputs.append(routed_out(LATE, key, record.value))
                return  # nothing changed
            outputs = self._outputs(key, result, batch)
            self._store(key, slot, result, slots, batch, anchor=(_wall_ms(), event.ts))
        except Exception as err:  # noqa: BLE001 - as above; the state only changes once all succeeded
            slots[key] = batch.slot_before(key)
            self._dead_letter(record, f"the engine failed on this event, the user's state is as it was "
                                      f"before: {type(err).__name__}: {err}", batch)
            return
        if result.duplicate:
            batch.counts[DUPLICATE_EVENTS] += 1
        batch.outputs.extend(outputs)
        if result.errors:
            # Applied, but a condition or template failed on its data (counted in _outputs):
            # the record goes to the DLQ too, where someone looks, with what failed.
            self._dead_letter(record, "the event was applied, but on its data " + "; ".join(result.errors), batch)

    def _update_profile(self, key: str, record, slots: dict, batch: Batch) -> None:
        # profiles are keyed by their message key
        try:
            profile = parse_profile(record.value)
        except InvalidProfile as err:
            self._dead_letter(record, str(err), batch)
            return
        if profile is not None and profile["user_id"] != key:
            self._dead_letter(record, f"profile user_id {profile['user_id']!r} differs from its message key {key!r}",
                              batch)
            return
        slot = msgspec.structs.replace(slots[key] or UserSlot(), profile=profile)
        if slot.engine is None and profile is None:
            slots[key] = batch.states[key] = None
        else:
            slots[key] = slot
            batch.states[key] = _slot_encoder.encode(slot)

    def _dead_letter(self, record, reason: str, batch: Batch) -> None:
        batch.counts[DEAD_LETTERS] += 1
        batch.outputs.append(refuse(record, reason))

    def _timer(self, key: str, timestamp: int, event_time: bool, slots: dict, batch: Batch) -> None:
        slot = slots[key]
        if slot is None:
            return
        rules = self._rules
        if event_time:
            if slot.event_timer == timestamp:
                slot = msgspec.structs.replace(slot, event_timer=None)
            if self._until is not None and timestamp > self._until:
                slots[key] = slot
                batch.states[key] = _slot_encoder.encode(slot)
                return  # bounded input ended before this deadline
            now = timestamp
        else:
            if slot.wall_timer == timestamp:
                slot = msgspec.structs.replace(slot, wall_timer=None)
            now = rules.event_time_at(slot.anchor, timestamp)
        try:
            result = settle(slot.engine, now, self._campaigns, slot.profile, rules.engine)
            outputs = self._outputs(key, result, batch)
            self._store(key, slot, result, slots, batch)
        except Exception:  # noqa: BLE001 - a failing timer must not stop the job; the next event retries
            slots[key] = batch.slot_before(key)
            batch.counts[ENGINE_ERRORS] += 1
            log.exception("user %s: settling the deadline at %s failed; the state is as it was", key, now)
            return
        batch.outputs.extend(outputs)

    def _outputs(self, key: str, result: Result, batch: Batch) -> list[bytes]:
        """The routed records of one item, all made before any leaves (a failure emits none)."""
        for error in result.errors:
            batch.counts[CONDITION_ERRORS] += 1
            log.warning("user %s: %s", key, error)
        batch.counts[DROPPED_TRIGGERS] += len(result.dropped)
        rows = []
        for output, triggers, counter in ((TRIGGERS, result.triggers, TRIGGERS_SENT),
                                          (SUPPRESSED, result.suppressed, SUPPRESSED_TRIGGERS)):
            if triggers:
                emitted_at = _wall_ms()
                for trigger in triggers:
                    trigger.emitted_at = emitted_at
                    rows.append(routed_out(output, key, _encode_json(trigger)))
                batch.counts[counter] += len(triggers)
        for session in result.sessions:
            rows.append(routed_out(SESSIONS, key, _encode_json(session)))
        for conversion in result.conversions:
            rows.append(routed_out(CONVERSIONS, key, _encode_json(conversion)))
        return rows

    def _store(self, key: str, slot: UserSlot, result: Result, slots: dict, batch: Batch,
               anchor: tuple[int, int] | None = None) -> None:
        """Record the user's new state and timers (`anchor`: the new one, after an event) in
        a new slot, so that if anything fails the batch still holds the old one."""
        if result.user is None and slot.profile is None:
            slots[key] = batch.states[key] = None  # forgotten by the engine (idle expiry); stale timers find nothing
            return
        anchor = anchor or slot.anchor
        deadline, armed = result.next_deadline, slot.event_timer
        event_timer = event_timer_to_arm(armed, deadline)
        wall_deadline = None
        if deadline is not None and self._rules.live and anchor is not None:
            # From the deadline itself, not from an early event-time timer: the wall time of
            # that one has passed when the wall timer fires, so it would be due at once, again
            # and again, while the watermark stands still.
            wall_deadline = wall_timer_to_arm(slot.wall_timer, self._rules.wall_time_of(anchor, deadline))
        slot = msgspec.structs.replace(slot, engine=result.user, event_timer=event_timer, anchor=anchor,
                                       wall_timer=slot.wall_timer if wall_deadline is None else wall_deadline)
        encoded = _slot_encoder.encode(slot)
        slots[key], batch.states[key] = slot, encoded
        if event_timer != armed:
            if armed is not None:
                batch.timer(DELETE_EVENT_TIMER, key, armed)
            if event_timer is not None:
                batch.timer(REGISTER_EVENT_TIMER, key, event_timer)
        if wall_deadline is not None:
            batch.timer(REGISTER_WALL_TIMER, key, wall_deadline)
