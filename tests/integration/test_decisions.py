"""`rtm serve` as a real server on 127.0.0.1 reading triggers from the real broker."""

import json
import signal
import statistics
import time

import msgspec
import pytest
import requests
from confluent_kafka import Producer

from job_helpers import wait_for
from kafka_helpers import produce
from rtm.triggers import make_trigger
from server_helpers import EventStream, Server, metric, running

pytestmark = pytest.mark.kafka


def trigger(user_key, *events, channel="popup", holdout=False, age_s=0.0, campaign="welcome_coupon"):
    made = make_trigger(campaign_id=campaign, version=1, user_key=user_key, user_id=None, anonymous_id=user_key,
                        channel=channel, endpoint="web-popup", message=f"hello {user_key}", data={"coupon": "W5"},
                        matched_event_ids=list(events), event_time=int(time.time() * 1000), holdout=holdout)
    made.emitted_at = int((time.time() - age_s) * 1000)
    return msgspec.to_builtins(made)


def publish(bootstrap, topic, *triggers):
    produce(bootstrap, topic, [(t["user_key"].encode(), json.dumps(t).encode()) for t in triggers])


def fetch(server, user_key, **params):
    answer = requests.get(f"{server.url}/v1/users/{user_key}/messages", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return [m["trigger_id"] for m in answer.json()["messages"]]


def feed_counts(server):
    return requests.get(f"{server.url}/metrics", timeout=10).text


def stored(server):
    try:
        return metric(feed_counts(server), "rtm_serve_triggers_total", outcome="stored")
    except AssertionError:
        return 0


@pytest.fixture
def serve_args(kafka_bootstrap, new_topic, tmp_path):
    topic = new_topic("triggers")
    return topic, ["serve", "--bootstrap", kafka_bootstrap, "--topic", topic, "--store", str(tmp_path / "d.sqlite")]


def test_a_user_gets_each_pending_popup_once_and_never_holdout_other_channels_or_expired_ones(
        kafka_bootstrap, serve_args, tmp_path):
    topic, args = serve_args
    fresh, later = trigger("u1", "e1"), trigger("u1", "e2", campaign="store_section_popup")
    publish(kafka_bootstrap, topic,
            fresh, trigger("u1", "e3", holdout=True), trigger("u1", "e4", channel="email"),
            trigger("u1", "e5", age_s=3600), fresh, later, trigger("u2", "e6"))
    with running([*args, "--ttl", "popup=30m"], tmp_path / "serve.log") as server:
        wait_for(lambda: stored(server) == 3, timeout_s=20, what="three stored pop-ups")
        first = fetch(server, "u1", channel="popup")
        again = fetch(server, "u1", channel="popup")
        ack_shown = requests.post(f"{server.url}/v1/messages/{fresh['trigger_id']}/shown", timeout=10)
        holdout_id = trigger("u1", "e3", holdout=True)["trigger_id"]
        ack_holdout = requests.post(f"{server.url}/v1/messages/{holdout_id}/shown", timeout=10)
        push_channel = requests.get(f"{server.url}/v1/users/u1/messages", params={"channel": "email"}, timeout=10)
        metrics = feed_counts(server)

    assert first == [fresh["trigger_id"], later["trigger_id"]]
    assert again == []
    assert ack_shown.status_code == 409
    assert ack_holdout.status_code == 404
    assert push_channel.status_code == 400 and "pull channels are popup" in push_channel.json()["error"]
    for outcome, count in {"stored": 3, "duplicate": 1, "holdout": 1, "other_channel": 1, "expired": 1}.items():
        assert metric(metrics, "rtm_serve_triggers_total", outcome=outcome) == count, outcome
    assert metric(metrics, "rtm_serve_messages_shown_total", via="fetch") == 2
    assert metric(metrics, "rtm_serve_http_requests_total", method="GET", route="/v1/users/{key}/messages",
                  status="200") == 2
    assert metric(metrics, "rtm_serve_pending_messages") == 1  # u2's


def test_a_peeked_message_stays_pending_until_acknowledged_then_is_never_served_again(
        kafka_bootstrap, serve_args, tmp_path):
    topic, args = serve_args
    message = trigger("u3", "e1")
    publish(kafka_bootstrap, topic, message)
    with running(args, tmp_path / "serve.log") as server:
        wait_for(lambda: stored(server) == 1, timeout_s=20, what="the stored pop-up")
        peeked = [fetch(server, "u3", peek="true"), fetch(server, "u3", peek="true")]
        ack = requests.post(f"{server.url}/v1/messages/{message['trigger_id']}/shown", timeout=10)
        second_ack = requests.post(f"{server.url}/v1/messages/{message['trigger_id']}/shown", timeout=10)
        after = fetch(server, "u3")

    assert peeked == [[message["trigger_id"]]] * 2
    assert ack.status_code == 200 and ack.json()["status"] == "shown"
    assert second_ack.status_code == 409
    assert after == []


def test_a_restart_loses_no_pending_popup_and_shows_none_twice(kafka_bootstrap, serve_args, tmp_path):
    topic, args = serve_args
    shown_before, pending_before = trigger("u4", "e1"), trigger("u5", "e2")
    arrived_while_down = trigger("u4", "e3", campaign="store_section_popup")
    log = tmp_path / "serve.log"
    server = Server(args, log).start()
    try:
        publish(kafka_bootstrap, topic, shown_before, pending_before)
        wait_for(lambda: stored(server) == 2, timeout_s=20, what="two stored pop-ups")
        assert fetch(server, "u4") == [shown_before["trigger_id"]]
    finally:
        server.stop(signal.SIGKILL)  # a crash: nothing gets a chance to be flushed

    # While it is down: a new pop-up, and a repeat of the shown one (an at-least-once job replays).
    publish(kafka_bootstrap, topic, arrived_while_down, shown_before)
    with running(args, log) as server:
        wait_for(lambda: stored(server) == 1, timeout_s=20, what="the pop-up that arrived while down")
        u4, u5 = fetch(server, "u4"), fetch(server, "u5")
        metrics = feed_counts(server)

    assert u4 == [arrived_while_down["trigger_id"]]
    assert u5 == [pending_before["trigger_id"]]
    # Read after the restart: only what came while it was down (the offsets are in the store).
    assert metric(metrics, "rtm_serve_triggers_total", outcome="duplicate") == 1


def test_the_stream_pushes_a_new_popup_within_100_ms_of_it_reaching_kafka(kafka_bootstrap, serve_args, tmp_path):
    topic, args = serve_args
    earlier = trigger("u6", "e0")
    publish(kafka_bootstrap, topic, earlier)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0})
    with running(args, tmp_path / "serve.log") as server:
        wait_for(lambda: stored(server) == 1, timeout_s=20, what="the earlier pop-up")
        stream = EventStream(f"{server.url}/v1/users/u6/stream?channel=popup")
        try:
            event, data, _ = stream.next()
            assert (event, data["trigger_id"]) == ("message", earlier["trigger_id"])  # pending ones come first
            delays, pushed = [], []
            for n in range(20):
                new = trigger("u6", f"e{n + 1}")
                errors = []
                sent = time.monotonic()
                producer.produce(topic, key=b"u6", value=json.dumps(new).encode(),
                                 on_delivery=lambda err, _: errors.append(err))
                producer.flush(10)
                event, data, arrived = stream.next()
                assert errors == [None]
                delays.append(arrived - sent)
                pushed.append(data["trigger_id"])
                assert data["trigger_id"] == new["trigger_id"]
                time.sleep(0.05)
            stream.close()
            wait_for(lambda: metric(feed_counts(server), "rtm_serve_streams") == 0, timeout_s=10,
                     what="the closed stream to be gone")
            after = fetch(server, "u6")
            metrics = feed_counts(server)
        finally:
            stream.close()

    assert after == []  # pushed means shown
    assert len(set(pushed)) == 20
    assert metric(metrics, "rtm_serve_messages_shown_total", via="stream") == 21
    # From before the produce call: each delay bounds the time from Kafka to the page from above.
    assert statistics.median(delays) < 0.1 and sorted(delays)[-2] < 0.1, [round(d * 1000) for d in delays]
