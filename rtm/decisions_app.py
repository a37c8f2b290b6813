"""`rtm serve` over HTTP: the Starlette app around rtm.decisions.

GET  /v1/users/{key}/messages?channel=popup   pending messages, marked shown
     (?peek=true leaves them pending: acknowledge each with POST .../shown)
GET  /v1/users/{key}/stream?channel=popup     Server-Sent Events: pending ones, then
     each new one as it arrives from Kafka (`event: message`, `id: <trigger_id>`),
     each marked shown as it is pushed
POST /v1/messages/{trigger_id}/shown          200 shown now, 409 shown before, 404 unknown
GET  /v1/triggers/stream                      with --feed only: every trigger read, any
     channel (the demo page's live list)
GET  /healthz, GET /metrics (Prometheus text)
"""

import asyncio
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from rtm import http_server
from rtm.decisions import MessageStore, TriggerFeed, now_ms

KEEPALIVE_S = 15.0
FEED_BACKLOG = 1000  # triggers a slow feed reader may fall behind before it misses some
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _one_line(raw: bytes) -> bytes:
    """SSE data ends at a newline: re-encode the rare trigger JSON that has one."""
    return raw if b"\n" not in raw else msgspec.json.encode(msgspec.json.decode(raw))


def _sse(raw: bytes, event: str, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: ".encode() + _one_line(raw) + b"\n\n"


class _Id(msgspec.Struct):
    trigger_id: str


_id = msgspec.json.Decoder(_Id)


class Hub:
    """Wakes the streams of users that got a new message; fans triggers out to feed readers."""

    def __init__(self):
        self.waiters: dict[str, set[asyncio.Event]] = {}
        self.feeds: set[asyncio.Queue] = set()
        self.feed_dropped = 0

    def wake(self, user_keys: list[str]) -> None:
        for key in user_keys:
            for waiter in self.waiters.get(key, ()):
                waiter.set()

    def broadcast(self, raws: list[bytes]) -> None:
        for queue in self.feeds:
            for raw in raws:
                try:
                    queue.put_nowait(raw)
                except asyncio.QueueFull:
                    self.feed_dropped += 1


class _FeedCounts:
    """Exposes the trigger feed's outcome counts as one Prometheus counter."""

    def __init__(self, app: "DecisionsApp"):
        self.app = app

    def collect(self):
        family = CounterMetricFamily("rtm_serve_triggers", "Trigger records read, by outcome", labels=("outcome",))
        feed = self.app.feed
        for outcome, count in sorted((feed.counts if feed else {}).items()):
            family.add_metric((outcome,), count)
        yield family


@dataclass
class DecisionsApp:
    bootstrap: str
    topic: str
    store_path: Path
    channels: tuple[str, ...]
    ttl_ms: dict[str, int]
    feed_enabled: bool = False
    cors_origins: tuple[str, ...] = ("*",)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self):
        self.hub = Hub()
        self.feed: TriggerFeed | None = None
        self.store: MessageStore | None = None
        self.served = Counter("rtm_serve_messages_shown", "Messages marked shown, by how: fetch, stream, ack",
                              ("via",), registry=self.registry)
        Gauge("rtm_serve_streams", "Open Server-Sent Events streams", registry=self.registry).set_function(
            lambda: sum(len(w) for w in self.hub.waiters.values()))
        Gauge("rtm_serve_pending_messages", "Messages stored and not shown yet (expired ones until pruned)",
              registry=self.registry).set_function(lambda: self.store.pending_count() if self.store else 0)
        self.registry.register(_FeedCounts(self))

    def asgi(self):
        routes = [
            Route("/v1/users/{key}/messages", self.messages, methods=["GET"]),
            Route("/v1/users/{key}/stream", self.stream, methods=["GET"]),
            Route("/v1/messages/{trigger_id}/shown", self.shown, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/metrics", http_server.metrics_endpoint(self.registry), methods=["GET"]),
        ]
        if self.feed_enabled:
            routes.append(Route("/v1/triggers/stream", self.trigger_feed, methods=["GET"]))
        app = Starlette(routes=routes, lifespan=self._lifespan)
        return http_server.with_middleware(app, self.registry, "rtm_serve", self.cors_origins,
                                           ("GET", "POST", "OPTIONS"))

    @asynccontextmanager
    async def _lifespan(self, _app):
        loop = asyncio.get_running_loop()
        self.store = MessageStore(self.store_path)
        self.feed = TriggerFeed(
            self.bootstrap, self.topic, self.store_path, channels=self.channels, ttl_ms=self.ttl_ms,
            on_stored=lambda keys: loop.call_soon_threadsafe(self.hub.wake, keys),
            on_trigger=(lambda raws: loop.call_soon_threadsafe(self.hub.broadcast, raws)) if self.feed_enabled else None,
        )
        self.feed.start()
        try:
            yield
        finally:
            self.feed.stop()
            self.store.close()

    def _channels(self, request: Request) -> tuple[str, ...] | Response:
        asked = [c for value in request.query_params.getlist("channel") for c in value.split(",") if c]
        unknown = [c for c in asked if c not in self.channels]
        if unknown:
            return _error(400, f"channel {', '.join(unknown)} is not served here; the pull channels are "
                               f"{', '.join(self.channels)} (rtm deliver sends the others)")
        return tuple(asked) or self.channels

    async def messages(self, request: Request) -> Response:
        channels = self._channels(request)
        if isinstance(channels, Response):
            return channels
        key = request.path_params["key"]
        if request.query_params.get("peek", "").lower() in ("1", "true", "yes"):
            raws = self.store.peek(key, channels, now_ms())
        else:
            raws = self.store.take(key, channels, now_ms())
            if raws:
                self.served.labels("fetch").inc(len(raws))
        return Response(b'{"messages":[' + b",".join(raws) + b"]}", media_type="application/json")

    async def stream(self, request: Request) -> Response:
        channels = self._channels(request)
        if isinstance(channels, Response):
            return channels
        key = request.path_params["key"]
        waiter = asyncio.Event()
        self.hub.waiters.setdefault(key, set()).add(waiter)

        async def events():
            try:
                yield b"retry: 1000\n: connected\n\n"
                while True:
                    waiter.clear()
                    taken = self.store.take(key, channels, now_ms())
                    if taken:
                        self.served.labels("stream").inc(len(taken))
                        yield b"".join(_sse(raw, "message", _id.decode(raw).trigger_id) for raw in taken)
                    try:
                        await asyncio.wait_for(waiter.wait(), KEEPALIVE_S)
                    except TimeoutError:
                        yield b": keepalive\n\n"
            finally:
                waiters = self.hub.waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self.hub.waiters[key]

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)

    async def shown(self, request: Request) -> Response:
        trigger_id = request.path_params["trigger_id"]
        outcome = self.store.mark_shown(trigger_id, now_ms())
        if outcome == "shown":
            self.served.labels("ack").inc()
            return Response(json.dumps({"trigger_id": trigger_id, "status": "shown"}), media_type="application/json")
        if outcome == "already shown":
            return _error(409, f"message {trigger_id} was shown before: a message is shown once")
        return _error(404, f"no pending message {trigger_id}: unknown, not a pull channel, holdout or expired")

    async def trigger_feed(self, request: Request) -> Response:
        queue: asyncio.Queue = asyncio.Queue(FEED_BACKLOG)
        self.hub.feeds.add(queue)

        async def events():
            try:
                yield b"retry: 1000\n: connected\n\n"
                while True:
                    try:
                        raw = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield b": keepalive\n\n"
                        continue
                    yield _sse(raw, "trigger")
            finally:
                self.hub.feeds.discard(queue)

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)

    async def healthz(self, request: Request) -> Response:
        feed = self.feed
        if feed is not None and feed.error is not None:
            return _error(503, f"reading {self.topic} failed: {feed.error}; see the server's log, then restart it")
        ready = feed is not None and feed.ready.is_set()
        return Response(json.dumps({"status": "ok" if ready else "starting", "topic": self.topic}),
                        status_code=200 if ready else 503, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status_code=status, media_type="application/json")
