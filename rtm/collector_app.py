"""`rtm collect` over HTTP: the Starlette app around rtm.collector.

POST /v1/events   one event, a JSON array, or NDJSON; answers per event:
                  202 once every accepted event is on Kafka (some may be rejected),
                  400 when none is accepted or the body is unusable, 401 without a
                  valid token (when a tokens file is set), 413 over the limits,
                  503 + Retry-After when the producer queue is full or Kafka failed.
GET /healthz      200 while the server runs, with the producer's queue length
GET /metrics      Prometheus text
"""

from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rtm import http_server
from rtm.collector import BodyError, Limits, Publisher, QueueFull, Tokens, TooManyEvents, accept, now_ms, split_body
from rtm.events import InvalidEvent

RETRY_AFTER_S = 1


class Result(msgspec.Struct, omit_defaults=True):
    status: str  # accepted | rejected | failed
    event_id: str | None = None
    reason: str | None = None


class Answer(msgspec.Struct, omit_defaults=True):
    accepted: int
    rejected: int
    results: list[Result]
    failed: int = 0
    error: str | None = None


_encoder = msgspec.json.Encoder()
_event_id = msgspec.json.Decoder(msgspec.defstruct("EventId", [("event_id", str | None, None)]))


def _json(answer: Answer, status: int, headers: dict | None = None) -> Response:
    return Response(_encoder.encode(answer), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    return _json(Answer(accepted=0, rejected=0, results=[], error=message), status, headers)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _TooLarge(int(length))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge(size)
        chunks.append(chunk)
    return b"".join(chunks)


def _event_id_of(raw) -> str | None:
    try:
        return _event_id.decode(raw).event_id
    except msgspec.DecodeError:
        return None


@dataclass
class CollectorApp:
    publisher: Publisher
    limits: Limits = field(default_factory=Limits)
    tokens: Tokens | None = None
    cors_origins: tuple[str, ...] = ("*",)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self):
        self.events = Counter("rtm_collect_events", "Events by outcome: accepted (on Kafka), rejected "
                              "(break the contract), failed (Kafka did not take them)", ("source", "outcome"),
                              registry=self.registry)
        Gauge("rtm_collect_producer_queue", "Events waiting for Kafka's acknowledgement",
              registry=self.registry).set_function(self.publisher.queued)

    def asgi(self):
        @asynccontextmanager
        async def lifespan(_app):
            self.publisher.start()
            yield
            self.publisher.close(timeout_s=10)

        app = Starlette(routes=[
            Route("/v1/events", self.post_events, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/metrics", http_server.metrics_endpoint(self.registry), methods=["GET"]),
        ], lifespan=lifespan)
        return http_server.with_middleware(app, self.registry, "rtm_collect", self.cors_origins,
                                           ("GET", "POST", "OPTIONS"))

    async def healthz(self, request: Request) -> Response:
        return Response(_encoder.encode({"status": "ok", "queued": self.publisher.queued()}),
                        media_type="application/json")

    async def post_events(self, request: Request) -> Response:
        source = "-"
        if self.tokens is not None:
            source = self.tokens.source(request.headers.get("authorization"))
            if source is None:
                return _error(401, "missing or unknown bearer token: send `Authorization: Bearer <token>` "
                                   "with the token of your source from the collector's tokens file",
                              {"WWW-Authenticate": "Bearer"})
        try:
            body = await _read_body(request, self.limits.max_body_bytes)
        except _TooLarge as size:
            return _error(413, f"body of {size.args[0]} bytes, the limit is {self.limits.max_body_bytes}: "
                               "send smaller batches")
        try:
            raws = split_body(body, request.headers.get("content-type", ""), self.limits)
        except BodyError as err:
            return _error(413 if isinstance(err, TooManyEvents) else 400, str(err))

        received_at = now_ms()
        results: list[Result] = []
        records, positions = [], []
        for raw in raws:
            try:
                event_id, key, record = accept(raw, received_at)
            except InvalidEvent as err:
                results.append(Result("rejected", _event_id_of(raw), str(err)))
                continue
            positions.append(len(results))
            results.append(Result("accepted", event_id))
            records.append((key, record))
        rejected = len(results) - len(records)
        if rejected:
            self.events.labels(source, "rejected").inc(rejected)
        if not records:
            return _json(Answer(accepted=0, rejected=rejected, results=results), 400)
        try:
            errors = await self.publisher.publish(records)
        except QueueFull as full:
            self.events.labels(source, "failed").inc(len(records))
            for position in positions:
                results[position] = Result("failed", results[position].event_id, "the collector is busy: retry")
            return _json(Answer(accepted=0, rejected=rejected, failed=len(records), results=results,
                                error=f"{full}: retry after {RETRY_AFTER_S} s"),
                         503, {"Retry-After": str(RETRY_AFTER_S)})
        failed = 0
        for position, error in zip(positions, errors):
            if error is not None:
                failed += 1
                results[position] = Result("failed", results[position].event_id, f"Kafka did not take it: {error}")
        accepted = len(records) - failed
        if accepted:
            self.events.labels(source, "accepted").inc(accepted)
        if failed:
            self.events.labels(source, "failed").inc(failed)
            return _json(Answer(accepted=accepted, rejected=rejected, failed=failed, results=results,
                                error="Kafka did not acknowledge every event: retry the request (repeats "
                                      "of an event_id are dropped by the job)"),
                         503, {"Retry-After": str(RETRY_AFTER_S)})
        return _json(Answer(accepted=accepted, rejected=rejected, results=results), 202)
