"""`rtm run` and `rtm backtest`: the campaign job on a MiniCluster, over Kafka or files.

`rtm run` also serves a real cluster: jobs/entry.py, which `flink run` executes, invokes
it with the cluster's environment as the context object, so one code path builds the job.
"""

import dataclasses
import functools
import signal
import threading
from pathlib import Path

import click
import msgspec

from rtm import checkpoints, kafka_broker, settings, topics
from rtm.cli.options import (
    bootstrap_option,
    duration,
    engine_config,
    engine_options,
    max_future_option,
    until_option,
)
from rtm.preview import read_profiles
from rtm.records import Suppressed, Trigger
from rtm.time_rules import TimeRules

campaigns_option = click.option(
    "--campaigns", "campaigns_dir", type=click.Path(exists=True, path_type=Path), default=settings.CAMPAIGNS_DIR,
    show_default=True, help="Campaign YAML in effect before the first event (replaces campaigns/).",
)


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def _topics(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]):
    names = [field.name for field in dataclasses.fields(settings.Topics)]
    chosen = {}
    for value in values:
        name, _, topic = value.partition("=")
        if name not in names or not topic:
            raise click.BadParameter(f"{value!r} is not NAME=TOPIC with NAME one of {', '.join(names)}")
        chosen[name] = topic
    return settings.Topics(**chosen)


@click.command()
@bootstrap_option
@campaigns_option
@click.option("--topic", "job_topics", multiple=True, metavar="NAME=TOPIC", callback=_topics,
              help="Use TOPIC as one of the job's topics (repeatable): the inputs events, profiles, campaigns "
              "or the outputs triggers, suppressed, sessions, conversions, dlq, late. Default: the rtm.* topics.")
@click.option("--bounded", is_flag=True, help="Read every topic up to its end offsets at start, then finish "
              "(profiles and campaigns on the topics are in effect from the first event).")
@until_option
@click.option("--delivery", type=click.Choice(["at-least-once", "exactly-once"]), default="at-least-once",
              show_default=True, help="Trigger delivery guarantee (exactly-once: Kafka transactions per checkpoint).")
@click.option("--out-of-orderness", callback=duration, default="5s", show_default=True,
              help="How far events may arrive out of event-time order before the watermark passes them.")
@click.option("--idle-timeout", callback=duration, default="5s", show_default=True,
              help="An input quiet this long stops holding the watermark back.")
@max_future_option
@click.option("--parallelism", type=click.IntRange(min=1),
              help="Parallel instances of every operator (default: parallelism.default of flink-conf/config.yaml). "
              "Kafka sources use at most one per partition; in thread mode give each its own TaskManager.")
@click.option("--fresh", is_flag=True, help="Start with empty state: discard the checkpoints that earlier runs over "
              "these topics left (without it a live run resumes from the newest).")
@engine_options
@click.pass_obj
def run(environment, bootstrap, campaigns_dir, job_topics, bounded, until, delivery, out_of_orderness, idle_timeout,
        max_future, parallelism, fresh, engine_config):
    """Run the campaign job on a local MiniCluster over the rtm topics.

    Reads flink-conf/config.yaml. Campaigns from --campaigns and the current contents of
    rtm.campaigns are in effect before the first event; later updates on the topic
    apply live. Without --bounded it runs until stopped (Ctrl-C) and resumes from the
    newest checkpoint of the last run over the same topics (user state, offsets); a
    crash keeps it too. A bounded run replays the topics from the start with empty state.
    """
    from jobs import campaign_job, startup
    from jobs.environment import local_environment

    rules = _time_rules(out_of_orderness, bounded, until, engine_config, max_future)
    rules.check(idle_timeout)  # before anything starts
    bootstrap = kafka_broker.resolve_bootstrap(bootstrap)
    topics.ensure_topics(bootstrap, dataclasses.astuple(job_topics), compacted=job_topics.compacted)
    campaigns = startup.with_topic(startup.folder_campaigns(campaigns_dir), bootstrap, job_topics.campaigns, _warn)
    policy = f" and a policy of {len(campaigns.policy.caps)} cap(s)" if campaigns.policy.definition is not None else ""
    click.echo(f"running {len(campaigns)} campaigns{policy} over {bootstrap}" + (" (bounded)" if bounded else ""),
               err=True)
    # The context object, when set, makes the environment (jobs/entry.py: the cluster's).
    env = environment() if environment else local_environment(_recovery(bootstrap, job_topics, bounded, fresh))
    if parallelism is not None:
        env.set_parallelism(parallelism)
    run_job = functools.partial(
        campaign_job.run, env, bootstrap, startup.definitions(campaigns), rules,
        topics=job_topics, bounded=bounded, delivery=delivery, idle_timeout_ms=idle_timeout,
    )
    if environment:  # the cluster's client: `flink run -d` returns at once
        run_job()
    else:
        _run_until_stopped(run_job)


