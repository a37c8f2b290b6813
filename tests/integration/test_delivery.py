"""`rtm deliver` against real Kafka and a real HTTP server on 127.0.0.1."""

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition

from kafka_helpers import consume_all, produce
from rtm import delivery
from rtm.allowed_hosts import HostPolicy
from rtm.cli import main
from rtm.delivery import Outcome
from rtm.records import Trigger

RTM = Path(sys.executable).parent / "rtm"
FAST_RETRIES = delivery.RetryPolicy(max_retries=3, backoff_s=0.01)


class Endpoint:
    """A webhook receiver: records every request, answers with scripted statuses, else 200.

    `hold_request=n` makes the n-th request wait, unanswered, until the test ends;
    `held` is set when it arrives.
    """

    def __init__(self, statuses: dict[str, list[int]] | None = None, hold_request: int | None = None):
        self.statuses = statuses or {}
        self.hold_request = hold_request
        self.requests: list[dict] = []  # trigger_id, idempotency_key, body, status
        self.held, self._release = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def _handler(self):
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                trigger_id = json.loads(body)["trigger_id"]
                with endpoint._lock:
                    scripted = endpoint.statuses.get(trigger_id, [])
                    status = scripted.pop(0) if scripted else 200
                    endpoint.requests.append({"trigger_id": trigger_id, "body": body, "status": status,
                                              "idempotency_key": self.headers["Idempotency-Key"]})
                    hold = len(endpoint.requests) == endpoint.hold_request
                if hold:
                    endpoint.held.set()
                    endpoint._release.wait()
                    self.close_connection = True
                    return
                answer = b"campaign has no coupon field" if status == 400 else b"{}"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        return Handler

    def wait_for_requests(self, count: int, timeout_s: float = 30) -> bool:
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def received(self) -> Counter:
        return Counter(request["trigger_id"] for request in self.requests)

    def close(self):
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def endpoint_factory():
    endpoints = []

    def create(**kwargs) -> Endpoint:
        endpoints.append(Endpoint(**kwargs))
        return endpoints[-1]

    yield create
    for endpoint in endpoints:
        endpoint.close()


def trigger(trigger_id: str, endpoint: str, *, channel: str = "webhook", holdout: bool = False) -> bytes:
    """A trigger as the campaign job writes it, with the id given."""
    return msgspec.json.encode(Trigger(
        trigger_id=trigger_id, campaign_id="cart-abandoned", campaign_version=1, user_key="u1", user_id="u1",
        anonymous_id=None, channel=channel, endpoint=endpoint, message="You left something in your cart",
        data={"sku": "sku-1"}, matched_event_ids=["e1"], event_time=1_700_000_000_000, emitted_at=1_700_000_000_100,
        holdout=holdout,
    ))


# The endpoints listen on loopback, which a deliverer refuses unless the operator lists it.
LOOPBACK = HostPolicy.parse(["127.0.0.1"])


def run_deliverer(bootstrap, topic, dlq, tmp_path, *, max_records, hosts=LOOPBACK):
    """Run a webhook deliverer in this process until it handled `max_records` records."""
    return delivery.run(
        bootstrap, "webhook", store_path=tmp_path / "sent.sqlite", group_id=topic, topic=topic, dlq_topic=dlq,
        retry=FAST_RETRIES, timeout_s=5, max_records=max_records, idle_timeout_s=15, hosts=hosts,
    )


def rtm_deliver(bootstrap, topic, dlq, tmp_path, *options) -> list[str]:
    """The command line of a deliverer process (group: the topic's name) allowed to call 127.0.0.1."""
    return [str(RTM), "deliver", "--channel", "webhook", "--bootstrap", bootstrap, "--topic", topic,
            "--dlq-topic", dlq, "--group-id", topic, "--store", str(tmp_path / "sent.sqlite"),
            "--allow-host", "127.0.0.1", *options]


def dlq_size(bootstrap: str, dlq: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(dlq, 0), timeout=10)[1]
    finally:
        consumer.close()


