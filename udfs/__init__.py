"""The Python functions that rtm's Flink jobs run (one module per concept)."""
