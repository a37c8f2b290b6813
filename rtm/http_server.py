"""What rtm's HTTP servers (`rtm collect`, `rtm serve`, `rtm shop`) share: request
metrics in Prometheus text, CORS, and running a Starlette app on uvicorn.

One uvicorn worker per server: the apps are asyncio-bound and the Kafka clients run
their own threads, so a second core is better spent on the broker and the job.
"""

import socket
import sys
import time
from collections.abc import Callable, Sequence

import uvicorn
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, disable_created_metrics,
                               generate_latest)
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtm.errors import RtmError

# Request latency buckets (seconds): the servers answer in well under a millisecond
# when idle, and the collector waits for Kafka's acknowledgement (a few ms).
# No `_created` series: every counter's start time doubles the output and scrapers ignore it.
disable_created_metrics()

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RequestMetrics:
    """ASGI middleware: `<prefix>_http_requests_total{method,route,status}` and
    `<prefix>_http_request_duration_seconds{method,route}` (until the response has
    started; a Server-Sent Events stream counts once, when it opens)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, prefix: str):
        self.app = app
        self.requests = Counter(f"{prefix}_http_requests", "HTTP requests answered",
                                ("method", "route", "status"), registry=registry)
        self.latency = Histogram(f"{prefix}_http_request_duration_seconds", "Time to the start of the answer",
                                 ("method", "route"), buckets=LATENCY_BUCKETS, registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()

        async def send_and_count(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                # The route's template, not the path: one series per endpoint, not per user.
                name = route.path if route is not None else "unmatched"
                self.latency.labels(scope["method"], name).observe(time.perf_counter() - started)
                self.requests.labels(scope["method"], name, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, send_and_count)


def metrics_endpoint(registry: CollectorRegistry) -> Callable:
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


def with_middleware(app: ASGIApp, registry: CollectorRegistry, prefix: str, cors_origins: Sequence[str],
                    methods: Sequence[str]) -> ASGIApp:
    """CORS (so browser pages on other origins can call the server) around request metrics."""
    measured = RequestMetrics(app, registry, prefix)
    if not cors_origins:
        return measured
    return CORSMiddleware(measured, allow_origins=list(cors_origins), allow_methods=list(methods),
                          allow_headers=["Authorization", "Content-Type"], max_age=3600)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with .getsockname())."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise RtmError(f"cannot listen on {host}:{port}: {err.strerror}; pick another --port (0: any free one)") from err
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(app: ASGIApp, host: str, port: int, name: str) -> None:
    """Serve `app` until SIGINT/SIGTERM; prints `NAME listening on http://HOST:PORT` on
    stderr once the socket is bound (tests and scripts read the port from it)."""
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    # No proxy-header rewriting: the apps never read the client's address.
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on", access_log=False,
                            proxy_headers=False, log_level="warning", timeout_graceful_shutdown=5)
    print(f"{name} listening on http://{shown}:{bound_port}", file=sys.stderr, flush=True)
    uvicorn.Server(config).run(sockets=[sock])
