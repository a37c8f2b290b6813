"""Running PyFlink jobs on a MiniCluster from tests, configured like `rtm run`."""

from pyflink.datastream import StreamExecutionEnvironment

from rtm import flink_config


def local_env(**overrides) -> StreamExecutionEnvironment:
    """A MiniCluster environment with flink-conf/config.yaml plus `overrides`."""
    return StreamExecutionEnvironment.get_execution_environment(flink_config.local_configuration(overrides))
