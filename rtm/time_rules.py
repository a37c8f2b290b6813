"""How the campaign job reads time: the settings beside the engine's own (EngineConfig), and
the arithmetic of its wall-clock timers (docs/CONTRACTS.md, "Time"), apart from Flink so
that unit tests can check it."""

from dataclasses import dataclass, field

from rtm.engine import DEFAULT_CONFIG, EngineConfig


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


def wall_timer_to_arm(armed: int | None, wanted: int) -> int | None:
    """The processing-time timer to register for a deadline due at wall time `wanted`, or
    None: one armed no later fires first, and a timer that fires early just re-arms. (So a
    user's wall timer only ever moves earlier: deleting one costs a call into the JVM.)"""
    return None if armed is not None and wanted >= armed else wanted
