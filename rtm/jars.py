"""The jars that PyFlink does not ship: fetched (and rtm-flink.jar built) by `make jars`."""

from pathlib import Path

from rtm import settings
from rtm.errors import RtmError

_FETCH_HINT = "run `make jars` (it calls `mvn -f jars/pom.xml package`) in the rtm checkout"


def kafka_broker_classpath() -> str:
    """The classpath of the Apache Kafka broker, as a `java -cp` argument."""
    folder = settings.JARS_DIR / "kafka"
    if not any(folder.glob("kafka_2.13-*.jar")):
        raise RtmError(f"the Kafka broker jars are missing from {folder}: {_FETCH_HINT}")
    return str(folder / "*")


def flink_kafka_connector() -> Path:
    """The Flink Kafka SQL connector fat jar, which serves DataStream and SQL jobs alike."""
    found = sorted((settings.JARS_DIR / "flink").glob("flink-sql-connector-kafka-*.jar"))
    if not found:
        raise RtmError(
            f"the Flink Kafka connector jar is missing from {settings.JARS_DIR / 'flink'}: {_FETCH_HINT}"
        )
    return found[-1]


def rtm_flink() -> Path:
    """rtm's own Flink classes (jars/src/): the JVM side of the campaign job's per-event path."""
    jar = settings.JARS_DIR / "flink" / "rtm-flink.jar"
    if not jar.exists():
        raise RtmError(f"rtm's Flink jar {jar} is missing: {_FETCH_HINT}")
    return jar


def job_jars() -> list[Path]:
    """Every jar an rtm job needs besides Flink's own: in pipeline.jars locally, in lib/ on a cluster."""
    return [flink_kafka_connector(), rtm_flink()]