def committed_offset(bootstrap: str, group_id: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id})
    try:
        return consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        consumer.close()


def test_a_trigger_id_repeated_in_the_topic_is_posted_once_with_its_json_and_idempotency_key(
    kafka_bootstrap, new_topic, endpoint_factory, tmp_path
):
    topic, dlq = new_topic("triggers"), new_topic("dlq")
    endpoint = endpoint_factory()
    a, b = trigger("a", endpoint.url), trigger("b", endpoint.url)
    produce(kafka_bootstrap, topic, [(b"u1", a), (b"u1", b), (b"u1", a)])

    counts = run_deliverer(kafka_bootstrap, topic, dlq, tmp_path, max_records=3)

    assert counts == {Outcome.SENT: 2, Outcome.DUPLICATE: 1}
    assert endpoint.received() == {"a": 1, "b": 1}
    assert [(r["body"], r["idempotency_key"]) for r in endpoint.requests] == [(a, "a"), (b, "b")]
    assert committed_offset(kafka_bootstrap, topic, topic) == 3


def test_after_a_kill_and_a_restart_each_trigger_is_sent_once_but_the_one_in_flight(
    kafka_bootstrap, new_topic, endpoint_factory, tmp_path
):
    topic, dlq = new_topic("triggers"), new_topic("dlq")
    # The 3rd request ("c") gets no answer: the deliverer is killed while it waits, so
    # "c" reached the endpoint without being recorded as sent: the crash window.
    endpoint = endpoint_factory(hold_request=3)
    ids = ["a", "b", "c", "d", "a", "b", "e"]  # "a" and "b" come again after the restart point
    produce(kafka_bootstrap, topic, [(b"u1", trigger(i, endpoint.url)) for i in ids])
    command = rtm_deliver(kafka_bootstrap, topic, dlq, tmp_path)

    with open(tmp_path / "first-run.log", "wb") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert endpoint.held.wait(30), (tmp_path / "first-run.log").read_text()
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
    assert endpoint.received() == {"a": 1, "b": 1, "c": 1}

    # It resumes at "c" (offsets 2..6): five records.
    second = subprocess.run([*command, "--max-records", "5"], capture_output=True, text=True, timeout=45)

    assert second.returncode == 0, second.stderr
    assert "sent: 3, duplicate: 2" in second.stderr
    assert endpoint.received() == {"a": 1, "b": 1, "c": 2, "d": 1, "e": 1}
    keys = [r["idempotency_key"] for r in endpoint.requests]
    assert keys.count("c") == 2 and len(set(keys)) == 5  # an endpoint that keeps keys sees each once
    assert dlq_size(kafka_bootstrap, dlq) == 0


def test_a_server_that_fails_twice_then_succeeds_gets_exactly_one_successful_delivery(
    kafka_bootstrap, new_topic, endpoint_factory, tmp_path
):
    topic, dlq = new_topic("triggers"), new_topic("dlq")
    endpoint = endpoint_factory(statuses={"a": [500, 503]})
    produce(kafka_bootstrap, topic, [(b"u1", trigger("a", endpoint.url))])

    counts = run_deliverer(kafka_bootstrap, topic, dlq, tmp_path, max_records=1)

    assert counts == {Outcome.SENT: 1}
    assert [(r["status"], r["idempotency_key"]) for r in endpoint.requests] == [(500, "a"), (503, "a"), (200, "a")]
    assert dlq_size(kafka_bootstrap, dlq) == 0


