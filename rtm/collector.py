"""The event collector's logic, apart from HTTP: split a request body into events,
check each against the event contract with the job's own parser (`rtm.events`), stamp
the server's receive time, answer per event, and publish to Kafka with the delivery
report awaited.

A request carries one JSON event, a JSON array of events, or NDJSON (one event per
line, with an NDJSON content type). Each accepted event is written as the job will
read it: the validated event (ts in epoch millis) with `context.received_at` (epoch
millis, the server's clock) added, keyed by its user key. Retrying a request is safe:
the job drops an `event_id` it has seen within its dedup horizon.
"""

import asyncio
import hmac
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import msgspec
import yaml
from confluent_kafka import Producer

from rtm.errors import RtmError
from rtm.events import MAX_EVENT_BYTES, InvalidEvent, parse_event

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"})

_array = msgspec.json.Decoder(list[msgspec.Raw])
_encoder = msgspec.json.Encoder()


class BodyError(ValueError):
    """The request as a whole cannot be read as events; the message says why."""


class TooManyEvents(BodyError):
    """More events in one request than the batch limit."""


class QueueFull(Exception):
    """The producer holds as many unacknowledged events as it may: the client should retry later."""


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 4 * 1024 * 1024
    max_batch: int = 500
    # Per event: the contract's own limit (rtm.events.MAX_EVENT_BYTES), checked by parse_event.


def split_body(body: bytes, content_type: str, limits: Limits) -> Sequence[bytes | msgspec.Raw]:
    """The raw events of a body: the lines of NDJSON, the items of a JSON array, or the body."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in NDJSON_TYPES:
        events = [line for line in body.split(b"\n") if line.strip()]
    elif body.lstrip()[:1] == b"[":
        try:
            events = _array.decode(body)
        except msgspec.DecodeError as err:
            raise BodyError(f"the body starts with [ but is not a JSON array: {err}; "
                            "send one event, a JSON array of events, or NDJSON with Content-Type application/x-ndjson") from None
    else:
        events = [body] if body.strip() else []
    if not events:
        raise BodyError("no events in the body: send one JSON event, a JSON array of events, or NDJSON lines")
    if len(events) > limits.max_batch:
        raise TooManyEvents(f"{len(events)} events in one request, the limit is {limits.max_batch}: split the batch")
    return events


def accept(raw: bytes | msgspec.Raw, received_at_ms: int) -> tuple[str, bytes, bytes]:
    """(event id, user key, the record to produce) for one raw event; raises InvalidEvent
    with the reason."""
    event = parse_event(raw)
    event.context["received_at"] = received_at_ms
    record = _encoder.encode(event)
    if len(record) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event too large once received_at is added: {len(record)} bytes, the limit is "
                           f"{MAX_EVENT_BYTES}; send references (ids, URLs) instead of content")
    return event.event_id, event.key.encode(), record


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Tokens:
    """Bearer tokens per source, from a YAML file `source: token` (or a list of tokens)."""

    def __init__(self, by_source: dict[str, list[str]]):
        self._sources = [(token.encode(), source) for source, tokens in by_source.items() for token in tokens]

    @classmethod
    def load(cls, path: Path) -> "Tokens":
        try:
            tree = yaml.safe_load(path.read_text())
        except OSError as err:
            raise RtmError(f"cannot read the tokens file {path}: {err.strerror}") from err
        except yaml.YAMLError as err:
            raise RtmError(f"the tokens file {path} is not valid YAML: {err}") from err
        if not isinstance(tree, dict) or not tree:
            raise RtmError(f"the tokens file {path} must map each source to its token, e.g. `web: 3f9c...`")
        by_source = {}
        for source, tokens in tree.items():
            tokens = tokens if isinstance(tokens, list) else [tokens]
            if not all(isinstance(t, str) and len(t) >= 16 for t in tokens):
                raise RtmError(f"the tokens file {path}: source {source!r} needs tokens of at least 16 characters "
                               "(e.g. from `python -c 'import secrets; print(secrets.token_hex(16))'`)")
            by_source[str(source)] = tokens
        return cls(by_source)

    def source(self, authorization: str | None) -> str | None:
        """The source whose token the `Authorization: Bearer ...` header carries, else None."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        given = token.strip().encode()
        found = None
        for known, source in self._sources:  # compare with every token: the time tells nothing
            if hmac.compare_digest(known, given):
                found = source
        return found


class Publisher:
    """Writes records to one topic and tells each request when Kafka acknowledged them.

    The producer's delivery reports arrive on a polling thread and are handed back to
    the event loop; at most `max_queued` records wait for their acknowledgement at once,
    a request that would exceed it gets QueueFull (the server answers 503 with Retry-After).
    """

    def __init__(self, producer: Producer, topic: str, max_queued: int):
        self._producer, self._topic, self._max_queued = producer, topic, max_queued
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._poll, name="collector-delivery-reports", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def queued(self) -> int:
        return len(self._producer)

    def close(self, timeout_s: float) -> int:
        """Stop after waiting up to `timeout_s` for the queued records; returns how many are left."""
        self._stop.set()
        self._thread.join()
        return self._producer.flush(timeout_s)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def publish(self, records: Sequence[tuple[bytes, bytes]]) -> list[str | None]:
        """Produce `records` (key, value) and wait for their delivery reports: None for
        each one Kafka acknowledged, else the error."""
        if not records:
            return []
        if len(self._producer) + len(records) > self._max_queued:
            raise QueueFull(f"{len(self._producer)} events are waiting for Kafka's acknowledgement")
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        errors: list[str | None] = [None] * len(records)
        remaining = [len(records)]

        def settle(count: int) -> None:
            with self._lock:
                remaining[0] -= count
                last = remaining[0] == 0
            if last:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        def delivered(index: int, err, _message) -> None:
            if err is not None:
                errors[index] = err.str()
            settle(1)

        for index, (key, value) in enumerate(records):
            try:
                self._producer.produce(self._topic, key=key, value=value, on_delivery=partial(delivered, index))
            except BufferError:
                for rest in range(index, len(records)):
                    errors[rest] = "the producer queue is full"
                settle(len(records) - index)
                break
        await done
        return errors
