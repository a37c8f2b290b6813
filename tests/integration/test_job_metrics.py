"""The campaign job's counters scrape as Prometheus metrics from Flink's own reporter
(flink-conf/config.yaml `metrics.reporter.prom.*`), on a MiniCluster as `rtm run` starts it."""

import json
import re
import time

import pytest
import requests

from job_helpers import fresh_topics, live_job, read_json, wait_for
from kafka_helpers import produce
from rtm import flink_config

pytestmark = [pytest.mark.kafka, pytest.mark.flink]


def reporter_ports() -> range:
    low, _, high = flink_config.load()["metrics.reporter.prom.port"].partition("-")
    return range(int(low), int(high or low) + 1)


def job_counter(job_id: str, name: str) -> float | None:
    """The sum over subtasks of the job's operator counter `name`, from whichever port of
    the range this MiniCluster's reporter took (other local runs hold the others)."""
    pattern = re.compile(rf'^flink_taskmanager_job_task_operator_{name}\{{(.*)\}} (\S+)$', re.MULTILINE)
    for port in reporter_ports():
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except requests.RequestException:
            continue
        values = [float(value) for labels, value in pattern.findall(text) if f'job_id="{job_id}"' in labels]
        if values:
            return sum(values)
    return None


def test_the_jobs_triggers_and_dead_letters_counters_scrape_from_flinks_prometheus_reporter(
        kafka_bootstrap, new_topic):
    topics = fresh_topics(new_topic)
    now = int(time.time() * 1000)
    landing = {"event_id": "m-1", "type": "page_view", "ts": now, "anonymous_id": "first-timer",
               "params": {"page": "landing"}}
    with live_job(kafka_bootstrap, topics) as job:
        job_id = str(job.get_job_id())
        produce(kafka_bootstrap, topics.events, [(b"first-timer", json.dumps(landing).encode()),
                                                 (b"x", b"not json at all")])
        [trigger] = read_json(kafka_bootstrap, topics.triggers, expected=1, timeout_s=90)
        assert trigger["campaign_id"] == "welcome_coupon"
        triggers = wait_for(lambda: job_counter(job_id, "triggers"), timeout_s=30, what="the triggers counter")
        dead_letters = wait_for(lambda: job_counter(job_id, "dead_letters"), timeout_s=30,
                                what="the dead_letters counter")

    assert triggers == 1
    assert dead_letters == 1