def test_a_400_is_not_retried_and_lands_in_the_dlq_with_the_reason_and_the_original_record(
    kafka_bootstrap, new_topic, endpoint_factory, tmp_path
):
    topic, dlq = new_topic("triggers"), new_topic("dlq")
    endpoint = endpoint_factory(statuses={"a": [400]})
    refused = trigger("a", endpoint.url)
    produce(kafka_bootstrap, topic, [(b"u1", refused), (b"u1", trigger("b", endpoint.url))])

    counts = run_deliverer(kafka_bootstrap, topic, dlq, tmp_path, max_records=2)

    assert counts == {Outcome.DEAD_LETTERED: 1, Outcome.SENT: 1}
    assert [(r["trigger_id"], r["status"]) for r in endpoint.requests] == [("a", 400), ("b", 200)]
    [letter] = consume_all(kafka_bootstrap, dlq, expected=1, timeout_s=10)
    dead = json.loads(letter.value())
    assert "trigger a" in dead["reason"] and "400" in dead["reason"] and "no coupon field" in dead["reason"]
    assert (dead["topic"], dead["partition"], dead["offset"], dead["key"]) == (topic, 0, 0, "u1")
    assert base64.b64decode(dead["value_base64"]) == refused
    assert letter.key() == b"u1"


def test_connection_errors_are_retried_then_dead_lettered_when_retries_run_out(
    kafka_bootstrap, new_topic, endpoint_factory, tmp_path
):
    topic, dlq = new_topic("triggers"), new_topic("dlq")
    closed = endpoint_factory()
    closed.close()  # nothing listens on its port any more: connection refused
    produce(kafka_bootstrap, topic, [(b"u1", trigger("a", closed.url))])

    counts = run_deliverer(kafka_bootstrap, topic, dlq, tmp_path, max_records=1)

    assert counts == {Outcome.DEAD_LETTERED: 1}
    [letter] = consume_all(kafka_bootstrap, dlq, expected=1, timeout_s=10)
    reason = json.loads(letter.value())["reason"]
    assert "gave up after 3 retries" in reason and closed.url in reason


def test_holdout_triggers_are_never_sent(kafka_bootstrap, new_topic, endpoint_factory, tmp_path):
    topic, dlq = new_topic("triggers"), new_topic("dlq")
    endpoint = endpoint_factory()
    produce(kafka_bootstrap, topic, [(b"u1", trigger("control", endpoint.url, holdout=True)),
                                     (b"u2", trigger("treated", endpoint.url))])

    counts = run_deliverer(kafka_bootstrap, topic, dlq, tmp_path, max_records=2)

    assert counts == {Outcome.HOLDOUT: 1, Outcome.SENT: 1}
    assert endpoint.received() == {"treated": 1}
    assert dlq_size(kafka_bootstrap, dlq) == 0


def test_records_that_are_not_triggers_are_dead_lettered_and_other_channels_left_alone(
    kafka_bootstrap, new_topic, endpoint_factory, tmp_path
):
    topic, dlq = new_topic("triggers"), new_topic("dlq")
    endpoint = endpoint_factory()
    produce(kafka_bootstrap, topic, [
        (b"u1", b"not json"),
        (b"u1", json.dumps({"channel": "webhook", "holdout": False}).encode()),
        (b"u1", None),
        (b"u1", trigger("for-email", endpoint.url, channel="email")),
    ])

    counts = run_deliverer(kafka_bootstrap, topic, dlq, tmp_path, max_records=4)

    assert counts == {Outcome.DEAD_LETTERED: 3, Outcome.OTHER_CHANNEL: 1}
    assert endpoint.requests == []
    reasons = [json.loads(m.value())["reason"] for m in consume_all(kafka_bootstrap, dlq, expected=3, timeout_s=10)]
    assert reasons[0].startswith("not a valid trigger: JSON is malformed")
    assert reasons[1] == "not a valid trigger: Object missing required field `trigger_id`"
    assert reasons[2] == "a tombstone (null value) is not a trigger"


