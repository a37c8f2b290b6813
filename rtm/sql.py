"""Flink SQL files (sql/): rendered with rtm's settings, run on a MiniCluster or a cluster.

A file is a Jinja2 template of Flink SQL statements separated by `;`; the aggregations
in sql/ include `tables.sql.j2` for the topic tables. `render` fills in the variables
below, `run` executes the statements in order and returns the result of the last one
(the aggregation's SELECT), whose rows `rows` reads as they come.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jinja2
from py4j.protocol import Py4JJavaError

from rtm import flink_config, kafka_config, settings
from rtm.durations import InvalidDuration, parse_duration, sql_interval
from rtm.errors import RtmError

# The template variables and their defaults; `rtm sql run --set NAME=VALUE` overrides
# any of them. `bootstrap` and `bounded` come from their own options.
DEFAULTS = {
    "events_topic": settings.EVENTS_TOPIC,
    "triggers_topic": settings.TRIGGERS_TOPIC,
    "sessions_topic": settings.SESSIONS_TOPIC,
    "conversions_topic": settings.CONVERSIONS_TOPIC,
    "suppressed_topic": settings.SUPPRESSED_TOPIC,
    "group_id": "rtm-sql",
    "startup_mode": "earliest-offset",
    "watermark_delay": "5s",
    "idle_timeout": "30s",
    "trigger_window": "1m",
    "conversion_event": "purchase",
    "conversion_window": "24h",
    "goal_window": "7d",
    "funnel_window": "1d",
    "session_window": "1h",
    "active_users_window": "1h",
}
# The variables that are durations, written as everywhere in rtm (rtm.durations: 5m, 24h, 1d).
DURATIONS = ("watermark_delay", "idle_timeout", "trigger_window", "conversion_window", "goal_window", "funnel_window",
             "session_window", "active_users_window")
STARTUP_MODES = ("earliest-offset", "latest-offset", "group-offsets")

# Window boundaries on TIMESTAMP_LTZ follow the session time zone: days start at UTC
# midnight whatever the machine's zone is.
_TABLE_SETTINGS = {"table.local-time-zone": "UTC"}


def _interval(duration: str) -> str:
    """'5m' -> INTERVAL '5' MINUTE (the durations were checked by `variables`)."""
    return sql_interval(parse_duration(duration))


def _option_duration(duration: str) -> str:
    """'30s' -> '30000 ms', a duration as Flink's options spell it (they know no weeks)."""
    return f"{parse_duration(duration)} ms"


def _literal(value: str) -> str:
    """A SQL string literal: 'it''s'."""
    return "'" + str(value).replace("'", "''") + "'"


def variables(bootstrap: str, bounded: bool = False, overrides: dict[str, str] | None = None) -> dict:
    """The values a file is rendered with: DEFAULTS, then `overrides`, each checked."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise RtmError(f"unknown SQL variable {', '.join(unknown)}: the variables are {', '.join(DEFAULTS)}")
    # The Kafka client settings of --kafka-config (SASL, TLS) for every table, as properties.*.
    values = {**DEFAULTS, **overrides, "bootstrap": bootstrap, "bounded": bounded,
              "kafka_properties": kafka_config.java()}
    for name in DURATIONS:
        try:
            parse_duration(values[name])
        except InvalidDuration as err:
            raise RtmError(f"{name}={err}") from None
    if values["startup_mode"] not in STARTUP_MODES:
        raise RtmError(f"startup_mode={values['startup_mode']!r}: choose one of {', '.join(STARTUP_MODES)}")
    return values


def render(path: Path, values: dict) -> str:
    """The Flink SQL of the template at `path`; includes resolve next to it, then in sql/."""
    path = Path(path)
    if not path.is_file():
        raise RtmError(f"no SQL file at {path}: the aggregations are in {settings.SQL_DIR}")
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader([path.parent, settings.SQL_DIR]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(interval=_interval, option_duration=_option_duration, literal=_literal)
    try:
        return environment.get_template(path.name).render(values)
    except jinja2.TemplateSyntaxError as err:
        raise RtmError(f"{err.filename or path}:{err.lineno}: {err.message}") from err
    except jinja2.TemplateNotFound as err:
        raise RtmError(f"{path} includes {err.name}, which is neither next to it nor in {settings.SQL_DIR}") from err
    except jinja2.UndefinedError as err:
        raise RtmError(f"{path}: {err.message}; the variables are {', '.join(values)}") from err


# A quoted string or identifier, a comment, or a run of anything else; `;` alone.
_TOKEN = re.compile(r"'(?:[^']|'')*'|`[^`]*`|--[^\n]*|/\*.*?\*/|;|[^'`;/-]+|.", re.DOTALL)


def statements(script: str) -> list[str]:
    """The statements of `script`, split at each `;` outside quotes and comments."""
    found, current, has_code = [], "", False
    for token in _TOKEN.findall(script) + [";"]:
        if token == ";":
            if has_code:  # not only comments
                found.append(current.strip())
            current, has_code = "", False
        else:
            current += token
            has_code = has_code or not (token.isspace() or token.startswith(("--", "/*")))
    return found


def _configuration(jobmanager: str | None, job_name: str):
    overrides = {**_TABLE_SETTINGS, "pipeline.name": job_name}
    if jobmanager is None:
        return flink_config.local_configuration(overrides)
    host, _, port = jobmanager.rpartition(":")
    if not host or not port.isdigit():
        raise RtmError(f"--jobmanager {jobmanager!r}: give the cluster's REST address as HOST:PORT, e.g. localhost:8081")
    # The connector jar still goes with the job: the planner in this process needs it.
    return flink_config.local_configuration(
        {**overrides, "execution.target": "remote", "rest.address": host, "rest.port": port}
    )


def run(script: str, jobmanager: str | None = None, job_name: str = "rtm-sql"):
    """Execute the statements of a rendered script; the last one's TableResult.

    Without `jobmanager` the job runs on a MiniCluster in this process, else it is
    submitted to the cluster whose REST API answers at `jobmanager` (HOST:PORT).
    """
    from pyflink.table import EnvironmentSettings, TableEnvironment

    found = statements(script)
    if not found:
        raise RtmError("the SQL file has no statement")
    config = _configuration(jobmanager, job_name)
    t_env = TableEnvironment.create(EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(config).build())
    for number, statement in enumerate(found, start=1):
        # Flink's parser, validator and planner answer here, before any job starts.
        with _flink_errors(f"statement {number} of {len(found)} failed", statement):
            result = t_env.execute_sql(statement)
    return result


def rows(result) -> Iterator[dict]:
    """The rows of a SELECT's TableResult as dicts, as they arrive (until the job ends).

    Each starts with "op", the kind of change: '+I' for a new row (all a windowed
    aggregation emits), '-U'/'+U' and '-D' for the updates of an updating query.
    """
    names = result.get_resolved_schema().get_column_names()
    with _flink_errors("the Flink job failed"), result.collect() as collected:
        for row in collected:
            yield {"op": str(row.get_row_kind()), **dict(zip(names, row))}


@contextmanager
def _flink_errors(what: str, statement: str = ""):
    """Turn a Java exception into an RtmError that says why, without the stack trace."""
    try:
        yield
    except Py4JJavaError as err:
        throwable, reasons = err.java_exception, []
        while throwable is not None:
            message = throwable.getMessage()
            if message and not any(message in reason for reason in reasons):
                reasons.append(message)
            throwable = throwable.getCause()
        # The outer exceptions are Flink's plumbing; the innermost two say what went wrong.
        raise RtmError("\n".join([f"{what}:", *reasons[-2:], statement]).strip()) from None
