"""The Flink SQL aggregations of sql/, run bounded on a MiniCluster over known records."""

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from click.testing import CliRunner

from kafka_helpers import produce
from rtm import settings, sql
from rtm.cli import main
from rtm.errors import RtmError
from rtm.events import InvalidEvent, parse_event, user_key
from rtm.sessions import Session, record as sessions_record
from rtm.triggers import make_trigger

DAY = datetime(2026, 11, 25)  # window bounds come back as naive UTC timestamps


def _at(clock: str) -> datetime:
    """A time on DAY, naive UTC like the window bounds: _at('10:01') or _at('10:01:30')."""
    hour, minute, *second = map(int, clock.split(":"))
    return DAY.replace(hour=hour, minute=minute, second=second[0] if second else 0)


def _ms(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


def _json(records) -> list[tuple[bytes, bytes | None]]:
    """Kafka records from dicts; bytes and None go through as they are (junk, tombstones)."""
    return [(b"k", r if r is None or isinstance(r, bytes) else json.dumps(r).encode()) for r in records]


def _run(name: str, bootstrap: str, **overrides) -> list[dict]:
    values = sql.variables(bootstrap, bounded=True, overrides=overrides)
    rows = list(sql.rows(sql.run(sql.render(settings.SQL_DIR / name, values))))
    # Windows emit each row once, final: never an update or a retraction.
    assert {row.pop("op") for row in rows} <= {"+I"}
    return rows


def _trigger(label, campaign, channel, user, time, holdout=False, variant=None):
    """A trigger as the campaign job writes it; its id follows from `label` and the rest."""
    made = make_trigger(campaign_id=campaign, version=1, user_key=user, user_id=user, anonymous_id=None,
                        channel=channel, endpoint="", message="", data={}, matched_event_ids=[label],
                        event_time=_ms(time), holdout=holdout, variant=variant)
    return msgspec.to_builtins(made)


def _event(event_id, kind, time, user_id=None, anonymous_id=None, ts=None):
    return {"event_id": event_id, "type": kind, "ts": _ms(time) if ts is None else ts,
            "user_id": user_id, "anonymous_id": anonymous_id}


def test_triggers_per_campaign_and_channel_per_minute_split_delivered_and_holdout(kafka_bootstrap, new_topic):
    triggers = new_topic("triggers")
    produce(kafka_bootstrap, triggers, _json([
        _trigger("t1", "c1", "popup", "u1", _at("10:00:05")),
        _trigger("t1", "c1", "popup", "u1", _at("10:00:05")),  # written twice: counts once
        _trigger("t2", "c1", "popup", "u2", _at("10:00:30"), holdout=True),
        _trigger("t3", "c1", "email", "u3", _at("10:00:40")),
        _trigger("t4", "c1", "popup", "u1", _at("10:00:59")),
        _trigger("t5", "c2", "popup", "u1", _at("10:01:00")),  # a window includes its start
        b"not json",
        None,  # a tombstone
        {**_trigger("t6", "c1", "popup", "u1", _at("10:00:50")), "event_time": None},  # no event time
    ]))

    rows = _run("triggers_per_minute.sql", kafka_bootstrap, triggers_topic=triggers)

    minute = timedelta(minutes=1)
    assert sorted(rows, key=lambda r: (r["window_start"], r["campaign_id"], r["channel"])) == [
        {"window_start": _at("10:00"), "window_end": _at("10:00") + minute, "campaign_id": "c1", "channel": "email",
         "triggers": 1, "delivered": 1, "held_out": 0, "users": 1},
        {"window_start": _at("10:00"), "window_end": _at("10:00") + minute, "campaign_id": "c1", "channel": "popup",
         "triggers": 3, "delivered": 2, "held_out": 1, "users": 2},
        {"window_start": _at("10:01"), "window_end": _at("10:01") + minute, "campaign_id": "c2", "channel": "popup",
         "triggers": 1, "delivered": 1, "held_out": 0, "users": 1},
    ]


def test_funnel_gives_conversion_within_the_window_for_treated_and_holdout_and_counts_the_suppressed(
        kafka_bootstrap, new_topic):
    triggers, events, suppressed = new_topic("triggers"), new_topic("events"), new_topic("suppressed")
    produce(kafka_bootstrap, suppressed, _json([
        {**_trigger("s1", "c1", "popup", "u5", _at("10:00")), "suppressed_reason": "cap popup 1 per session"},
        {**_trigger("s2", "c1", "popup", "h5", _at("10:01"), holdout=True),
         "suppressed_reason": "cap popup 1 per session"},
        {**_trigger("s3", "c3", "email", "u6", _at("11:00")), "suppressed_reason": "cap email 3 per 1d"},
    ]))
    produce(kafka_bootstrap, triggers, _json([
        _trigger("t1", "c1", "popup", "u1", _at("10:00")),  # buys at 11:00: converted
        _trigger("t2", "c1", "popup", "u2", _at("10:00")),  # buys 25 h later: too late
        _trigger("t3", "c1", "popup", "u3", _at("10:05")),  # someone else buys: not u3
        _trigger("t4", "c1", "popup", "u4", _at("10:10")),  # buys twice: converted once
        _trigger("h1", "c1", "popup", "h1", _at("10:00"), holdout=True),  # buys at 12:00: converted
        _trigger("h2", "c1", "popup", "h2", _at("10:00"), holdout=True),  # adds to cart only
        _trigger("h3", "c1", "popup", "h3", _at("10:00"), holdout=True),  # bought before the trigger
        _trigger("h4", "c1", "popup", "h4", _at("10:00"), holdout=True),  # the purchase that triggered
        _trigger("t5", "c2", "email", "u1", _at("10:30")),  # c2 has no holdout group
    ]))
    produce(kafka_bootstrap, events, _json([
        _event("e1", "purchase", _at("09:59"), user_id="h3"),
        _event("e2", "purchase", _at("10:00"), user_id="h4"),
        _event("e3", "purchase", _at("10:06"), user_id="u9"),
        _event("e4", "add_to_cart", _at("10:07"), user_id="h2"),
        _event("e5", "purchase", _at("10:20"), user_id="u4"),
        _event("e6", "purchase", _at("10:40"), user_id="u4"),
        _event("e7", "purchase", _at("11:00"), user_id="u1"),
        _event("e8", "purchase", _at("12:00"), user_id="h1"),
        _event("e9", "purchase", _at("10:00") + timedelta(hours=25), user_id="u2"),
    ]))

    rows = _run("conversion_funnel.sql", kafka_bootstrap, triggers_topic=triggers, events_topic=events,
                suppressed_topic=suppressed)

    day = {"window_start": DAY, "window_end": DAY + timedelta(days=1)}
    assert sorted(rows, key=lambda r: r["campaign_id"]) == [
        {**day, "campaign_id": "c1", "treated": 4, "treated_converted": 2, "treated_rate": 0.5,
         "holdout": 4, "holdout_converted": 1, "holdout_rate": 0.25, "uplift": 0.25, "suppressed": 2},
        {**day, "campaign_id": "c2", "treated": 1, "treated_converted": 1, "treated_rate": 1.0,
         "holdout": 0, "holdout_converted": 0, "holdout_rate": None, "uplift": None, "suppressed": 0},
        {**day, "campaign_id": "c3", "treated": 0, "treated_converted": 0, "treated_rate": None,
         "holdout": 0, "holdout_converted": 0, "holdout_rate": None, "uplift": None, "suppressed": 1},
    ]


def test_variant_uplift_gives_each_variants_conversion_against_the_campaigns_holdout(kafka_bootstrap, new_topic):
    triggers, events = new_topic("triggers"), new_topic("events")
    produce(kafka_bootstrap, triggers, _json([
        _trigger("a1", "ab", "push", "a1", _at("10:00"), variant="plain"),  # buys: converted
        _trigger("a2", "ab", "push", "a2", _at("10:00"), variant="plain"),
        _trigger("b1", "ab", "push", "b1", _at("10:00"), variant="urgency"),  # buys twice: converted once
        _trigger("b2", "ab", "push", "b2", _at("10:00"), variant="urgency"),  # buys 25 h later: too late
        _trigger("b3", "ab", "push", "b3", _at("10:00"), variant="urgency"),  # buys: converted
        _trigger("b4", "ab", "push", "b4", _at("10:00"), variant="urgency"),  # buys: converted
        _trigger("h1", "ab", "push", "h1", _at("10:00"), holdout=True),  # buys: converted
        _trigger("h2", "ab", "push", "h2", _at("10:00"), holdout=True),
        _trigger("h3", "ab", "push", "h3", _at("10:00"), holdout=True),
        _trigger("h4", "ab", "push", "h4", _at("10:00"), holdout=True),
        _trigger("n1", "plain", "email", "n1", _at("10:30")),  # no variants, no holdout
    ]))
    produce(kafka_bootstrap, events, _json([
        _event("e1", "purchase", _at("10:10"), user_id="a1"),
        _event("e2", "purchase", _at("10:20"), user_id="b1"),
        _event("e3", "purchase", _at("10:40"), user_id="b1"),
        _event("e4", "purchase", _at("11:00"), user_id="b3"),
        _event("e5", "purchase", _at("11:00"), user_id="h1"),
        _event("e6", "purchase", _at("10:00") + timedelta(hours=25), user_id="b2"),
        _event("e7", "purchase", _at("10:30"), user_id="b4"),
    ]))

    rows = _run("variant_uplift.sql", kafka_bootstrap, triggers_topic=triggers, events_topic=events)

    day = {"window_start": DAY, "window_end": DAY + timedelta(days=1)}
    holdout = {"holdout": 4, "holdout_converted": 1, "holdout_rate": 0.25}
    assert sorted(rows, key=lambda r: (r["campaign_id"], r["variant"] or "")) == [
        {**day, "campaign_id": "ab", "variant": "plain", "treated": 2, "treated_converted": 1, "treated_rate": 0.5,
         **holdout, "uplift": 0.25},
        {**day, "campaign_id": "ab", "variant": "urgency", "treated": 4, "treated_converted": 3, "treated_rate": 0.75,
         **holdout, "uplift": 0.5},
        {**day, "campaign_id": "plain", "variant": None, "treated": 1, "treated_converted": 0, "treated_rate": 0.0,
         "holdout": 0, "holdout_converted": 0, "holdout_rate": None, "uplift": None},
    ]


def _conversion(trigger, event_id, time):
    """A conversion as the campaign job writes it (docs/CONTRACTS.md, "Conversion")."""
    return {"trigger_id": trigger["trigger_id"], "campaign_id": trigger["campaign_id"], "variant": trigger["variant"],
            "holdout": trigger["holdout"], "user_key": trigger["user_key"], "user_id": trigger["user_id"],
            "anonymous_id": None, "event_id": event_id, "event_type": "purchase", "event_time": _ms(time),
            "trigger_time": trigger["event_time"], "latency_ms": _ms(time) - trigger["event_time"]}


def test_goal_uplift_counts_the_conversions_the_campaigns_goals_recorded(kafka_bootstrap, new_topic):
    triggers, conversions = new_topic("triggers"), new_topic("conversions")
    sent = {label: _trigger(label, "ab", "push", label, _at("10:00"), holdout=label.startswith("h"),
                            variant={"a": "plain", "b": "urgency"}.get(label[0]))
            for label in ("a1", "a2", "b1", "b2", "h1", "h2")}
    produce(kafka_bootstrap, triggers, _json(sent.values()))
    produce(kafka_bootstrap, conversions, _json([
        _conversion(sent["a1"], "e1", _at("11:00")),
        _conversion(sent["b1"], "e2", _at("12:00")),
        _conversion(sent["b2"], "e3", _at("10:30")),
        _conversion(sent["h1"], "e4", _at("10:10")),
        _conversion(sent["a2"], "e5", _at("09:00")),  # before its trigger: not this trigger's
    ]))

    rows = _run("goal_uplift.sql", kafka_bootstrap, triggers_topic=triggers, conversions_topic=conversions)

    day = {"window_start": DAY, "window_end": DAY + timedelta(days=1)}
    holdout = {"holdout": 2, "holdout_converted": 1, "holdout_rate": 0.5}
    assert sorted(rows, key=lambda r: r["variant"]) == [
        {**day, "campaign_id": "ab", "variant": "plain", "treated": 2, "treated_converted": 1, "treated_rate": 0.5,
         **holdout, "uplift": 0.0},
        {**day, "campaign_id": "ab", "variant": "urgency", "treated": 2, "treated_converted": 2, "treated_rate": 1.0,
         **holdout, "uplift": 0.5},
    ]


def test_run_command_prints_the_funnel_with_the_conversion_settings_given(kafka_bootstrap, new_topic):
    triggers, events, suppressed = new_topic("triggers"), new_topic("events"), new_topic("suppressed")
    produce(kafka_bootstrap, triggers, _json([_trigger("t1", "c1", "popup", "u1", _at("10:00")),
                                              _trigger("t2", "c1", "popup", "u2", _at("10:00"))]))
    produce(kafka_bootstrap, events, _json([_event("e1", "checkout", _at("10:20"), user_id="u1"),
                                            _event("e2", "checkout", _at("10:40"), user_id="u2")]))

    result = CliRunner().invoke(main, [
        "sql", "run", str(settings.SQL_DIR / "conversion_funnel.sql"), "--bounded", "--bootstrap", kafka_bootstrap,
        "--set", f"triggers_topic={triggers}", "--set", f"events_topic={events}",
        "--set", f"suppressed_topic={suppressed}", "--set", "conversion_event=checkout",
        "--set", "conversion_window=30m",
    ])

    assert result.exit_code == 0, result.output
    header, *lines = [line.split("\t") for line in result.output.splitlines()]
    assert [dict(zip(header, line)) for line in lines] == [
        {"op": "+I", "window_start": "2026-11-25 00:00:00", "window_end": "2026-11-26 00:00:00", "campaign_id": "c1",
         "treated": "2", "treated_converted": "1", "treated_rate": "0.5", "holdout": "0", "holdout_converted": "0",
         "holdout_rate": "NULL", "uplift": "NULL", "suppressed": "0"}
    ]


def test_session_stats_per_platform_from_ended_sessions_by_end_time(kafka_bootstrap, new_topic):
    sessions = new_topic("sessions")

    def session(kind, user, start, last, count, pages, platform):
        """A session record as the campaign job writes it (its id follows from user and start)."""
        made = sessions_record(kind, Session(1, _ms(_at(start)), _ms(_at(last)), count, pages, platform), user, user, None)
        return msgspec.to_builtins(made)

    produce(kafka_bootstrap, sessions, _json([
        session("session_start", "u1", "10:00", "10:00", 1, 1, "web"),  # starts are not counted
        session("session_end", "u1", "10:00", "10:10", 5, 3, "web"),
        session("session_end", "u4", "10:14", "10:15", 2, 1, None),
        session("session_end", "u2", "10:20", "10:20", 1, 1, "web"),  # a bounce
        session("session_end", "u1", "10:30", "10:50", 3, 2, "web"),
        session("session_start", "u3", "10:40", "10:40", 1, 0, "ios"),
        session("session_end", "u3", "10:40", "11:05", 2, 0, "ios"),  # ends in the next hour
    ]))

    rows = _run("session_stats.sql", kafka_bootstrap, sessions_topic=sessions)

    hour = timedelta(hours=1)
    columns = ("platform", "sessions", "users", "avg_duration_s", "avg_events", "avg_pages", "bounces")
    assert sorted(rows, key=lambda r: (r["window_start"], r["platform"])) == [
        {"window_start": _at("10:00"), "window_end": _at("10:00") + hour, **dict(zip(columns, values))}
        for values in [("unknown", 1, 1, 60.0, 2.0, 1.0, 0), ("web", 3, 2, 600.0, 3.0, 2.0, 1)]
    ] + [{"window_start": _at("11:00"), "window_end": _at("11:00") + hour,
          **dict(zip(columns, ("ios", 1, 1, 1500.0, 2.0, 0.0, 0)))}]


def test_active_users_per_window_by_user_key_with_ts_in_millis_or_iso_8601(kafka_bootstrap, new_topic):
    events = new_topic("events")
    produce(kafka_bootstrap, events, _json([
        _event("e1", "page_view", _at("10:00"), user_id="u1"),
        _event("e2", "page_view", _at("10:10"), user_id="u1", ts="2026-11-25T10:10:00Z"),
        # 12:20 at +02:00 is 10:20 UTC: the offset counts.
        _event("e3", "page_view", _at("10:20"), anonymous_id="a1", ts="2026-11-25T12:20:00+02:00"),
        _event("e3", "page_view", _at("10:20"), anonymous_id="a1", ts="2026-11-25T12:20:00+02:00"),  # again
        _event("e4", "login", _at("10:59"), user_id="u2", ts="2026-11-25T10:59:59.999Z"),
        # Not counted: no valid ts, epoch seconds, no user key, not JSON.
        _event("x1", "page_view", _at("10:30"), user_id="u7", ts="yesterday"),
        _event("x2", "page_view", _at("10:30"), user_id="u7", ts=_ms(_at("10:30")) // 1000),
        _event("x3", "page_view", _at("10:30"), ts="2026-11-25T10:30:00Z"),
        b"{not json",
        _event("e5", "page_view", _at("11:30"), user_id="u1", anonymous_id="a1"),
        _event("e6", "page_view", _at("11:45"), anonymous_id="a2"),
    ]))

    rows = _run("active_users.sql", kafka_bootstrap, events_topic=events)

    hour = timedelta(hours=1)
    assert sorted(rows, key=lambda r: r["window_start"]) == [
        {"window_start": _at("10:00"), "window_end": _at("11:00"), "active_users": 3, "known_users": 2, "events": 4},
        {"window_start": _at("11:00"), "window_end": _at("11:00") + hour, "active_users": 2, "known_users": 1,
         "events": 2},
    ]


def test_the_events_view_keys_events_by_the_rule_of_the_campaign_job_and_drops_what_it_refuses(
        kafka_bootstrap, new_topic, tmp_path):
    events = new_topic("events")
    ids = [None, "", "u1"]
    sent = [_event(f"e{n}", "page_view", _at("10:00"), user_id=user_id, anonymous_id=anonymous_id)
            for n, (user_id, anonymous_id) in enumerate((u, a) for u in ids for a in [None, "", "a1"])]
    sent += [_event("", "page_view", _at("10:00"), user_id="u1"), _event("t", "", _at("10:00"), user_id="u1")]
    produce(kafka_bootstrap, events, _json(sent))
    (tmp_path / "keys.sql").write_text("{% include 'tables.sql.j2' %}\nSELECT event_id, user_key, user_id FROM events;\n")

    rows = _run(str(tmp_path / "keys.sql"), kafka_bootstrap, events_topic=events)

    expected = []
    for record in sent:
        try:
            event = parse_event(json.dumps(record))
        except InvalidEvent:
            continue  # the job refuses it
        expected.append({"event_id": event.event_id, "user_key": user_key(event.user_id, event.anonymous_id),
                         "user_id": event.user_id or None})
    assert len(expected) == 5  # u1 with each anonymous_id, a1 with a null or an empty user_id
    assert sorted(rows, key=lambda r: r["event_id"]) == sorted(expected, key=lambda r: r["event_id"])


def test_render_fills_in_broker_topics_windows_and_bounded_mode():
    values = sql.variables("broker-1:9092", bounded=True, overrides={"events_topic": "my.events",
                                                                    "active_users_window": "1d"})
    rendered = sql.render(settings.SQL_DIR / "active_users.sql", values)

    assert "'properties.bootstrap.servers' = 'broker-1:9092'" in rendered
    assert "'topic' = 'my.events'" in rendered
    assert "TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' DAY)" in rendered
    assert "'scan.bounded.mode' = 'latest-offset'" in rendered
    assert "{%" not in rendered and "{{" not in rendered
    unbounded = sql.render(settings.SQL_DIR / "active_users.sql", sql.variables("broker-1:9092"))
    assert "scan.bounded.mode" not in unbounded


def test_render_command_prints_the_sql_for_the_sql_client():
    result = CliRunner().invoke(main, ["sql", "render", str(settings.SQL_DIR / "triggers_per_minute.sql"),
                                       "--bootstrap", "kafka:9092", "--set", "triggers_topic=it's"])

    assert result.exit_code == 0, result.output
    assert "'properties.bootstrap.servers' = 'kafka:9092'" in result.output
    assert "'topic' = 'it''s'" in result.output  # quotes in values stay inside the literal


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"trigger_windw": "1m"}, "unknown SQL variable trigger_windw"),
        ({"trigger_window": "1 fortnight"}, "trigger_window='1 fortnight' is not a duration"),
        ({"startup_mode": "beginning"}, "startup_mode='beginning': choose one of"),
    ],
)
def test_bad_variables_are_refused_naming_the_variable(overrides, message):
    with pytest.raises(RtmError, match=message):
        sql.variables("kafka:9092", overrides=overrides)


def test_statements_split_at_semicolons_outside_quotes_and_comments():
    script = "-- a; comment\nCREATE VIEW v AS SELECT 'a;b' AS `c;d`;\n/* x; y */ SELECT 1;\n-- trailing; comment\n"

    assert sql.statements(script) == [
        "-- a; comment\nCREATE VIEW v AS SELECT 'a;b' AS `c;d`",
        "/* x; y */ SELECT 1",
    ]


def test_a_failing_statement_is_reported_with_its_number_and_text(tmp_path):
    (tmp_path / "broken.sql").write_text("{% include 'tables.sql.j2' %}\nSELECT nonsense FROM events;\n")
    script = sql.render(tmp_path / "broken.sql", sql.variables("kafka:9092"))
    last = len(sql.statements(script))  # the tables' statements, then the broken one

    with pytest.raises(RtmError, match=rf"statement {last} of {last} failed:\n.*Column 'nonsense' not found.*\nSELECT nonsense FROM events"):
        sql.run(script)
