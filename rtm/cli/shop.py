"""`rtm shop`: serve the demo shop page; `web_servers` runs it with the collector and the
decisions API for `rtm demo --web`."""

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click
import requests

from rtm import http_server, settings
from rtm.errors import RtmError


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0 picks a free port.")
@click.option("--collect-url", default="http://127.0.0.1:8070", show_default=True,
              help="Where `rtm collect` listens, as the browser reaches it.")
@click.option("--serve-url", default="http://127.0.0.1:8071", show_default=True,
              help="Where `rtm serve` listens, as the browser reaches it.")
@click.option("--token", help="A bearer token of the collector's tokens file, if it has one.")
@click.option("--feed/--no-feed", default=True, show_default=True,
              help="List every trigger beside the shop (needs `rtm serve --feed`).")
def shop(host, port, collect_url, serve_url, token, feed):
    """Serve the demo shop: products, a cart, a checkout and a login whose clicks are
    events posted to `rtm collect`, and the pop-ups `rtm serve` pushes as they arrive,
    next to a live list of the triggers the campaign job sends.

    Run `rtm run`, `rtm collect`, `rtm serve --feed` and this, then open the URL it prints.
    """
    from rtm.shop import app

    http_server.run(app(collect_url, serve_url, token, feed), host, port, "rtm shop")


@contextmanager
def web_servers(bootstrap: str, collect_port: int = 8070, serve_port: int = 8071, shop_port: int = 8080):
    """`rtm collect`, `rtm serve --feed` and `rtm shop` as child processes (logs in
    RTM_HOME/web/) until the block ends; yields the shop's URL."""
    logs = settings.RTM_HOME / "web"
    logs.mkdir(parents=True, exist_ok=True)
    collect_url, serve_url = f"http://127.0.0.1:{collect_port}", f"http://127.0.0.1:{serve_port}"
    commands = {
        "collect": ["collect", "--bootstrap", bootstrap, "--port", str(collect_port)],
        "serve": ["serve", "--bootstrap", bootstrap, "--port", str(serve_port), "--feed"],
        "shop": ["shop", "--port", str(shop_port), "--collect-url", collect_url, "--serve-url", serve_url],
    }
    urls = {"collect": collect_url, "serve": serve_url, "shop": f"http://127.0.0.1:{shop_port}"}
    rtm = Path(sys.executable).with_name("rtm")  # the command of this installation
    children = {}
    try:
        for name, args in commands.items():
            children[name] = subprocess.Popen([str(rtm), *args], stdout=subprocess.DEVNULL,
                                              stderr=(logs / f"{name}.log").open("wb"))
        for name, child in children.items():
            _wait_healthy(name, child, urls[name], logs / f"{name}.log")
        yield urls["shop"]
    finally:
        for child in children.values():
            child.terminate()
        for child in children.values():
            child.wait(30)


def _wait_healthy(name: str, child: subprocess.Popen, url: str, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and child.poll() is None:
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RtmError(f"rtm {name} did not start at {url} (is the port taken?); its log {log}:\n{log.read_text()[-2000:]}")
