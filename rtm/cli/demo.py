"""`rtm demo`: the end of `make demo`: the campaign job live on a local Kafka + MiniCluster."""

import contextlib
import json
import threading
import time
from datetime import UTC, datetime

import click
import msgspec
from rich.console import Console

from rtm import generator, kafka_broker, kafka_clients, settings, topics
from rtm.cli.options import bootstrap_option
from rtm.cli.shop import web_servers
from rtm.events import user_key
from rtm.records import Trigger

# 4 hours of event time pass in 8 seconds: cart abandonment and "left the game" show up
# while you watch.
SPEEDUP = 1800
HOUR_MS = 3_600_000
STYLES = {"popup": "cyan", "email": "magenta", "push": "green", "webhook": "yellow"}


@click.command()
@bootstrap_option
@click.option("--users", default=80, show_default=True, help="Synthetic users to play.")
@click.option("--duration", type=float,
              help="Seconds to run before stopping (Ctrl-C stops too) [default: 75, with --web until Ctrl-C].")
@click.option("--web", is_flag=True, help="Instead of generated traffic: start rtm collect, rtm serve --feed and "
              "rtm shop (ports 8070, 8071, 8080) and print the shop's URL; your clicks there are the events.")
def demo(bootstrap, users, duration, web):
    """Run the campaign job live and watch its triggers arrive.

    Starts the embedded Kafka broker if none is running, publishes campaigns/ to
    rtm.campaigns and generated profiles (some VIP) to rtm.profiles, starts the
    campaign job on a MiniCluster, then plays generated
    shop and game traffic into rtm.events with event time running 1800x faster than
    the clock, and prints each trigger from rtm.triggers as it arrives.
    """
    from jobs import campaign_job, startup
    from jobs.environment import local_environment
    from rtm.cli.campaigns import write_campaigns
    from rtm.time_rules import TimeRules

    console = Console(soft_wrap=True)
    bootstrap = kafka_broker.resolve_bootstrap(bootstrap)
    topics.ensure_topics(bootstrap)
    campaigns = startup.folder_campaigns(settings.CAMPAIGNS_DIR)
    write_campaigns(bootstrap, settings.CAMPAIGNS_TOPIC, campaigns)
    kafka_clients.write(bootstrap, settings.PROFILES_TOPIC,
                        [(p["user_id"], json.dumps(p).encode()) for p in generator.profiles(users)])
    campaigns = startup.with_topic(campaigns, bootstrap, settings.CAMPAIGNS_TOPIC,
                                 lambda message: console.print(f"warning: {message}"))
    console.print(f"Kafka at [bold]{bootstrap}[/]; published {len(campaigns)} campaigns to {settings.CAMPAIGNS_TOPIC}")

    play_s = None if web else duration or 75.0
    # Played traffic runs event time SPEEDUP times faster than the clock, so its events get
    # this far ahead of their records' timestamps (the clock-skew rule, --max-future). (Not
    # record timestamps in the future instead: Kafka 4 brokers refuse those past 1 h.)
    rules = TimeRules() if play_s is None else TimeRules(max_future_ms=int(play_s * SPEEDUP * 1000) + HOUR_MS)
    job = campaign_job.run(local_environment(), bootstrap, startup.definitions(campaigns), rules, detached=True)
    stop_at = None if web and duration is None else time.monotonic() + (duration or 75.0)
    shown = 0
    try:
        with web_servers(bootstrap) if web else contextlib.nullcontext() as shop_url:
            if web:
                console.print(f"campaign job {job.get_job_id()} started on a MiniCluster; open [bold]{shop_url}[/] "
                              "and click (Ctrl-C stops)")
            else:
                console.print(f"campaign job {job.get_job_id()} started on a MiniCluster; playing {users} users' events")
                threading.Thread(target=_play, args=(bootstrap, users, stop_at), daemon=True).start()
            for message in kafka_clients.read(bootstrap, settings.TRIGGERS_TOPIC, from_beginning=False,
                                              stop_at=stop_at):
                _show(console, msgspec.json.decode(message.value(), type=Trigger))
                shown += 1
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        job.cancel().result()
    console.print(f"{shown} triggers; the broker keeps running (`rtm kafka stop` stops it), "
                  f"`rtm triggers tail --from-beginning` shows them again")


def _play(bootstrap: str, users: int, stop_at: float) -> None:
    """Write generated events with event time running SPEEDUP times faster than the clock."""
    start_ms = int(time.time() * 1000)
    events = generator.generate(users, seed=int(time.time()), start_ms=start_ms, spread_ms=5 * 3_600_000, gap_ms=60_000)
    producer = kafka_clients.new_producer(bootstrap)
    started = time.monotonic()
    for event in events:
        wait = (event["ts"] - start_ms) / 1000 / SPEEDUP - (time.monotonic() - started)
        if wait > 0:
            producer.flush()
            time.sleep(wait)
        if time.monotonic() > stop_at:
            break
        key = user_key(event.get("user_id"), event.get("anonymous_id"))
        producer.produce(settings.EVENTS_TOPIC, key=key.encode(), value=json.dumps(event).encode())
        producer.poll(0)
    producer.flush(10)


def _show(console: Console, trigger: Trigger) -> None:
    at = datetime.fromtimestamp(trigger.event_time / 1000, UTC).strftime("%H:%M:%S")
    style = STYLES.get(trigger.channel, "white")
    holdout = " [dim](holdout: recorded, not delivered)[/]" if trigger.holdout else ""
    console.print(f"[dim]{at}[/] [{style}]{trigger.channel:>7}[/] {trigger.campaign_id:<30} "
                  f"{trigger.user_key:<12} {trigger.message}{holdout}")