def test_sigterm_while_waiting_to_retry_stops_cleanly_without_committing_or_dead_lettering(
    kafka_bootstrap, new_topic, endpoint_factory, tmp_path
):
    topic, dlq = new_topic("triggers"), new_topic("dlq")
    endpoint = endpoint_factory(statuses={"a": [500]})
    produce(kafka_bootstrap, topic, [(b"u1", trigger("a", endpoint.url))])
    deliverer = subprocess.Popen(
        rtm_deliver(kafka_bootstrap, topic, dlq, tmp_path, "--backoff", "20"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Once the first attempt reached the endpoint, the signal lands during that attempt
    # or during the 20 s wait after its 500: either way the retry is what it interrupts.
    assert endpoint.wait_for_requests(1), "the deliverer did not send within 30 s"

    deliverer.send_signal(signal.SIGTERM)
    _, stderr = deliverer.communicate(timeout=10)

    assert deliverer.returncode == 0, stderr
    assert "retrying in 20.00 s" in stderr and "sent: 0" in stderr
    assert committed_offset(kafka_bootstrap, topic, topic) < 0  # nothing committed: a restart tries "a" again
    assert dlq_size(kafka_bootstrap, dlq) == 0


def test_console_channel_prints_each_trigger_as_a_json_line(kafka_bootstrap, new_topic, tmp_path):
    topic, dlq = new_topic("triggers"), new_topic("dlq")
    shown = trigger("hello", "", channel="console")
    produce(kafka_bootstrap, topic, [(b"u1", shown), (b"u1", trigger("hook", "http://127.0.0.1:9/", channel="webhook"))])

    result = CliRunner().invoke(main, [
        "deliver", "--channel", "console", "--bootstrap", kafka_bootstrap, "--topic", topic, "--dlq-topic", dlq,
        "--group-id", topic, "--store", str(tmp_path / "sent.sqlite"), "--max-records", "2",
    ])

    assert result.exit_code == 0, result.output
    assert result.stdout == shown.decode() + "\n"


@pytest.mark.parametrize("hosts, endpoint_host, reason", [
    ([], "127.0.0.1", "host '127.0.0.1' is not allowed: the deliverer calls only the hosts of --allow-host"),
    (["hooks.example.com"], "127.0.0.1", "given: hooks.example.com)"),
    # Listed by name, but it resolves to loopback: the connection's address is what counts.
    (["localhost"], "localhost", "host 'localhost' resolves to 127.0.0.1, a loopback address: refused"),
])
def test_a_webhook_to_a_host_the_operator_did_not_allow_is_dead_lettered_and_never_called(
    kafka_bootstrap, new_topic, endpoint_factory, tmp_path, hosts, endpoint_host, reason
):
    topic, dlq = new_topic("triggers"), new_topic("dlq")
    endpoint = endpoint_factory()
    url = endpoint.url.replace("127.0.0.1", endpoint_host)
    produce(kafka_bootstrap, topic, [(b"u1", trigger("a", url))])

    counts = run_deliverer(kafka_bootstrap, topic, dlq, tmp_path, max_records=1, hosts=HostPolicy.parse(hosts))

    assert counts == {Outcome.DEAD_LETTERED: 1}
    assert endpoint.requests == []
    [letter] = [json.loads(m.value()) for m in consume_all(kafka_bootstrap, dlq, expected=1)]
    assert letter["reason"].startswith(f"trigger a: endpoint {url!r} refused: ") and reason in letter["reason"]


def test_rtm_deliver_takes_the_allow_list_from_the_environment_and_refuses_a_malformed_entry(
    kafka_bootstrap, new_topic, endpoint_factory, tmp_path
):
    topic, dlq = new_topic("triggers"), new_topic("dlq")
    endpoint = endpoint_factory()
    produce(kafka_bootstrap, topic, [(b"u1", trigger("a", endpoint.url))])
    command = rtm_deliver(kafka_bootstrap, topic, dlq, tmp_path, "--max-records", "1")
    without_flag = [part for part in command if part not in ("--allow-host", "127.0.0.1")]

    bad = subprocess.run(without_flag, capture_output=True, text=True, timeout=30,
                         env={**os.environ, "RTM_ALLOW_HOSTS": "hooks.example.com bad/name!"})
    assert bad.returncode == 2 and "--allow-host 'bad/name!' is neither a host name" in bad.stderr
    good = subprocess.run(without_flag, capture_output=True, text=True, timeout=45,
                          env={**os.environ, "RTM_ALLOW_HOSTS": "hooks.example.com 127.0.0.0/8"})
    assert good.returncode == 0, good.stderr
    assert "sent: 1" in good.stderr and endpoint.received() == {"a": 1}
