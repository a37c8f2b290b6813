"""A real single-node Apache Kafka broker (KRaft) on loopback, for development and tests.

`start` formats storage on first use, launches `kafka.Kafka` in its own process group,
and returns once a metadata request answers. The broker keeps running after the
command exits; a small JSON file in RTM_HOME records where, so `status` and `stop`
(and every command that needs a broker) can find it.
"""

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from rtm import jars, kafka_config, processes, settings
from rtm.errors import RtmError
from rtm.waiting import WaitFailed, wait_until

_LOG4J2_CONFIG = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""

_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}{sasl_listener}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}{sasl_listener}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={log_dirs}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# A development broker keeps everything: replayed events carry old timestamps.
log.retention.ms=-1
"""

# With `sasl_users`: a second listener that takes only SASL/PLAIN logins of those users.
_SASL_PROPERTIES = """\
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required {users};
"""

START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30


@dataclass
class Broker:
    """A running embedded broker, as recorded in its state file."""

    pid: int
    port: int
    data_dir: str
    temporary: bool
    log_file: str
    sasl_port: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        """The SASL_PLAINTEXT listener (mechanism PLAIN), if started with SASL users."""
        return None if self.sasl_port is None else f"127.0.0.1:{self.sasl_port}"


def _state_file() -> Path:
    return settings.RTM_HOME / "kafka" / "broker.json"


def answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when a broker at `bootstrap` answers a metadata request."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "logger": _silent})
    try:
        admin.list_topics(timeout=timeout_s)
    except Exception:  # KafkaException: the broker is not (yet) there
        return False
    return True


class _Silent:
    def log(self, *args, **kwargs):
        pass


_silent = _Silent()


def running() -> Broker | None:
    """The recorded broker if its process is alive, else None (a stale record is removed)."""
    state = _state_file()
    if not state.exists():
        return None
    broker = Broker(**json.loads(state.read_text()))
    if processes.alive(broker.pid):
        return broker
    state.unlink()
    return None


def _format_storage(java: str, classpath: str, config: Path, data_dir: Path, log: Path) -> None:
    if (data_dir / "meta.properties").exists():
        return
    base = [java, "-cp", classpath, f"-Dlog4j2.configurationFile={log.with_suffix('.log4j2.properties')}"]
    cluster_id = subprocess.run(
        [*base, "kafka.tools.StorageTool", "random-uuid"], capture_output=True, text=True, check=True
    ).stdout.strip()
    formatted = subprocess.run(
        [*base, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)],
        capture_output=True,
        text=True,
    )
    if formatted.returncode != 0:
        raise RtmError(f"formatting Kafka storage in {data_dir} failed:\n{formatted.stdout}{formatted.stderr}")


def start(port: int | None = None, data_dir: str | None = None, sasl_users: dict[str, str] | None = None) -> Broker:
    """Start a broker unless one is already recorded and alive; return it. With
    `sasl_users` (name: password), it also listens for SASL/PLAIN logins of those users."""
    existing = running()
    if existing:
        if port is not None and port != existing.port:
            raise RtmError(
                f"a broker is already running at {existing.bootstrap}: "
                "stop it first with `rtm kafka stop`, or use it"
            )
        if sasl_users and existing.sasl_port is None:
            raise RtmError(f"a broker without SASL users is already running at {existing.bootstrap}: "
                           "stop it first with `rtm kafka stop`")
        return existing

    java = processes.java()
    classpath = jars.kafka_broker_classpath()
    if port is None:
        port = processes.free_port()
    elif not processes.port_is_free(port):
        raise RtmError(f"port {port} on 127.0.0.1 is taken: choose another with --port, or stop what uses it")
    controller_port = processes.free_port()
    sasl_port = processes.free_port() if sasl_users else None

    temporary = data_dir is None
    data = Path(data_dir or tempfile.mkdtemp(prefix="rtm-kafka-")).resolve()
    data.mkdir(parents=True, exist_ok=True)
    home = settings.RTM_HOME / "kafka"
    home.mkdir(parents=True, exist_ok=True)
    log_file = home / "broker.log"
    log4j = log_file.with_suffix(".log4j2.properties")
    log4j.write_text(_LOG4J2_CONFIG.format(log_file=log_file))
    config = home / "server.properties"
    config.write_text(
        _SERVER_PROPERTIES.format(port=port, controller_port=controller_port, log_dirs=data / "logs",
                                  sasl_listener=f",SASL_PLAINTEXT://127.0.0.1:{sasl_port}" if sasl_users else "")
        + (_SASL_PROPERTIES.format(users=" ".join(f'user_{name}="{password}"' for name, password in sasl_users.items()))
           if sasl_users else "")
    )
    _format_storage(java, classpath, config, data / "logs", log_file)

    with open(home / "broker.out", "ab") as out:
        process = subprocess.Popen(
            [
                java,
                "-Xms256m",
                "-Xmx512m",
                "-XX:+UseG1GC",
                "-cp",
                classpath,
                f"-Dlog4j2.configurationFile={log4j}",
                "kafka.Kafka",
                str(config),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command; stop signals the whole group
        )
    broker = Broker(process.pid, port, str(data), temporary, str(log_file), sasl_port)
    _state_file().write_text(json.dumps(asdict(broker)))

    try:
        wait_until(lambda: answers(broker.bootstrap, timeout_s=1.0), START_TIMEOUT_S, 0.2,
                   f"the Kafka broker on {broker.bootstrap}", give_up=lambda: process.poll() is not None)
    except WaitFailed:
        stop()
        raise RtmError(
            f"the Kafka broker did not come up on {broker.bootstrap}; last lines of "
            f"{log_file} and {home / 'broker.out'}:\n"
            f"{processes.tail(log_file)}\n{processes.tail(home / 'broker.out')}"
        ) from None
    return broker


def stop() -> Broker | None:
    """Stop the recorded broker (SIGTERM, then SIGKILL after a grace period)."""
    state = _state_file()
    if not state.exists():
        return None
    broker = Broker(**json.loads(state.read_text()))
    processes.stop_group(broker.pid, STOP_TIMEOUT_S)
    if broker.temporary:
        shutil.rmtree(broker.data_dir, ignore_errors=True)
    state.unlink()
    return broker


def resolve_bootstrap(bootstrap: str | None) -> str:
    """`bootstrap` when given; else bootstrap.servers of the Kafka client settings
    (--kafka-config), else the broker `rtm kafka start` left running, or a new one."""
    if bootstrap:
        return bootstrap
    if kafka_config.bootstrap():
        return kafka_config.bootstrap()
    return start().bootstrap
