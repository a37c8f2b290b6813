"""The Python functions that rtm's Flink jobs run (one module per concept)."""

from rtm import compiled as _compiled

_compiled.activate(_compiled.UDFS, __path__)  # before any of its modules is imported
