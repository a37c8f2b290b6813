"""How the campaign job reads time: the settings beside the engine's own (EngineConfig)."""

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
