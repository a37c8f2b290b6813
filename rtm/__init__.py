"""rtm: realtime marketing on Apache Flink."""

__version__ = "0.1.0"
