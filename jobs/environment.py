"""The execution environment for local runs: a MiniCluster configured from flink-conf/."""

import os

from pyflink.datastream import StreamExecutionEnvironment

from rtm import flink_config

# The JVM that runs a local MiniCluster compiles with C1 only. Measured on 2 cores: in a
# 20 s bounded run over 200k events C2's compiler threads used 9 s of CPU, as much as the
# engine's thread, which C1 alone leaves as it was (38-40 us an event against 35-44);
# the run took 20 s instead of 22-26, and a 20k-event run went 13.5k events/s against
# 7.1k. Live at 5k/s the latency settled as low (p50 47 ms against 45 in the last
# quarter), only sooner. A cluster's long-lived JVMs keep the JVM's default. The JVM
# takes the last of repeated flags: JVM_ARGS of the user's, set after, win.
LOCAL_JVM_ARGS = "-XX:TieredStopAtLevel=1"


def local_environment(overrides: dict | None = None) -> StreamExecutionEnvironment:
    """A MiniCluster environment with flink-conf/config.yaml plus `overrides`."""
    # Read by PyFlink when it starts the JVM (the first environment of a process does), and
    # only then: a standalone cluster started later from this process keeps its own flags.
    users = os.environ.get("JVM_ARGS")
    os.environ["JVM_ARGS"] = f"{LOCAL_JVM_ARGS} {users or ''}".strip()
    try:
        return StreamExecutionEnvironment.get_execution_environment(flink_config.local_configuration(overrides))
    finally:
        if users is None:
            del os.environ["JVM_ARGS"]
        else:
            os.environ["JVM_ARGS"] = users
