"""A local standalone Flink cluster from the scripts the apache-flink wheel ships.

The wheel's scripts read everything from FLINK_CONF_DIR and FLINK_LIB_DIR, so `prepare`
writes both under RTM_HOME: a conf dir with flink-conf/config.yaml made loopback-only
(plus the wheel's logging files, without which nothing is logged), and a lib dir with
the wheel's jars, the Kafka connector and flink-python. Jobs never ship jars of their own:
a connector passed per job leaks metaspace until the TaskManager dies. The `flink` CLI
gets the same two dirs, so a submission plans its job with the classes the cluster has.

`start` runs `jobmanager.sh start-foreground` and `taskmanager.sh start-foreground`,
each in a process group of its own (the script execs the JVM, so the group leader is
the JVM), and returns when the REST API lists every TaskManager. A JSON file in RTM_HOME
records the processes, so `status`, `stop`, `rtm submit` and `rtm jobs` find them.
"""

import json
import os
import re
import shutil
import site
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pyflink
import yaml

from rtm import flink_config, jars, processes, settings
from rtm.errors import RtmError
from rtm.flink_rest import FlinkRest
from rtm.waiting import WaitFailed, wait_until

FLINK_HOME = Path(pyflink.__file__).parent
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30


def taskmanager_id(n: int) -> str:
    """The id (Flink's resource id, shown by the REST API) of the cluster's n-th TaskManager."""
    return f"taskmanager-{n}"


@dataclass
class Cluster:
    """A running cluster, as recorded in its state file; the JobManager's pid comes first,
    then the TaskManagers' in the order of their ids."""

    rest_port: int
    pids: list[int]

    def taskmanager_pid(self, resource_id: str) -> int:
        """The pid of the TaskManager with this id (REST: `taskmanager-id`)."""
        ids = [taskmanager_id(n) for n in range(len(self.pids) - 1)]
        if resource_id not in ids:
            raise RtmError(f"{resource_id!r} is not a TaskManager that `rtm cluster start` started ({', '.join(ids)})")
        return self.pids[1 + ids.index(resource_id)]

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.rest_port}"

    @property
    def rest(self) -> str:
        return f"http://{self.address}"


def _home() -> Path:
    return settings.RTM_HOME / "flink"


def _state_file() -> Path:
    return _home() / "cluster.json"


def log_dir() -> Path:
    return _home() / "log"


def _flink_python_jar() -> Path:
    found = sorted((FLINK_HOME / "opt").glob("flink-python-*.jar"))
    if not found:
        raise RtmError(f"flink-python is missing from {FLINK_HOME / 'opt'}: reinstall apache-flink (`make install`)")
    return found[-1]


def _write_conf(conf_dir: Path) -> None:
    home = _home()
    dirs = {name: home / name for name in ("log", "run", "tmp", "checkpoints", "savepoints")}
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)  # the scripts expect them to exist
    flat = flink_config.load()
    flat.update({
        # Loopback only: nothing outside this machine reaches the cluster.
        "jobmanager.rpc.address": LOOPBACK,
        "jobmanager.bind-host": LOOPBACK,
        "taskmanager.host": LOOPBACK,
        "taskmanager.bind-host": LOOPBACK,
        "rest.address": LOOPBACK,
        "rest.bind-address": LOOPBACK,
        # Logs, pids, spill files and state under RTM_HOME; /tmp stays clean.
        "env.log.dir": str(dirs["log"]),
        "env.pid.dir": str(dirs["run"]),
        "env.stdout-err.redirect-to-file": True,  # a YAML bool: the scripts compare the text
        "io.tmp.dirs": str(dirs["tmp"]),
        "env.java.opts.all": f"{flat.get('env.java.opts.all', '')} -Djava.io.tmpdir={dirs['tmp']}".strip(),
        "execution.checkpointing.dir": dirs["checkpoints"].as_uri(),
        "execution.checkpointing.savepoint-dir": dirs["savepoints"].as_uri(),
        # The client runs the job's script with this interpreter (it has pyflink and rtm).
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
    })
    conf_dir.mkdir(parents=True, exist_ok=True)
    draft = conf_dir / "config.yaml.new"
    draft.write_text(
        "# Written by rtm from flink-conf/config.yaml; changes here are overwritten.\n"
        + yaml.safe_dump(flat, sort_keys=False, width=1 << 16)
    )
    draft.replace(conf_dir / "config.yaml")
    for logging_file in [*FLINK_HOME.glob("conf/log4j*.properties"), *FLINK_HOME.glob("conf/logback*.xml")]:
        shutil.copyfile(logging_file, conf_dir / logging_file.name)


