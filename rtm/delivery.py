"""Delivering triggers: read rtm.triggers, send each trigger of one channel once, commit.

One record at a time, in order per partition:

1. a record that is not a valid trigger (rtm.records.Trigger) goes to the dead-letter topic;
2. a trigger of another channel is left to that channel's deliverer;
3. a holdout (control group) trigger is skipped: never sent;
4. a trigger whose id is in the `SentStore` was sent before (a duplicate, or a
   record read again after a restart) and is skipped;
5. otherwise it is sent, retried with exponential backoff on transient failures
   (5xx, connection errors, timeouts), and dead-lettered on permanent ones (other
   non-2xx answers, a missing or unusable endpoint, a host the operator did not allow
   (rtm.allowed_hosts), retries exhausted);
6. a sent id is written to the store right after the send, and only then, for every
   outcome, is the record's offset committed.

The crash window: killed after the endpoint accepted a trigger but before its id
reached the store, the deliverer sends that trigger again on restart (its offset was
not committed either). Recording the id before sending would close the window by
losing the trigger instead. So delivery is at-least-once, and every webhook carries
`Idempotency-Key: <trigger_id>` so that the endpoint can drop the rare repeat;
retries of one trigger carry the same key.
"""

import enum
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import requests
from confluent_kafka import Consumer, KafkaException, Message, Producer

from rtm import kafka_config, settings
from rtm.allowed_hosts import GuardedAdapter, HostPolicy, RefusedHost
from rtm.dlq import dead_letter
from rtm.errors import RtmError
from rtm.records import Trigger

log = logging.getLogger(__name__)

CHANNELS = ("webhook", "console")
# A deliverer that crashed holds its partitions until the broker misses its heartbeats
# for this long; a restarted one takes over after it.
SESSION_TIMEOUT_MS = 10_000
DLQ_FLUSH_TIMEOUT_S = 30


class Outcome(enum.Enum):
    SENT = "sent"
    DUPLICATE = "duplicate"
    HOLDOUT = "holdout"
    OTHER_CHANNEL = "other channel"
    DEAD_LETTERED = "dead-lettered"


class _Routing(msgspec.Struct):
    """Only the channel: a trigger of another channel is left alone, however it is made."""

    channel: str


class TransientFailure(Exception):
    """The send may work when tried again."""


class PermanentFailure(Exception):
    """The send will not work as it is: the trigger goes to the dead-letter topic."""


class Interrupted(Exception):
    """Asked to stop while waiting to retry: the record stays unhandled and uncommitted."""


Sender = Callable[[Trigger, bytes], None]


class WebhookSender:
    """POST the trigger's JSON, exactly as it was on Kafka, to its endpoint, if `hosts` allows it."""

    def __init__(self, timeout_s: float, hosts: HostPolicy):
        self.timeout_s, self.hosts = timeout_s, hosts
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy from the environment: the checked address is the one called
        adapter = GuardedAdapter(hosts)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __call__(self, trigger: Trigger, body: bytes) -> None:
        url = trigger.endpoint
        if not url:
            raise PermanentFailure("has no endpoint: a webhook campaign must give one (an http(s) URL)")
        headers = {"Content-Type": "application/json", "Idempotency-Key": trigger.trigger_id}
        try:
            host = urlsplit(url).hostname
            if host is None or urlsplit(url).scheme not in ("http", "https"):
                raise ValueError("no http(s) scheme and host")
        except ValueError as err:
            raise PermanentFailure(f"endpoint {url!r} is not a usable http(s) URL: {err}") from err
        try:
            self.hosts.check_host(host)
            response = self._session.post(
                url, data=body, headers=headers, timeout=self.timeout_s, allow_redirects=False
            )
        except RefusedHost as err:
            raise PermanentFailure(f"endpoint {url!r} refused: {err}") from err
        except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidURL) as err:
            raise PermanentFailure(f"endpoint {url!r} is not a usable http(s) URL: {err}") from err
        except requests.RequestException as err:
            raise TransientFailure(f"POST {url} failed: {err}") from err
        if response.status_code >= 500:
            raise TransientFailure(f"POST {url} answered {response.status_code} {response.reason}")
        if response.status_code >= 300:
            raise PermanentFailure(
                f"POST {url} answered {response.status_code} {response.reason}: {response.text[:300]!r}"
            )


