"""The embedded broker is real Apache Kafka: it starts, carries keyed records, stops."""

import socket
from collections import defaultdict

from click.testing import CliRunner

from kafka_helpers import consume_all, produce
from rtm import kafka_broker, settings, topics
from rtm.cli import main


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_broker_round_trip_keeps_every_record_in_order_per_key_and_frees_its_port(isolated_home):
    broker = kafka_broker.start()
    try:
        assert kafka_broker.answers(broker.bootstrap)
        created = topics.ensure_topics(broker.bootstrap, ["roundtrip"], partitions=3)
        assert created == ["roundtrip"]
        sent = [(f"user-{i % 10}".encode(), f"{i}".encode()) for i in range(1000)]
        produce(broker.bootstrap, "roundtrip", sent)

        received = consume_all(broker.bootstrap, "roundtrip", expected=1000, partitions=3)

        by_key_sent, by_key_received = defaultdict(list), defaultdict(list)
        for key, value in sent:
            by_key_sent[key].append(value)
        for message in received:
            by_key_received[message.key()].append(message.value())
        assert len(received) == 1000
        assert by_key_received == by_key_sent
    finally:
        kafka_broker.stop()
    assert kafka_broker.running() is None
    assert _port_free(broker.port)


def test_rtm_topics_exist_with_compaction_on_campaigns_and_profiles(kafka_bootstrap):
    from confluent_kafka.admin import AdminClient, ConfigResource

    topics.ensure_topics(kafka_bootstrap)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert set(settings.ALL_TOPICS) <= set(admin.list_topics(timeout=10).topics)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in settings.ALL_TOPICS]
    policies = {
        resource.name: future.result()["cleanup.policy"].value
        for resource, future in admin.describe_configs(resources).items()
    }
    assert {name for name, policy in policies.items() if policy == "compact"} == set(settings.COMPACTED_TOPICS)


def test_cli_start_status_stop(isolated_home):
    runner = CliRunner()
    started = runner.invoke(main, ["kafka", "start"])
    try:
        assert started.exit_code == 0, started.output
        assert started.output.startswith("bootstrap: 127.0.0.1:")
        status = runner.invoke(main, ["kafka", "status"])
        assert status.exit_code == 0
        assert status.output == started.output
    finally:
        stopped = runner.invoke(main, ["kafka", "stop"])
    assert stopped.exit_code == 0
    after = runner.invoke(main, ["kafka", "status"])
    assert after.exit_code == 1
    assert "rtm kafka start" in after.output


def test_start_without_jars_says_how_to_fetch_them(isolated_home, monkeypatch):
    monkeypatch.setattr(settings, "JARS_DIR", isolated_home / "no-jars")
    result = CliRunner().invoke(main, ["kafka", "start"])
    assert result.exit_code == 2
    assert "make jars" in result.output
    assert "Traceback" not in result.output


def test_start_on_a_taken_port_says_to_choose_another(isolated_home):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = CliRunner().invoke(main, ["kafka", "start", "--port", str(port)])
    assert result.exit_code == 2
    assert f"port {port}" in result.output and "--port" in result.output
    assert kafka_broker.running() is None


def test_start_without_java_says_to_install_it(isolated_home, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(isolated_home / "no-jdk"))
    result = CliRunner().invoke(main, ["kafka", "start"])
    assert result.exit_code == 2
    assert "Java" in result.output and "JAVA_HOME" in result.output
