"""`rtm collect` as a real server on 127.0.0.1 in front of the real broker."""

import json
import time

import pytest
import requests

from rtm import kafka_clients
from rtm.events import MAX_EVENT_BYTES
from rtm.waiting import wait_until
from server_helpers import metric, running

pytestmark = pytest.mark.kafka

NOW = 1_796_000_000_000


def event(event_id, **fields):
    return {"event_id": event_id, "type": "page_view", "ts": NOW, "anonymous_id": f"anon-{event_id}", **fields}


def on_topic(bootstrap, topic):
    """Everything the topic holds now."""
    return list(kafka_clients.read(bootstrap, topic, from_beginning=True, to_end=True, timeout_s=10))


@pytest.fixture
def collector(kafka_bootstrap, new_topic, tmp_path):
    topic = new_topic("events")

    def start(*options):
        return running(["collect", "--bootstrap", kafka_bootstrap, "--topic", topic, *options], tmp_path / "collect.log")

    start.topic = topic
    return start


def test_a_batch_of_good_and_bad_events_is_answered_per_event_and_only_the_good_ones_reach_kafka(
        kafka_bootstrap, collector):
    batch = [
        event("good-1", params={"page": "landing"}),
        {"event_id": "bad-no-user", "type": "page_view", "ts": NOW},
        event("good-2", user_id="u-7", ts="2026-11-29T10:00:00Z", context={"platform": "web"}),
        event("bad-seconds", ts=1_796_000_000),
        "not an object",
        event("bad-huge", params={"html": "x" * MAX_EVENT_BYTES}),
        event("good-3", type="add_to_cart", params={"sku": "sku-1"}),
    ]
    with collector() as server:
        before = time.time() * 1000
        answer = requests.post(f"{server.url}/v1/events", json=batch, timeout=10)
        after = time.time() * 1000

    assert answer.status_code == 202
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (3, 4)
    statuses = [(r["status"], r.get("event_id")) for r in body["results"]]
    assert statuses == [("accepted", "good-1"), ("rejected", "bad-no-user"), ("accepted", "good-2"),
                        ("rejected", "bad-seconds"), ("rejected", None), ("rejected", "bad-huge"),
                        ("accepted", "good-3")]
    reasons = [r.get("reason", "") for r in body["results"]]
    assert "neither user_id nor anonymous_id" in reasons[1]
    assert "epoch seconds" in reasons[3]
    assert "does not match the contract" in reasons[4]
    assert "too large" in reasons[5]

    records = on_topic(kafka_bootstrap, collector.topic)
    assert [json.loads(m.value())["event_id"] for m in records] == ["good-1", "good-2", "good-3"]
    assert [m.key() for m in records] == [b"anon-good-1", b"u-7", b"anon-good-3"]
    written = [json.loads(m.value()) for m in records]
    assert written[1]["ts"] == 1_795_946_400_000  # ISO-8601 normalised to epoch millis, as the job reads it
    assert written[1]["context"]["platform"] == "web"
    for record in written:
        assert before <= record["context"]["received_at"] <= after


def test_ndjson_lines_and_a_single_event_are_accepted_and_a_broken_line_is_rejected_alone(kafka_bootstrap, collector):
    lines = b"\n".join([json.dumps(event("n-1")).encode(), b"{broken", b"", json.dumps(event("n-2")).encode()])
    with collector() as server:
        ndjson = requests.post(f"{server.url}/v1/events", data=lines,
                               headers={"Content-Type": "application/x-ndjson"}, timeout=10)
        single = requests.post(f"{server.url}/v1/events", json=event("s-1"), timeout=10)

    assert ndjson.status_code == 202
    assert [r["status"] for r in ndjson.json()["results"]] == ["accepted", "rejected", "accepted"]
    assert "not JSON" in ndjson.json()["results"][1]["reason"]
    assert single.status_code == 202 and single.json()["accepted"] == 1
    assert [json.loads(m.value())["event_id"] for m in on_topic(kafka_bootstrap, collector.topic)] == \
        ["n-1", "n-2", "s-1"]


