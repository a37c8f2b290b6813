"""The campaign job at parallelism 2 over a partitioned events topic (issue: throughput,
scale-out): the same triggers as preview, whatever the parallelism."""

import json
import zlib

from click.testing import CliRunner
from confluent_kafka import Producer

import scenarios
from job_helpers import fresh_topics, read_json, run_bounded
from kafka_helpers import produce
from rtm import generator
from rtm.cli import main
from rtm.events import user_key

PARTITIONS = 5
USED_PARTITIONS = 4  # the last one stays empty: an idle partition must not hold event time back


def test_parallelism_2_over_partitions_fires_the_same_trigger_ids_as_preview(kafka_bootstrap, new_topic, tmp_path):
    events = sorted([*scenarios.events(), *generator.generate(200, start_ms=scenarios.T0)], key=lambda e: e["ts"])
    profiles = [*scenarios.PROFILES, *generator.profiles(200)]
    events_file, profiles_file = tmp_path / "events.jsonl", tmp_path / "profiles.jsonl"
    events_file.write_bytes(scenarios.jsonl(events))
    profiles_file.write_bytes(scenarios.jsonl(profiles))
    # --max-future: the last scenario event carries event time 5 h on, beyond the default 1 h over files.
    preview = CliRunner().invoke(main, ["campaigns", "preview", "--campaigns", "campaigns", "--events",
                                        str(events_file), "--profiles", str(profiles_file), "--max-future", "6h"])
    assert preview.exit_code == 0, preview.output
    expected = sorted(json.loads(line)["trigger_id"] for line in preview.stdout.splitlines())

    topics = fresh_topics(new_topic, event_partitions=PARTITIONS)
    produce(kafka_bootstrap, topics.profiles, [(p["user_id"].encode(), json.dumps(p).encode()) for p in profiles])
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    used = set()
    for event in events:  # each user's events in one partition, in order, as a keyed producer writes them
        key = user_key(event.get("user_id"), event.get("anonymous_id")).encode()
        partition = zlib.crc32(key) % USED_PARTITIONS
        used.add(partition)
        producer.produce(topics.events, key=key, value=json.dumps(event).encode(), partition=partition)
    assert producer.flush(30) == 0
    assert used == set(range(USED_PARTITIONS))

    run_bounded(kafka_bootstrap, topics, parallelism=2)

    triggers = read_json(kafka_bootstrap, topics.triggers, expected=len(expected) + 1, timeout_s=15)
    assert len(expected) > len(scenarios.EXPECTED)
    assert sorted(t["trigger_id"] for t in triggers) == expected
