"""`rtm shop`: serve the demo shop page."""

import click

from rtm import http_server


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
