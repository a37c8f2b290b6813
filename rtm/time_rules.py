"""How the campaign job reads time: the settings beside the engine's own (EngineConfig), the
clock-skew rule, the checks that no combination of them can break a run, and the arithmetic
of its wall-clock timers (docs/CONTRACTS.md, "Time"), apart from Flink so that unit tests
can check it."""

from dataclasses import dataclass, field

from rtm.engine import DEFAULT_CONFIG, HOUR, EngineConfig
from rtm.errors import RtmError

DEFAULT_MAX_FUTURE_MS = HOUR


class SettingsError(RtmError):
    """Time or engine settings that contradict each other; the message names the option to change."""


@dataclass(frozen=True)
class TimeRules:
    """The defaults suit a live run."""

    # The watermark's bound on disorder; late events are the engine's call
    # (EngineConfig.allowed_lateness_ms, per user, so preview and job agree).
    out_of_orderness_ms: int = 5_000
    # Live runs back event-time timers with wall-clock ones; bounded runs must not.
    live: bool = True
    # Bounded runs: event time stops here; later events and deadlines are ignored. None:
    # at the largest event time of the input (the job learns it when the input ends).
    until: int | None = None
    engine: EngineConfig = field(default=DEFAULT_CONFIG)
    # Clock skew: an event this far ahead of its Kafka record's timestamp (over files: of
    # the largest event time before it) is refused to the DLQ (`too_far_ahead`).
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS

    def check(self, idle_timeout_ms: int | None = None) -> None:
        """Raise SettingsError if these rules (and a live run's idleness timeout) do not fit together."""
        check_settings(self.engine, out_of_orderness_ms=self.out_of_orderness_ms, max_future_ms=self.max_future_ms,
                       idle_timeout_ms=idle_timeout_ms)

    # A quiet live run: event time is taken to advance with the wall clock from the user's
    # last event, `anchor` = (wall millis, event millis) then, less the out-of-orderness bound.

    def event_time_at(self, anchor: tuple[int, int], wall_ms: int) -> int:
        """The user's event time when the wall clock reads `wall_ms`."""
        wall, event_ts = anchor
        return event_ts + (wall_ms - wall) - self.out_of_orderness_ms

    def wall_time_of(self, anchor: tuple[int, int], event_ms: int) -> int:
        """When the wall clock reads the user's event time `event_ms` (event_time_at's inverse)."""
        wall, event_ts = anchor
        return wall + (event_ms - event_ts) + self.out_of_orderness_ms


def event_timer_to_arm(armed: int | None, deadline: int | None) -> int | None:
    """The event-time timer a user should have for the engine's next `deadline`, given the
    one `armed`: that one while it fires no later, else the deadline. So it only ever moves
    earlier: every event of an active user pushes the session end later, and moving the
    timer each time (a delete and a register, two calls into the JVM) cost more than
    letting it fire early once, settle nothing and re-arm at the deadline: over the peer
    benchmark's 200k events, 131k timer calls and 74k fires instead of 432k and 44k."""
    return armed if armed is not None and deadline is not None and armed <= deadline else deadline


def wall_timer_to_arm(armed: int | None, wanted: int) -> int | None:
    """The processing-time timer to register for a deadline due at wall time `wanted`, or
    None: one armed no later fires first, and a timer that fires early just re-arms. (So a
    user's wall timer only ever moves earlier: deleting one costs a call into the JVM.)"""
    return None if armed is not None and wanted >= armed else wanted


def too_far_ahead(ts: int, reference: int | None, max_future_ms: int, reference_name: str) -> str | None:
    """Why an event at `ts` is refused, or None. `reference`: the record's Kafka timestamp,
    or over files the largest event time before it (None: nothing to compare with).

    The job applies the same rule in the JVM, before the event's time can move the
    watermark (io.rtm.flink.Inputs.refuseIfAhead, same words): a test holds them together.
    """
    if reference is None or ts - reference <= max_future_ms:
        return None
    return (f"ts {ts} is {ts - reference} ms ahead of {reference_name} {reference}, more than --max-future "
            f"({max_future_ms} ms): fix the clock of the event's producer, or raise --max-future")


def _ms(value: int) -> str:
    return f"{value // 1000}s" if value % 1000 == 0 else f"{value}ms"


def check_settings(engine: EngineConfig, *, out_of_orderness_ms: int | None = None, max_future_ms: int | None = None,
                   idle_timeout_ms: int | None = None) -> None:
    """Raise SettingsError naming every combination that would crash or silently break a
    run, and the option to change; the settings a command does not have are None."""
    problems = []
    if engine.allowed_lateness_ms > engine.dedup_horizon_ms:
        # The dedup window must hold every event still applied: a late event older than the
        # horizon would be forgotten as soon as remembered (and empty the window).
        problems.append(f"--allowed-lateness ({_ms(engine.allowed_lateness_ms)}) is above --dedup-horizon "
                        f"({_ms(engine.dedup_horizon_ms)}): a late event could no longer be told from a duplicate; "
                        f"lower --allowed-lateness or raise --dedup-horizon")
    if engine.idle_expiry_ms < engine.session_gap_ms:
        problems.append(f"--idle-expiry ({_ms(engine.idle_expiry_ms)}) is below --session-gap "
                        f"({_ms(engine.session_gap_ms)}): users would be forgotten before their session ends, "
                        f"and no session_end would be written; raise --idle-expiry")
    if out_of_orderness_ms is not None and out_of_orderness_ms > engine.allowed_lateness_ms:
        problems.append(f"--out-of-orderness ({_ms(out_of_orderness_ms)}) is above --allowed-lateness "
                        f"({_ms(engine.allowed_lateness_ms)}): events the watermark still waits for would be "
                        f"dropped as late; raise --allowed-lateness or lower --out-of-orderness")
    if max_future_ms is not None and max_future_ms <= 0:
        problems.append(f"--max-future ({_ms(max_future_ms)}) is not positive: an event a millisecond ahead of "
                        "its record's timestamp would be refused; give a positive duration (e.g. 1h)")
    if idle_timeout_ms is not None and idle_timeout_ms <= 0:
        problems.append(f"--idle-timeout ({_ms(idle_timeout_ms)}) is not positive: Flink needs a positive "
                        "idleness timeout; give one (e.g. 5s)")
    if problems:
        raise SettingsError("these settings do not fit together:\n  " + "\n  ".join(problems))