def print_to_console(trigger: Trigger, body: bytes) -> None:
    """The console channel: one JSON line per trigger on stdout."""
    print(body.decode(errors="replace"), flush=True)


def sender_for(channel: str, timeout_s: float, hosts: HostPolicy) -> Sender:
    if channel == "webhook":
        return WebhookSender(timeout_s, hosts)
    if channel == "console":
        return print_to_console
    raise RtmError(f"unknown delivery channel {channel!r}: choose one of {', '.join(CHANNELS)}")


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a transient failure `max_retries` times, waiting backoff_s, 2*backoff_s, ..."""

    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def delays(self) -> Iterator[float]:
        for retry in range(self.max_retries):
            yield min(self.backoff_s * 2**retry, self.max_backoff_s)

    def longest_handling_s(self, timeout_s: float) -> float:
        """The longest one record can take: every attempt times out, every wait is full."""
        return (self.max_retries + 1) * timeout_s + sum(self.delays())


class SentStore:
    """The ids of the triggers already sent, in a SQLite file that survives restarts."""

    def __init__(self, path: Path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: every insert is its own transaction, on disk when it returns.
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sent "
                "(trigger_id TEXT PRIMARY KEY, channel TEXT NOT NULL, sent_at TEXT NOT NULL)"
            )
        except (OSError, sqlite3.Error) as err:
            raise RtmError(f"cannot use {path} as the delivery store: {err}; pass another file with --store") from err

    def __contains__(self, trigger_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM sent WHERE trigger_id = ?", (trigger_id,)).fetchone() is not None

    def add(self, trigger_id: str, channel: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO sent VALUES (?, ?, ?)", (trigger_id, channel, datetime.now(UTC).isoformat())
        )

    def close(self) -> None:
        self._db.close()


class Deliverer:
    """Handles one record: steps 1-5 of the module docstring and the store write of step 6.

    `run` commits the offset afterwards.
    """

    def __init__(self, channel: str, send: Sender, store: SentStore, dlq: Producer, dlq_topic: str,
                 retry: RetryPolicy, stop: threading.Event):
        self.channel, self.send, self.store = channel, send, store
        self.dlq, self.dlq_topic = dlq, dlq_topic
        self.retry, self.stop = retry, stop

    def handle(self, message: Message) -> Outcome:
        value = message.value()
        if value is None:
            return self._dead_letter(message, "a tombstone (null value) is not a trigger")
        try:
            if msgspec.json.decode(value, type=_Routing).channel != self.channel:
                return Outcome.OTHER_CHANNEL
            trigger = msgspec.json.decode(value, type=Trigger)
        except msgspec.DecodeError as err:
            return self._dead_letter(message, f"not a valid trigger: {err}")
        if trigger.holdout:
            log.info("trigger %s: holdout, not sent", trigger.trigger_id)
            return Outcome.HOLDOUT
        if trigger.trigger_id in self.store:
            log.info("trigger %s: sent before, not sent again", trigger.trigger_id)
            return Outcome.DUPLICATE
        try:
            self._send_with_retries(trigger, value)
        except PermanentFailure as failure:
            return self._dead_letter(message, f"trigger {trigger.trigger_id}: {failure}")
        self.store.add(trigger.trigger_id, self.channel)
        log.info("trigger %s: sent", trigger.trigger_id)
        return Outcome.SENT

    def _send_with_retries(self, trigger: Trigger, body: bytes) -> None:
        delays = self.retry.delays()
        while True:
            try:
                return self.send(trigger, body)
            except TransientFailure as failure:
                delay = next(delays, None)
                if delay is None:
                    raise PermanentFailure(f"gave up after {self.retry.max_retries} retries: {failure}") from failure
                log.warning("trigger %s: %s; retrying in %.2f s", trigger.trigger_id, failure, delay)
                if self.stop.wait(delay):
                    raise Interrupted from failure

    def _dead_letter(self, message: Message, reason: str) -> Outcome:
        failures = []
        key = message.key()
        letter = dead_letter(
            reason,
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            key=None if key is None else key.decode(errors="replace"),
            value=message.value(),
        )
        self.dlq.produce(self.dlq_topic, key=key, value=letter,
                         on_delivery=lambda err, _: err is not None and failures.append(err.str()))
        # The offset is committed next: the dead letter must be on the broker before that.
        if self.dlq.flush(DLQ_FLUSH_TIMEOUT_S) or failures:
            raise RtmError(
                f"writing a dead letter to {self.dlq_topic} failed ({failures or 'no answer'}) for "
                f"{message.topic()}[{message.partition()}]@{message.offset()}: is the broker up and the topic there?"
            )
        log.warning("%s[%d]@%d dead-lettered: %s", message.topic(), message.partition(), message.offset(), reason)
        return Outcome.DEAD_LETTERED


def run(bootstrap: str, channel: str, *, store_path: Path, group_id: str,
        topic: str = settings.TRIGGERS_TOPIC, dlq_topic: str = settings.DLQ_TOPIC,
        retry: RetryPolicy = RetryPolicy(), timeout_s: float = 10.0, max_records: int | None = None,
        idle_timeout_s: float | None = None, stop: threading.Event | None = None,
        hosts: HostPolicy = HostPolicy()) -> Counter[Outcome]:
    """Deliver the `channel` triggers of `topic` until `stop` is set; count the outcomes.
    Webhooks go only to the hosts `hosts` allows (none by default: rtm.allowed_hosts).

    Bounded runs stop after `max_records` handled records, or `idle_timeout_s` without
    a record (counted from when the consumer got its partitions).
    """
    stop = stop or threading.Event()
    store = SentStore(store_path)
    deliverer = Deliverer(
        channel, sender_for(channel, timeout_s, hosts), store,
        Producer(kafka_config.librdkafka({"bootstrap.servers": bootstrap, "enable.idempotence": True})), dlq_topic,
        retry, stop,
    )
    consumer = Consumer(kafka_config.librdkafka({
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        # The group drops a member that has not polled for this long: let one record's
        # retries run to the end first.
        "max.poll.interval.ms": int(max(300, retry.longest_handling_s(timeout_s) + 60) * 1000),
    }))
    counts: Counter[Outcome] = Counter()
    quiet_since = None  # None until partitions are assigned: joining the group is not idling

    def assigned(_consumer, _partitions):
        nonlocal quiet_since
        quiet_since = time.monotonic()

    consumer.subscribe([topic], on_assign=assigned)
    try:
        while not stop.is_set() and (max_records is None or counts.total() < max_records):
            message = consumer.poll(0.2)
            if message is None:
                if idle_timeout_s is not None and quiet_since is not None \
                        and time.monotonic() - quiet_since > idle_timeout_s:
                    break
                continue
            if message.error() is not None:
                raise RtmError(f"reading {topic} at {bootstrap} failed: {message.error().str()}")
            try:
                outcome = deliverer.handle(message)
            except Interrupted:
                break
            _commit(consumer, message)
            counts[outcome] += 1
            quiet_since = time.monotonic()
    finally:
        consumer.close()
        store.close()
    return counts


def _commit(consumer: Consumer, message: Message) -> None:
    try:
        consumer.commit(message=message, asynchronous=False)
    except KafkaException as err:
        # Lost the partition in a rebalance: its next owner reads the record again and
        # the store tells it whether the trigger was sent.
        log.warning("committing %s[%d]@%d failed: %s", message.topic(), message.partition(), message.offset(), err)
