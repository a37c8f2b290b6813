"""Running the campaign job against fresh topics of the session broker."""

import json
from contextlib import contextmanager

from jobs.environment import local_environment
from jobs import campaign_job
from kafka_helpers import consume_all
from rtm import settings
from jobs import startup
from rtm.time_rules import TimeRules
from rtm.waiting import wait_until


def fresh_topics(new_topic, event_partitions: int = 1) -> settings.Topics:
    return settings.Topics(
        events=new_topic("events", partitions=event_partitions), profiles=new_topic("profiles"), campaigns=new_topic("campaigns"),
        triggers=new_topic("triggers"), sessions=new_topic("sessions"), dlq=new_topic("dlq"), late=new_topic("late"),
        conversions=new_topic("conversions"), suppressed=new_topic("suppressed"),
    )


def shipped_campaigns() -> dict[str, str]:
    """The campaigns and the policy of campaigns/, as the job receives them."""
    return startup.definitions(startup.folder_campaigns(settings.CAMPAIGNS_DIR))


def run_bounded(bootstrap, topics, until=None, campaigns=None, parallelism=None):
    """The job over what the topics hold now, event time stopping at `until` (default: at
    the largest event time), with the profiles topic in effect from the start (as
    `rtm run --bounded` does)."""
    env = local_environment(None if parallelism is None else {"parallelism.default": str(parallelism)})
    campaign_job.run(env, bootstrap, shipped_campaigns() if campaigns is None else campaigns,
                     TimeRules(live=False, until=until), topics=topics, bounded=True)


@contextmanager
def live_job(bootstrap, topics, campaigns=None, rules=TimeRules(), idle_timeout_ms=1_000):
    """The job running unbounded in the background until the block ends."""
    client = campaign_job.run(local_environment(), bootstrap, shipped_campaigns() if campaigns is None else campaigns,
                              rules, topics=topics, detached=True, idle_timeout_ms=idle_timeout_ms)
    try:
        yield client
    finally:
        client.cancel().result()


def read_json(bootstrap, topic, expected, timeout_s=60):
    return [json.loads(m.value()) for m in consume_all(bootstrap, topic, expected=expected, timeout_s=timeout_s)]


def wait_for(predicate, timeout_s=60, every_s=0.5, what="the condition"):
    """rtm.waiting.wait_until with the tests' defaults."""
    return wait_until(predicate, timeout_s, every_s, what)
