"""rtm: realtime marketing on Apache Flink."""

from rtm import compiled as _compiled

__version__ = "0.1.0"

_compiled.activate(_compiled.RTM, __path__)  # before any engine module is imported
