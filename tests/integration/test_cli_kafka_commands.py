"""The Kafka-facing commands write and read real topics exactly as they say."""

import json
from pathlib import Path

from click.testing import CliRunner

from kafka_helpers import consume_all, produce
from rtm.cli import main


def test_events_produce_writes_lines_as_they_are_keyed_by_user_key(kafka_bootstrap, new_topic, tmp_path):
    topic = new_topic("events")
    lines = [
        b'{"event_id": "e1", "type": "login", "ts": 1790000000000, "user_id": "u1"}',
        b'{"event_id": "e2", "type": "login", "ts": 1790000000000, "anonymous_id": "d7"}',
        b"this line is not JSON",
    ]
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n\n")

    result = CliRunner().invoke(main, ["events", "produce", str(source), "--topic", topic, "--bootstrap", kafka_bootstrap])

    assert result.exit_code == 0, result.output
    written = [(m.key(), m.value()) for m in consume_all(kafka_bootstrap, topic, expected=3)]
    assert written == [(b"u1", lines[0]), (b"d7", lines[1]), (None, lines[2])]


def test_triggers_tail_prints_from_the_beginning_up_to_max(kafka_bootstrap, new_topic):
    topic = new_topic("triggers")
    triggers = [{"trigger_id": f"t{i}", "campaign_id": "c"} for i in range(5)]
    produce(kafka_bootstrap, topic, [(b"u1", json.dumps(t).encode()) for t in triggers])

    result = CliRunner().invoke(
        main, ["triggers", "tail", "--from-beginning", "--max", "3", "--topic", topic, "--bootstrap", kafka_bootstrap]
    )

    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.output.splitlines()] == triggers[:3]


def test_triggers_tail_on_a_missing_topic_says_so(kafka_bootstrap):
    result = CliRunner().invoke(
        main, ["triggers", "tail", "--topic", "no-such-topic", "--timeout", "1", "--bootstrap", kafka_bootstrap]
    )
    assert result.exit_code == 2
    assert "no-such-topic" in result.output


def test_campaigns_publish_list_and_retire_through_the_topic(kafka_bootstrap, new_topic, tmp_path):
    topic = new_topic("campaigns")
    kafka = ["--topic", topic, "--bootstrap", kafka_bootstrap]
    runner = CliRunner()

    published = runner.invoke(main, ["campaigns", "publish", "campaigns", *kafka])
    assert published.exit_code == 0, published.output
    listed = runner.invoke(main, ["campaigns", "list", *kafka])
    ids = [line.split("\t")[0] for line in listed.output.splitlines()]
    assert "welcome_coupon" in ids and len(ids) == len(list(Path("campaigns").glob("*.yaml")))  # policy.yaml too
    assert "published the policy (_policy)" in published.output
    assert "_policy\tthe policy\t2 cap(s)" in listed.output

    retired = runner.invoke(main, ["campaigns", "retire", "welcome_coupon", *kafka])
    assert retired.exit_code == 0, retired.output
    after = runner.invoke(main, ["campaigns", "list", *kafka])
    assert [line.split("\t")[0] for line in after.output.splitlines()] == [i for i in ids if i != "welcome_coupon"]
    # The retirement is a tombstone keyed by the campaign id.
    assert (b"welcome_coupon", None) in [(m.key(), m.value()) for m in consume_all(kafka_bootstrap, topic, expected=len(ids) + 1)]


def test_campaigns_publish_writes_nothing_when_a_file_is_invalid(kafka_bootstrap, new_topic, tmp_path):
    topic = new_topic("campaigns")
    (tmp_path / "good.yaml").write_text(Path("campaigns/welcome_coupon.yaml").read_text().replace("welcome_coupon", "good"))
    (tmp_path / "bad.yaml").write_text("id: bad\nversion: one\n")

    result = CliRunner().invoke(main, ["campaigns", "publish", str(tmp_path), "--topic", topic, "--bootstrap", kafka_bootstrap])

    assert result.exit_code == 2
    assert "bad.yaml" in result.output and "version" in result.output
    assert consume_all(kafka_bootstrap, topic, expected=1, timeout_s=2) == []
