"""The campaign job on real Kafka and a real MiniCluster (issue: the campaign job)."""

import json
import subprocess
import sys
import time

from click.testing import CliRunner

import scenarios
from job_helpers import fresh_topics, live_job, read_json, run_bounded, wait_for
from kafka_helpers import consume_all, produce
from rtm.cli import main

LAST_TS = scenarios.events()[-1]["ts"]


def _produce_scenarios(bootstrap, topics):
    produce(bootstrap, topics.profiles, [(p["user_id"].encode(), json.dumps(p).encode()) for p in scenarios.PROFILES])
    produce(bootstrap, topics.events, [(None, json.dumps(e).encode()) for e in scenarios.events()])


def test_every_reference_scenario_fires_exactly_its_triggers_through_kafka(kafka_bootstrap, new_topic):
    topics = fresh_topics(new_topic)
    _produce_scenarios(kafka_bootstrap, topics)

    run_bounded(kafka_bootstrap, topics, until=LAST_TS)

    triggers = read_json(kafka_bootstrap, topics.triggers, expected=len(scenarios.EXPECTED) + 1, timeout_s=10)
    assert scenarios.summary(triggers) == sorted(scenarios.EXPECTED)
    assert {t["user_key"] for t in triggers if t["holdout"]} == scenarios.HOLDOUT_USERS
    assert all(isinstance(t["emitted_at"], int) for t in triggers)
    # Triggers are keyed by user key.
    keys = {m.key().decode() for m in consume_all(kafka_bootstrap, topics.triggers, expected=len(triggers))}
    assert keys == {t["user_key"] for t in triggers}