def test_unusable_bodies_and_limits_are_refused_with_the_reason_and_nothing_reaches_kafka(kafka_bootstrap, collector):
    with collector("--max-body", "2048", "--max-batch", "3") as server:
        url = f"{server.url}/v1/events"
        none_valid = requests.post(url, json=[{"event_id": "x"}], timeout=10)
        broken_array = requests.post(url, data=b"[{\"event_id\": 1", timeout=10)
        empty = requests.post(url, data=b"[]", timeout=10)
        too_many = requests.post(url, json=[event(f"m-{i}") for i in range(4)], timeout=10)
        too_big = requests.post(url, json=[event("big", params={"blob": "x" * 3000})], timeout=10)

    assert none_valid.status_code == 400 and none_valid.json()["rejected"] == 1
    assert broken_array.status_code == 400 and "not a JSON array" in broken_array.json()["error"]
    assert empty.status_code == 400 and "no events" in empty.json()["error"]
    assert too_many.status_code == 413 and "the limit is 3" in too_many.json()["error"]
    assert too_big.status_code == 413 and "the limit is 2048" in too_big.json()["error"]
    assert on_topic(kafka_bootstrap, collector.topic) == []


def test_more_events_than_the_producer_may_queue_get_503_with_retry_after(kafka_bootstrap, collector):
    with collector("--max-queued", "5") as server:
        busy = requests.post(f"{server.url}/v1/events", json=[event(f"q-{i}") for i in range(6)], timeout=10)
        fits = requests.post(f"{server.url}/v1/events", json=[event(f"q-{i}") for i in range(5)], timeout=10)

    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "1"
    assert [r["status"] for r in busy.json()["results"]] == ["failed"] * 6
    assert fits.status_code == 202
    assert len(on_topic(kafka_bootstrap, collector.topic)) == 5


def test_with_a_tokens_file_only_known_bearer_tokens_may_post_and_counts_are_per_source(
        kafka_bootstrap, collector, tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("web: 0123456789abcdef0123\nios: [fedcba9876543210fedc, 1111222233334444aaaa]\n")
    with collector("--tokens", str(tokens)) as server:
        url = f"{server.url}/v1/events"
        missing = requests.post(url, json=event("t-0"), timeout=10)
        wrong = requests.post(url, json=event("t-1"), headers={"Authorization": "Bearer nope"}, timeout=10)
        web = requests.post(url, json=event("t-2"), headers={"Authorization": "Bearer 0123456789abcdef0123"},
                            timeout=10)
        ios = requests.post(url, json=[event("t-3"), event("t-4")],
                            headers={"Authorization": "Bearer 1111222233334444aaaa"}, timeout=10)
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text

    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert "bearer token" in missing.json()["error"]
    assert (web.status_code, ios.status_code) == (202, 202)
    assert metric(metrics, "rtm_collect_events_total", source="web", outcome="accepted") == 1
    assert metric(metrics, "rtm_collect_events_total", source="ios", outcome="accepted") == 2
    assert [json.loads(m.value())["event_id"] for m in on_topic(kafka_bootstrap, collector.topic)] == \
        ["t-2", "t-3", "t-4"]


def test_browsers_on_other_origins_may_post_health_answers_and_metrics_scrape(collector):
    with collector("--cors-origin", "http://shop.example") as server:
        preflight = requests.options(f"{server.url}/v1/events", timeout=10, headers={
            "Origin": "http://shop.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization"})
        other = requests.options(f"{server.url}/v1/events", timeout=10, headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        health = requests.get(f"{server.url}/healthz", timeout=10)
        requests.post(f"{server.url}/v1/events", json=[event("c-1"), {"bad": 1}], timeout=10)
        metrics = requests.get(f"{server.url}/metrics", timeout=10)
        # librdkafka counts a record as queued until its delivery report is done, a moment
        # after the answer it let go: the gauge drains to 0, it need not be 0 at once.
        drained = wait_until(
            lambda: metric(requests.get(f"{server.url}/metrics", timeout=10).text, "rtm_collect_producer_queue") == 0,
            timeout_s=10, every_s=0.05, what="the producer queue gauge to drain")

    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://shop.example"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert other.status_code == 400 and "Access-Control-Allow-Origin" not in other.headers
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert metric(text, "rtm_collect_events_total", source="-", outcome="accepted") == 1
    assert metric(text, "rtm_collect_events_total", source="-", outcome="rejected") == 1
    assert metric(text, "rtm_collect_http_requests_total", method="POST", route="/v1/events", status="202") == 1
    assert metric(text, "rtm_collect_http_request_duration_seconds_count", method="POST", route="/v1/events") == 1
    assert drained