def _link_lib(lib_dir: Path) -> None:
    jar_files = [*FLINK_HOME.glob("lib/*.jar"), *jars.job_jars(), _flink_python_jar()]
    wanted = {jar.name: jar for jar in jar_files}
    lib_dir.mkdir(parents=True, exist_ok=True)
    for link in lib_dir.iterdir():
        if link.name not in wanted or link.resolve() != wanted[link.name].resolve():
            link.unlink()
    for name, jar in wanted.items():
        if not (lib_dir / name).exists():
            (lib_dir / name).symlink_to(jar)


def prepare() -> dict[str, str]:
    """Write the conf and lib dirs; return the environment the wheel's scripts need."""
    java = processes.java()
    conf_dir, lib_dir = _home() / "conf", _home() / "lib"
    _link_lib(lib_dir)
    _write_conf(conf_dir)
    return {
        **os.environ,
        "JAVA_HOME": str(Path(java).resolve().parent.parent),
        "FLINK_CONF_DIR": str(conf_dir),
        "FLINK_LIB_DIR": str(lib_dir),
        "FLINK_IDENT_STRING": "rtm",  # names the log files (the default, $USER, may be unset)
        # Thread mode runs Python inside the TaskManager's JVM, which finds pyflink only
        # through PYTHONPATH. rtm itself comes with each job (-pyfs), as on any cluster.
        "PYTHONPATH": os.pathsep.join(site.getsitepackages()),
    }


def overview(cluster: Cluster) -> dict | None:
    """The cluster's /overview (TaskManagers, slots, jobs), or None if nothing answers."""
    try:
        return FlinkRest(cluster.address).overview()
    except RtmError:
        return None


def _registered(overview: dict) -> int:
    """TaskManagers that have registered with their slots (each has at least one)."""
    return min(overview.get("taskmanagers", 0), overview.get("slots-total", 0))


def _recorded() -> Cluster | None:
    state = _state_file()
    return Cluster(**json.loads(state.read_text())) if state.exists() else None


def running() -> Cluster | None:
    """The recorded cluster if its JobManager is alive, else None (a stale record is removed)."""
    cluster = _recorded()
    if cluster is None or processes.alive(cluster.pids[0]):
        return cluster
    stop()  # TaskManagers without their JobManager only wait to time out
    return None


