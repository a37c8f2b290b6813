"""Kafka client settings from one file, for every client rtm makes (secured Kafka).

The file is Kafka's own client.properties (key=value lines, # or ! comments), as Confluent
Cloud, MSK or Aiven hand it out, chosen with `--kafka-config FILE` or RTM_KAFKA_CONFIG.
rtm has clients of two kinds: librdkafka (confluent-kafka, in the commands and servers)
and the Java clients (the Flink Kafka connector). Most names are the same in both
(security.protocol, sasl.mechanism, ssl.endpoint.identification.algorithm, client.id);
where they differ, one file serves both:

- sasl.jaas.config (Java) with PlainLoginModule or ScramLoginModule username="..." and
  password="..." gives librdkafka's sasl.username and sasl.password; the other way round,
  sasl.username/sasl.password give the Java clients a sasl.jaas.config.
- ssl.truststore.location with ssl.truststore.type=PEM (Java) gives librdkafka's
  ssl.ca.location, and ssl.ca.location gives the Java clients a PEM truststore.
- bootstrap.servers is the default of --bootstrap.
"""

import os
import re
from pathlib import Path

from rtm.errors import RtmError

ENV_VAR = "RTM_KAFKA_CONFIG"

_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
# Settings only one kind of client knows; each is translated for the other (see above).
# Java classes (*.class: callback handlers, ...) go to the Java clients alone.
_JAVA_ONLY = {"sasl.jaas.config", "ssl.truststore.location", "ssl.truststore.type", "ssl.truststore.password"}
_LIBRDKAFKA_ONLY = {"sasl.username", "sasl.password", "ssl.ca.location"}
_SHADED = "org.apache.flink.kafka.shaded."
_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')

_chosen: Path | None = None


def use(path: Path | None) -> None:
    """Take the settings from `path` in this process (None: RTM_KAFKA_CONFIG, if set)."""
    global _chosen
    _chosen = path
    properties()  # a missing or broken file fails now, naming itself


def path() -> Path | None:
    """The file in use: the one given to `use`, else RTM_KAFKA_CONFIG, else none."""
    if _chosen is not None:
        return _chosen
    from_env = os.environ.get(ENV_VAR)
    return Path(from_env) if from_env else None


def parse(text: str, source: str) -> dict[str, str]:
    """key=value (or key: value) lines; # and ! start comments; a trailing \\ continues a line."""
    settings: dict[str, str] = {}
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not pending and (not stripped or stripped[0] in "#!"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\") and not stripped.endswith("\\\\"):
            pending += stripped[:-1]
            continue
        entry, pending = pending + stripped, ""
        found = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)", entry)
        if not found:
            raise RtmError(f"{source}:{start}: {entry!r} is not key=value")
        settings[found.group(1)] = found.group(2).strip()
    if pending:
        raise RtmError(f"{source}:{start}: the last line ends with a \\ continuation and nothing follows")
    return settings


def properties() -> dict[str, str]:
    """The file's settings as written ({} without a file)."""
    chosen = path()
    if chosen is None:
        return {}
    try:
        text = chosen.read_text()
    except OSError as err:
        raise RtmError(f"cannot read the Kafka client settings {chosen} (--kafka-config or {ENV_VAR}): "
                       f"{err.strerror}") from None
    return parse(text, str(chosen))


def bootstrap() -> str | None:
    """bootstrap.servers of the file, if it sets one."""
    return properties().get("bootstrap.servers")


def _jaas_credentials(jaas: str) -> dict[str, str]:
    options = {name: re.sub(r"\\(.)", r"\1", value) for name, value in _JAAS_OPTION.findall(jaas)}
    if "username" not in options or "password" not in options:
        raise RtmError(f"sasl.jaas.config in {path()} has no username=\"...\" and password=\"...\": write it as "
                       f"{_LOGIN_MODULES['PLAIN']} required username=\"NAME\" password=\"SECRET\";")
    return {"sasl.username": options["username"], "sasl.password": options["password"]}


def _refused(err) -> None:
    """error_cb of every confluent-kafka client: a refused login (or another fatal error)
    ends the command at the client's next poll or flush, saying why, instead of retries."""
    from confluent_kafka import KafkaError  # here: commands without a Kafka client skip its import

    if err.code() == KafkaError._AUTHENTICATION or err.fatal():
        source = path() or f"--kafka-config or {ENV_VAR}"
        raise RtmError(f"Kafka refused this client: {err.str()}; check security.protocol and the sasl.*/ssl.* "
                       f"settings in {source}")


def librdkafka(settings: dict) -> dict:
    """`settings` of a confluent-kafka client with the file's on top (bootstrap.servers
    stays), and an error_cb that turns a refused login into an RtmError."""
    file = properties()
    derived = {key: value for key, value in file.items()
               if key not in _JAVA_ONLY and not key.endswith(".class") and key != "bootstrap.servers"}
    if "sasl.jaas.config" in file and "sasl.username" not in file:
        derived.update(_jaas_credentials(file["sasl.jaas.config"]))
    if "ssl.truststore.location" in file and "ssl.ca.location" not in file:
        if file.get("ssl.truststore.type", "JKS").upper() != "PEM":
            raise RtmError(f"{path()}: librdkafka (rtm's commands) cannot read a {file.get('ssl.truststore.type', 'JKS')}"
                           " truststore: give ssl.truststore.type=PEM with a PEM file, or ssl.ca.location")
        derived["ssl.ca.location"] = file["ssl.truststore.location"]
    return {"error_cb": _refused, **settings, **derived}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def java() -> dict[str, str]:
    """The file's settings for the Java Kafka clients (the Flink connector), bootstrap.servers aside."""
    file = properties()
    derived = {key: value for key, value in file.items() if key not in _LIBRDKAFKA_ONLY and key != "bootstrap.servers"}
    if "sasl.username" in file and "sasl.jaas.config" not in file:
        mechanism = file.get("sasl.mechanism", file.get("sasl.mechanisms", "PLAIN")).upper()
        if mechanism not in _LOGIN_MODULES:
            raise RtmError(f"{path()}: sasl.mechanism={mechanism} needs a sasl.jaas.config for the Flink connector")
        derived["sasl.jaas.config"] = (f'{_LOGIN_MODULES[mechanism]} required username={_quoted(file["sasl.username"])} '
                                       f'password={_quoted(file.get("sasl.password", ""))};')
    if "ssl.ca.location" in file and "ssl.truststore.location" not in file:
        derived.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": file["ssl.ca.location"]})
    return {key: _shaded(value) if key.endswith((".jaas.config", ".class")) else value
            for key, value in derived.items()}


def _shaded(value: str) -> str:
    # The connector jar (flink-sql-connector-kafka) carries kafka-clients relocated under
    # org.apache.flink.kafka.shaded: a login module or callback class named as Kafka names
    # it is not found there ("No LoginModule found for ...PlainLoginModule").
    return re.sub(r"(?<![\w.])org\.apache\.kafka\.", f"{_SHADED}org.apache.kafka.", value)
