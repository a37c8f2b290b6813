"""The execution environment for local runs: a MiniCluster configured from flink-conf/."""

from pyflink.datastream import StreamExecutionEnvironment

from rtm import flink_config


def local_environment(overrides: dict | None = None) -> StreamExecutionEnvironment:
    """A MiniCluster environment with flink-conf/config.yaml plus `overrides`."""
    return StreamExecutionEnvironment.get_execution_environment(flink_config.local_configuration(overrides))
