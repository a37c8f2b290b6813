"""`rtm shop`: the demo shop page (rtm/web/, static, no build step) and the config that
tells it where the collector and the decisions API are."""

import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).parent / "web"


def app(collect_url: str, serve_url: str, token: str | None = None, feed: bool = True) -> Starlette:
    config = {"collect": collect_url.rstrip("/"), "serve": serve_url.rstrip("/"), "token": token, "feed": feed}
    script = f"window.RTM_CONFIG = {json.dumps(config)};\n"

    async def config_js(request: Request) -> Response:
        return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-store"})

    async def healthz(request: Request) -> Response:
        return Response('{"status": "ok"}', media_type="application/json")

    return Starlette(routes=[
        Route("/config.js", config_js, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/", StaticFiles(directory=WEB_DIR, html=True)),
    ])
