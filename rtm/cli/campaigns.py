"""`rtm campaigns ...`: validate and preview files; publish, retire and list on Kafka.

The Kafka modules are imported by the commands that use them: validate and preview do not
pay for confluent_kafka's import (~0.1 s of a preview's start).
"""

import sys
from pathlib import Path

import click
import msgspec

from rtm import settings
from rtm.arbitration import POLICY_KEY
from rtm.campaigns import CampaignSet, campaign_files, load_set, policy_files
from rtm.errors import RtmError
from rtm.cli.options import bootstrap_option, engine_options, max_future_option, until_option
from rtm.preview import read_events, read_profiles, run_preview
from rtm.time_rules import check_settings


@click.group()
def campaigns():
    """Write, check and try campaigns."""


@campaigns.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Check campaign files and the policy (policy.yaml; default: campaigns/); every problem
    names file, line and field."""
    paths = paths or (Path("campaigns"),)
    files = campaign_files(paths) + policy_files(paths)
    loaded, issues = load_set(paths)
    for issue in issues:
        click.echo(str(issue), err=True)
    if issues:
        bad = len({i.source for i in issues})
        click.echo(f"{len(issues)} problem(s) in {bad} of {len(files)} file(s)", err=True)
        sys.exit(1)
    policy = f" and a policy of {len(loaded.policy.caps)} cap(s)" if loaded.policy.definition is not None else ""
    click.echo(f"ok: {len(loaded)} campaign(s){policy} in {len(files)} file(s)")


@campaigns.command()
@click.option("--campaigns", "campaigns_dir", required=True, type=click.Path(exists=True, path_type=Path),
              help="Folder (or file) of campaign YAML.")
@click.option("--events", "events_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Events, one JSON object per line, in arrival order.")
@click.option("--profiles", "profiles_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Profiles, one JSON object per line.")
@until_option
@max_future_option
@click.option("--conversions", "conversions_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the conversions (goals reached after triggers) to this file, as JSONL.")
@click.option("--suppressed", "suppressed_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the triggers the policy's channel caps suppressed to this file, as JSONL.")
@click.option("--sessions", "sessions_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the session records (session_start, session_end; as on rtm.sessions) to this "
                   "file, as JSONL.")
@engine_options
def preview(campaigns_dir: Path, events_path: Path, profiles_path: Path | None, until: int | None,
            max_future: int, conversions_path: Path | None, suppressed_path: Path | None,
            sessions_path: Path | None, engine_config) -> None:
    """Run the engine alone over files and print the triggers as JSONL.

    The same engine as the Flink job: the same input gives the same triggers
    (emitted_at, wall time at delivery, stays null here). Bad input lines are
    reported on stderr and skipped.
    """
    check_settings(engine_config, max_future_ms=max_future)
    loaded, issues = load_set([campaigns_dir])
    if issues:
        raise RtmError("fix the campaigns first (rtm campaigns validate):\n" + "\n".join(map(str, issues)))
    warn = lambda message: click.echo(message, err=True)  # noqa: E731
    profiles = read_profiles(profiles_path, warn) if profiles_path else {}
    result = run_preview(loaded, read_events(events_path, warn, max_future), profiles, until, engine_config,
                         sessions=sessions_path is not None)  # not made unless written
    encode_lines = msgspec.json.Encoder().encode_lines  # JSONL, one write, not one per line
    click.echo(encode_lines(result.triggers), nl=False)
    for path, records in ((conversions_path, result.conversions), (suppressed_path, result.suppressed),
                          (sessions_path, result.sessions)):
        if path is not None:
            path.write_bytes(encode_lines(records))
    for error in result.errors:
        warn(f"warning: {error}")
    notes = f", {len(result.errors)} condition errors" if result.errors else ""
    notes += f", {result.late} late" if result.late else ""
    notes += f", {result.after_until} after --until (skipped)" if result.after_until else ""
    warn(f"{result.events} events, {result.users} users, {result.duplicates} duplicates{notes}: "
         f"{len(result.triggers)} triggers, {sum(t.holdout for t in result.triggers)} of them holdout"
         + (f", {len(result.conversions)} conversions" if result.conversions else "")
         + (f", {len(result.suppressed)} suppressed by the policy" if result.suppressed else "")
         + (f", {len(result.dropped)} dropped outside their send window" if result.dropped else ""))


topic_option = click.option("--topic", default=settings.CAMPAIGNS_TOPIC, show_default=True)


def write_campaigns(bootstrap: str, topic: str, loaded: CampaignSet) -> None:
    """Publish validated campaigns: their definitions as JSON, keyed by campaign id, and
    the policy, if there is one, under its key."""
    from rtm import kafka_clients

    encode = msgspec.json.Encoder().encode
    records = [(c.id, encode(c.definition)) for c in loaded]
    if loaded.policy.definition is not None:
        records.append((POLICY_KEY, encode(loaded.policy.definition)))
    kafka_clients.write(bootstrap, topic, records)


@campaigns.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@bootstrap_option
@topic_option
def publish(paths: tuple[Path, ...], bootstrap: str | None, topic: str) -> None:
    """Validate campaign files and the policy, then write each to the campaigns topic (key =
    id; the policy's: _policy).

    A running job applies them within seconds: a new id starts, a higher version
    replaces the running one (its partial matches are dropped), the policy replaces the
    running one. Nothing is written unless every file is valid.
    """
    from rtm import kafka_broker

    loaded, issues = load_set(paths)
    if issues:
        raise RtmError("nothing published; fix these first:\n" + "\n".join(map(str, issues)))
    write_campaigns(kafka_broker.resolve_bootstrap(bootstrap), topic, loaded)
    for campaign in loaded:
        click.echo(f"published {campaign.id} version {campaign.version} to {topic}")
    if loaded.policy.definition is not None:
        click.echo(f"published the policy ({POLICY_KEY}) to {topic}")


@campaigns.command()
@click.argument("campaign_id")
@bootstrap_option
@topic_option
def retire(campaign_id: str, bootstrap: str | None, topic: str) -> None:
    """Retire a campaign: a tombstone on the campaigns topic; its user state is dropped.
    `rtm campaigns retire _policy` removes the policy."""
    from rtm import kafka_broker, kafka_clients

    bootstrap = kafka_broker.resolve_bootstrap(bootstrap)
    if campaign_id not in kafka_clients.latest_by_key(bootstrap, topic):
        click.echo(f"note: {campaign_id} is not on {topic}; a campaign the job loaded from a folder "
                   "is retired all the same", err=True)
    kafka_clients.write(bootstrap, topic, [(campaign_id, None)])
    click.echo(f"retired {campaign_id} on {topic}")


@campaigns.command(name="list")
@bootstrap_option
@topic_option
def list_(bootstrap: str | None, topic: str) -> None:
    """List the campaigns the topic holds now (latest version of each, retired ones left out)."""
    from rtm import kafka_broker, kafka_clients

    bootstrap = kafka_broker.resolve_bootstrap(bootstrap)
    for campaign_id, raw in sorted(kafka_clients.latest_by_key(bootstrap, topic).items()):
        try:
            definition = msgspec.json.decode(raw)
            if campaign_id == POLICY_KEY:
                click.echo(f"{campaign_id}\tthe policy\t{len(definition.get('caps', ()))} cap(s)")
            else:
                click.echo(f"{campaign_id}\tversion {definition.get('version')}\t{definition.get('name', '')}")
        except (msgspec.DecodeError, AttributeError):
            click.echo(f"{campaign_id}\t(not a valid definition: the job rejects it)")
