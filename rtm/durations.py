"""Durations as people write them to rtm: a whole number and a unit, "250ms", "90s", "30m", "4h", "7d", "2w".

One grammar for every duration rtm reads: campaign files (`within`, `absence.for`,
`limits.per`, `limits.cooldown`), command line options (`--session-gap`, `--ttl`, ...) and
the variables of the SQL files (`rtm sql run --set trigger_window=5m`), which
`sql_interval` renders as Flink SQL INTERVAL literals. The campaign JSON Schema
(rtm/campaign.schema.json, `$defs.duration`) states PATTERN for editors; a test holds
the two together.
"""

import re

PATTERN = "^[0-9]+(ms|s|m|h|d|w)$"
_DURATION = re.compile(PATTERN)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
# Flink SQL's day-time interval units, largest first (it has no weeks: 2w is 14 days).
_SQL_UNITS = (("DAY", 86_400_000), ("HOUR", 3_600_000), ("MINUTE", 60_000), ("SECOND", 1000))


class InvalidDuration(ValueError):
    """Text that is not a duration; the message says what to write instead."""


def parse_duration(text: str) -> int:
    """Milliseconds from "90s", "30m", "4h", "7d"...; raises InvalidDuration."""
    match = _DURATION.fullmatch(str(text))
    if not match:
        raise InvalidDuration(f"{text!r} is not a duration; write a number and a unit: ms, s, m, h, d, w (e.g. 4h)")
    unit = match.group(1)
    return int(match.string[:match.start(1)]) * _UNIT_MS[unit]


def sql_interval(ms: int) -> str:
    """The Flink SQL literal of `ms` milliseconds, in the largest unit that holds it whole:
    INTERVAL '5' MINUTE, INTERVAL '36' HOUR, INTERVAL '0.250' SECOND."""
    for unit, size in _SQL_UNITS:
        if ms % size == 0:
            return f"INTERVAL '{ms // size}' {unit}"
    return f"INTERVAL '{ms // 1000}.{ms % 1000:03}' SECOND"
