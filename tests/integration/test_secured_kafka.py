"""Secured Kafka (issue 15 item 5): one client.properties file, given with --kafka-config or
RTM_KAFKA_CONFIG, takes the commands (librdkafka) and the campaign job's Flink connector
(Java clients) through a SASL/PLAIN listener of the embedded broker.
"""

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtm import kafka_broker, kafka_config, topics
from rtm.cli import main
from test_cluster import TWO_STEP

USER, PASSWORD = "rtm_app", "p@ss word=1"


def rtm(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture
def sasl_broker(isolated_home, monkeypatch):
    """A broker of its own with a SASL_PLAINTEXT listener that knows one user."""
    monkeypatch.setattr(kafka_config, "_chosen", None)  # the file an in-process command chose goes with the test
    monkeypatch.delenv(kafka_config.ENV_VAR, raising=False)
    broker = kafka_broker.start(sasl_users={USER: PASSWORD})
    topics.ensure_topics(broker.bootstrap)  # as `rtm kafka start` does, on its plaintext listener
    try:
        yield broker
    finally:
        kafka_broker.stop()


def _java_style(path, bootstrap, password):
    """What Confluent Cloud and MSK hand out: the JAAS line of the Java clients."""
    path.write_text(
        "# Kafka client settings\n"
        f"bootstrap.servers={bootstrap}\n"
        "security.protocol=SASL_PLAINTEXT\n"
        "sasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n"
        f'    username="{USER}" password="{password}";\n'
    )
    return path


def _librdkafka_style(path, bootstrap, password):
    path.write_text(f"bootstrap.servers: {bootstrap}\n! librdkafka's names\nsecurity.protocol=SASL_PLAINTEXT\n"
                    f"sasl.mechanism=PLAIN\nsasl.username={USER}\nsasl.password={password}\n")
    return path


def test_with_the_right_credentials_events_go_in_and_triggers_come_out_of_the_job_through_sasl(
    sasl_broker, tmp_path, monkeypatch
):
    java_style = _java_style(tmp_path / "java.properties", sasl_broker.sasl_bootstrap, PASSWORD)
    librdkafka_style = _librdkafka_style(tmp_path / "librdkafka.properties", sasl_broker.sasl_bootstrap, PASSWORD)
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "two_step.yaml").write_text(TWO_STEP)
    ts = 1_764_590_400_000
    (tmp_path / "events.jsonl").write_text("".join(
        json.dumps({"event_id": f"{user}-{type}", "type": type, "ts": ts + n, "user_id": user}) + "\n"
        for n, (user, type) in enumerate([("buyer", "a"), ("browser", "a"), ("buyer", "b")])))

    # No --bootstrap anywhere: bootstrap.servers of the file.
    produced = rtm("events", "produce", tmp_path / "events.jsonl", "--kafka-config", java_style)
    assert produced.exit_code == 0, produced.output
    assert f"wrote 3 records to rtm.events at {sasl_broker.sasl_bootstrap}" in produced.output

    # The job's Kafka sources and sinks log in with the JAAS line derived from sasl.username/password.
    ran = rtm("run", "--bounded", "--campaigns", tmp_path / "campaigns", "--kafka-config", librdkafka_style)
    assert ran.exit_code == 0, ran.output

    monkeypatch.setenv(kafka_config.ENV_VAR, str(java_style))
    tailed = rtm("triggers", "tail", "--from-beginning", "--max", 1, "--timeout", 10)
    assert tailed.exit_code == 0, tailed.output
    [trigger] = [json.loads(line) for line in tailed.output.splitlines() if line.startswith("{")]
    assert (trigger["user_key"], trigger["matched_event_ids"]) == ("buyer", ["buyer-a", "buyer-b"])

    # The listener takes no client without the settings.
    monkeypatch.delenv(kafka_config.ENV_VAR)
    anonymous = rtm("triggers", "tail", "--bootstrap", sasl_broker.sasl_bootstrap, "--from-beginning", "--max", 1)
    assert anonymous.exit_code == 2 and "cannot reach Kafka" in anonymous.output


def _kafka_client_threads() -> int:
    """librdkafka's threads in this process (named rdk:...): while any client lives."""
    return sum(task.joinpath("comm").read_text().startswith("rdk:") for task in Path("/proc/self/task").iterdir())


def test_wrong_credentials_fail_within_seconds_saying_what_to_check(sasl_broker, tmp_path):
    wrong = _java_style(tmp_path / "wrong.properties", sasl_broker.sasl_bootstrap, "not-the-password")
    (tmp_path / "events.jsonl").write_text('{"event_id": "e", "type": "a", "ts": 1, "user_id": "u"}\n')

    running_before = _kafka_client_threads()
    for command in (["events", "produce", tmp_path / "events.jsonl"], ["run", "--bounded"],
                    ["triggers", "tail", "--from-beginning"]):
        started = time.monotonic()
        result = rtm(*command, "--kafka-config", wrong)
        assert result.exit_code == 2, (command, result.output)
        assert "Kafka refused this client" in result.output and "Invalid username or password" in result.output
        assert f"sasl.*/ssl.* settings in {wrong}" in result.output
        assert time.monotonic() - started < 20, command  # librdkafka would retry forever
        # and the refused client is shut down, not left retrying (and logging) in the background
        assert _kafka_client_threads() <= running_before, command


def test_a_broken_settings_file_is_refused_naming_its_line(isolated_home, tmp_path, monkeypatch):
    monkeypatch.setattr(kafka_config, "_chosen", None)
    (tmp_path / "broken.properties").write_text("# ok\nsecurity.protocol=SASL_SSL\nsasl.mechanism PLAIN\n")

    result = rtm("triggers", "tail", "--kafka-config", tmp_path / "broken.properties")

    assert result.exit_code == 2
    assert f"{tmp_path / 'broken.properties'}:3: 'sasl.mechanism PLAIN' is not key=value" in result.output
