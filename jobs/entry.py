"""The campaign job's entry point on a Flink cluster, for `flink run`:

    flink run [-d] -py jobs/entry.py -pyfs <dir holding rtm/, jobs/, udfs/> -pyexec <python> \\
        -- --bootstrap kafka:9092 --campaigns campaigns

The arguments after `--` are those of `rtm run` (see `rtm run --help`): this runs that
very command, on the environment `flink run` provides instead of a MiniCluster, so the
cluster and a local run build the same pipeline. `rtm submit` calls it this way.
The script runs on the client: the connector jar must be in the client's FLINK_LIB_DIR.
"""

import sys

from pyflink.datastream import StreamExecutionEnvironment

from rtm.cli import main

if __name__ == "__main__":
    main(["run", *sys.argv[1:]], prog_name="rtm", obj=StreamExecutionEnvironment.get_execution_environment)