def _time_rules(out_of_orderness: int, bounded: bool, until: int | None, engine_config, max_future: int) -> TimeRules:
    return TimeRules(out_of_orderness_ms=out_of_orderness, live=not bounded, until=until, engine=engine_config,
                     max_future_ms=max_future)


def check_settings(params: dict) -> None:
    """Raise SettingsError if the parsed options of `rtm run` contradict each other (for
    `rtm submit`, before a slow submission)."""
    _time_rules(params["out_of_orderness"], params["bounded"], params["until"], engine_config(params),
                params["max_future"]).check(params["idle_timeout"])


def _run_until_stopped(run_job) -> None:
    """Run the job on the MiniCluster until it ends, or until Ctrl-C or SIGTERM cancel it:
    cancelled, its last checkpoint is kept (flink-conf/config.yaml), and the next run resumes
    from it. (Python sees Ctrl-C alone: PyFlink's JVM ignores SIGINT.)"""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        client = run_job(detached=True)
        ended = client.get_job_execution_result()
        while not stop.wait(0.5):
            if ended.done():
                ended.result()  # raises the job's failure, if it failed
                return
        client.cancel().result()
        click.echo("stopped: the next `rtm run` over these topics resumes from the last checkpoint "
                   "(--fresh starts empty)", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _recovery(bootstrap: str, job_topics, bounded: bool, fresh: bool) -> dict[str, str]:
    """The settings that make a local live run keep its checkpoints in its own dir and
    resume from the newest there (a cluster restarts its jobs from checkpoints itself)."""
    from jobs.campaign_job import JOB_NAME

    if bounded:  # a replay from the start: state from a live run would count events twice
        return {}
    directory = checkpoints.job_dir(JOB_NAME, bootstrap, job_topics)
    latest = None if fresh else checkpoints.newest(directory)
    checkpoints.discard(directory, keep=latest)
    if latest is None:
        click.echo("starting with empty state" + (" (--fresh)" if fresh else ""), err=True)
        return {"execution.checkpointing.dir": directory.as_uri()}
    click.echo(f"resuming from checkpoint {latest} (--fresh starts empty)", err=True)
    return {"execution.checkpointing.dir": directory.as_uri(), "execution.state-recovery.path": latest.as_uri()}


@click.command()
@campaigns_option
@click.option("--events", "events_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Events, one JSON object per line, in arrival order.")
@click.option("--profiles", "profiles_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Profiles, one JSON object per line, in effect from the start.")
@until_option
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where triggers.jsonl, suppressed.jsonl, sessions.jsonl, conversions.jsonl, dlq.jsonl and "
              "late.jsonl go.")
@max_future_option
@engine_options
def backtest(campaigns_dir, events_path, profiles_path, until, out_dir, max_future, engine_config):
    """Run the campaign job on a MiniCluster over files: whom would the campaigns reach?

    The same pipeline as `rtm run`, deterministic and ending with the input. Bad lines go
    to dlq.jsonl (with file and line), never failing the run; holdout triggers are kept.
    """
    from pyflink.common import Row

    from jobs import campaign_job, startup
    from jobs.environment import local_environment
    from udfs.rows import EVENT, PROFILE

    rules = TimeRules(live=False, until=until, engine=engine_config, max_future_ms=max_future)
    rules.check()
    campaigns = startup.folder_campaigns(campaigns_dir)
    profiles = read_profiles(profiles_path, _warn) if profiles_path else {}
    # Bad profile lines were reported above; the good ones go first, keyed by user id.
    profile_rows = [Row(kind=PROFILE, key=user_id, value=msgspec.json.encode(profile), topic=str(profiles_path),
                        partition=0, offset=n) for n, (user_id, profile) in enumerate(profiles.items())]
    event_rows = []
    with events_path.open("rb") as lines:
        for lineno, line in enumerate(lines, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():  # a bad line goes to dlq.jsonl with the reason, file and line
                event_rows.append(Row(kind=EVENT, key=None, value=line, topic=str(events_path), partition=0,
                                      offset=lineno))
    outputs = campaign_job.backtest(local_environment(), profile_rows, event_rows, startup.definitions(campaigns),
                                    rules)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, values in outputs.items():
        if name in ("triggers", "suppressed"):
            rows = [msgspec.json.decode(value, type=Trigger if name == "triggers" else Suppressed) for value in values]
            for trigger in rows:
                trigger.emitted_at = None  # nothing was emitted: keeps reruns identical
            rows.sort(key=lambda t: (t.event_time, t.campaign_id, t.user_key, t.trigger_id))
        else:
            rows = [msgspec.json.decode(value) for value in values]
            rows.sort(key=lambda row: msgspec.json.encode(row, order="sorted"))
        (out_dir / f"{name}.jsonl").write_bytes(b"".join(msgspec.json.encode(row) + b"\n" for row in rows))
        click.echo(f"{out_dir / f'{name}.jsonl'}: {len(rows)}", err=True)
