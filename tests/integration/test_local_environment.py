"""The local MiniCluster's JVM: compiled by C1 only (jobs.environment.LOCAL_JVM_ARGS)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.flink

PROBE = """
import json, os
from pyflink.java_gateway import get_gateway
from jobs.environment import local_environment
os.environ["JVM_ARGS"] = "-Xss2m"
local_environment()
flags = list(get_gateway().jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
print(json.dumps({"flags": flags, "after": os.environ.get("JVM_ARGS")}))
"""


def test_the_local_jvm_compiles_with_c1_only_after_the_users_flags_and_leaves_jvm_args_as_it_was():
    # A process of its own, so that it starts its JVM (not this test session's, whose
    # gateway PyFlink announces to children in PYFLINK_* variables).
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYFLINK_")}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    flags = probe["flags"]
    assert "-XX:TieredStopAtLevel=1" in flags and "-Xss2m" in flags
    assert flags.index("-XX:TieredStopAtLevel=1") < flags.index("-Xss2m")  # the user's come last, and win
    assert probe["after"] == "-Xss2m"  # a cluster started later from this process gets the user's flags only