def _launch(script: str, args: list[str], env: dict[str, str], out: Path) -> int:
    with open(out, "ab") as output:
        return subprocess.Popen(
            [str(FLINK_HOME / "bin" / script), "start-foreground", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command; stop signals the whole group
        ).pid


def _logs() -> str:
    found = [path for pattern in ("*.console", "*.err", "*.log") for path in sorted(log_dir().glob(pattern))]
    return "\n".join(f"--- {path}\n{processes.tail(path, 10)}" for path in found if path.stat().st_size) or "(no logs)"


def start(rest_port: int | None = None, taskmanagers: int = 1) -> Cluster:
    """Start a JobManager and `taskmanagers` TaskManagers unless a cluster is already
    recorded and alive; return it once every TaskManager has registered."""
    existing = running()
    if existing:
        if rest_port is not None and rest_port != existing.rest_port:
            raise RtmError(
                f"a Flink cluster is already running at {existing.rest}: "
                "stop it first with `rtm cluster stop`, or use it"
            )
        return existing

    env = prepare()
    if rest_port is None:
        rest_port = int(flink_config.load().get("rest.port", 8081))
    if not processes.port_is_free(rest_port):
        raise RtmError(f"port {rest_port} on {LOOPBACK} is taken: choose another with --port, or stop what uses it")
    for leftover in ("run", "tmp"):  # pid files and spill/cache dirs of an earlier cluster
        shutil.rmtree(_home() / leftover, ignore_errors=True)
        (_home() / leftover).mkdir()
    # Fixed for this cluster, so the TaskManagers find the JobManager; the rest are random.
    ports = ["-D", f"rest.port={rest_port}", "-D", f"jobmanager.rpc.port={processes.free_port()}"]
    pids = [_launch("jobmanager.sh", ports, env, log_dir() / "jobmanager.console")]
    pids += [
        _launch("taskmanager.sh", [*ports, "-D", f"taskmanager.resource-id={taskmanager_id(n)}"], env,
                log_dir() / f"{taskmanager_id(n)}.console")
        for n in range(taskmanagers)
    ]
    cluster = Cluster(rest_port, pids)
    _state_file().write_text(json.dumps(asdict(cluster)))

    try:
        # A TaskManager shows in the overview before its slots do: wait for both.
        wait_until(lambda: _registered(overview(cluster) or {}) >= taskmanagers, START_TIMEOUT_S, 0.3,
                   f"{taskmanagers} TaskManagers on {cluster.rest}", give_up=lambda: not all(map(processes.alive, pids)))
    except WaitFailed:
        stop()
        raise RtmError(f"the Flink cluster did not come up on {cluster.rest}; last lines of its logs:\n{_logs()}") from None
    return cluster


def stop() -> Cluster | None:
    """Stop the recorded cluster, TaskManagers first (SIGTERM, then SIGKILL after a grace period)."""
    cluster = _recorded()
    if cluster is None:
        return None
    for pid in reversed(cluster.pids):
        processes.stop_group(pid, STOP_TIMEOUT_S)
    _state_file().unlink()
    return cluster


def resolve_jobmanager(jobmanager: str | None) -> str:
    """HOST:PORT of the REST API: `jobmanager` when given, else the cluster rtm started."""
    if jobmanager:
        return jobmanager
    cluster = running()
    if cluster is None:
        raise RtmError(
            "no Flink cluster is running: start one with `rtm cluster start`, or pass --jobmanager HOST:PORT"
        )
    return cluster.address


# What a job's Python code needs from the checkout: the packages. The checkout itself also
# holds .venv/, which -pyfs would zip and ship.
_SHIPPED = ("rtm", "jobs", "udfs")


def _python_files() -> Path:
    """A dir of links to what the job ships with -pyfs (the TaskManagers import it from there)."""
    folder = _home() / "python"
    folder.mkdir(parents=True, exist_ok=True)
    for name in _SHIPPED:
        link, target = folder / name, settings.PROJECT_ROOT / name
        if not (link.is_symlink() and link.readlink() == target):
            link.unlink(missing_ok=True)
            link.symlink_to(target)
    return folder


def _readable(output: str) -> str:
    # What the program printed and each exception's one-line message: no Java stack
    # frames, no Python traceback lines (indented), no log noise.
    noise = ("SLF4J", "WARNING:", "----", "Traceback")
    keep = [
        line for line in output.splitlines()
        if line.strip() and not line[0].isspace() and not line.startswith(noise)
    ]
    return "\n".join(keep[-40:])


def submit(jobmanager: str, run_args: list[str], from_savepoint: str | None = None) -> str:
    """Submit the campaign job (jobs/entry.py with `rtm run`'s `run_args`) detached to the
    cluster whose REST API is at `jobmanager`; return its JobID."""
    FlinkRest(jobmanager).overview()  # an unreachable cluster fails here, not after minutes of retries
    env = prepare()
    command = [
        str(FLINK_HOME / "bin" / "flink"), "run", "-d", "-m", jobmanager,
        *(["-s", from_savepoint] if from_savepoint else []),
        "-py", str(settings.PROJECT_ROOT / "jobs" / "entry.py"),
        "-pyfs", str(_python_files()),
        "-pyexec", sys.executable,
        "-pyclientexec", sys.executable,
        "--", *run_args,
    ]
    result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    found = re.search(r"JobID ([0-9a-f]{32})", result.stdout)
    if result.returncode != 0 or not found:
        raise RtmError(f"`flink run` did not submit the job (exit {result.returncode}):\n"
                       + _readable(result.stdout + result.stderr))
    return found.group(1)
