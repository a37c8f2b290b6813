"""Running PyFlink jobs on a MiniCluster from tests, configured like `rtm run`."""

from jobs.environment import local_environment


def local_env(**overrides):
    """A MiniCluster environment with flink-conf/config.yaml plus `overrides`."""
    return local_environment(overrides)
