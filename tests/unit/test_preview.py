"""`rtm campaigns preview`: the engine over files, triggers as JSONL."""

import json

import msgspec

from click.testing import CliRunner

import scenarios
from rtm.cli.campaigns import campaigns as cli
from rtm.events import parse_event, parse_ts
from rtm.preview import run_preview
from rtm.settings import CAMPAIGNS_DIR

EVENTS = [
    {"event_id": "a1", "type": "page_view", "ts": "2026-11-25T10:00:00Z", "anonymous_id": "anon",
     "params": {"page": "landing"}},
    {"event_id": "c1", "type": "add_to_cart", "ts": "2026-11-25T10:00:00Z", "user_id": "u1",
     "params": {"sku": "sku-9"}},
    {"event_id": "c1", "type": "add_to_cart", "ts": "2026-11-25T10:00:00Z", "user_id": "u1",
     "params": {"sku": "sku-9"}},
    {"event_id": "k1", "type": "checkout", "ts": "2026-11-25T10:01:00Z", "user_id": "u1",
     "params": {"cart_items": 2}},
    {"event_id": "x", "type": "page_view", "ts": "2026-11-25T15:00:00Z", "anonymous_id": "other"},
]


def files(tmp_path, events=EVENTS, bad_line=True):
    lines = [json.dumps(e) for e in events]
    if bad_line:
        lines.insert(1, '{"event_id": "broken"')
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "profiles.jsonl").write_text(
        '{"user_id": "u1", "segments": ["vip"], "attributes": {"recommendations": ["sku-1"]}}\n')
    # The last event carries event time 5 h on, past the default --max-future (1 h) over files.
    return ["preview", "--campaigns", str(CAMPAIGNS_DIR), "--events", str(tmp_path / "events.jsonl"),
            "--profiles", str(tmp_path / "profiles.jsonl"), "--max-future", "6h"]


def triggers(output):
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_preview_prints_triggers_and_settles_at_the_largest_event_time(tmp_path):
    result = CliRunner().invoke(cli, files(tmp_path))
    assert result.exit_code == 0, result.output
    fired = triggers(result.stdout)
    assert [t["campaign_id"] for t in fired] == ["welcome_coupon", "vip_checkout_recommendations",
                                                 "checkout_reminder_ab", "cart_abandoned_email", "cart_idle_push"]
    by_campaign = {t["campaign_id"]: t for t in fired}
    abandoned = by_campaign["cart_abandoned_email"]
    assert abandoned["data"]["sku"] == "sku-9" and abandoned["emitted_at"] is None
    # The checkout a minute after the add postponed the idle push.
    assert by_campaign["cart_idle_push"]["event_time"] == abandoned["event_time"] + 60_000


def test_preview_reports_bad_lines_on_stderr_and_counts(tmp_path):
    result = CliRunner().invoke(cli, files(tmp_path))
    assert "events.jsonl:2: not JSON" in result.stderr
    assert "5 events, 3 users, 1 duplicates: 5 triggers" in result.stderr


def test_preview_writes_the_session_records_only_when_asked(tmp_path):
    sessions = tmp_path / "sessions.jsonl"
    result = CliRunner().invoke(cli, [*files(tmp_path), "--sessions", str(sessions)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in sessions.read_text().splitlines()]
    # In file order, then what the end of event time (15:00) settles, by user key; the
    # session of "other" (15:00) is still open.
    assert [(r["kind"], r["user_key"]) for r in records] == [
        ("session_start", "anon"), ("session_start", "u1"), ("session_start", "other"), ("session_end", "anon"),
        ("session_end", "u1")]
    assert records[4]["event_count"] == 2 and records[4]["end"] == parse_ts("2026-11-25T10:01:00Z")
    without = CliRunner().invoke(cli, files(tmp_path))
    assert without.stdout == result.stdout  # the same triggers either way


def test_preview_until_stops_event_time(tmp_path):
    result = CliRunner().invoke(cli, [*files(tmp_path), "--until", "2026-11-25T13:59:59Z"])
    assert result.exit_code == 0, result.output
    assert "cart_abandoned_email" not in [t["campaign_id"] for t in triggers(result.stdout)]
    assert "1 after --until (skipped)" in result.stderr


def test_preview_refuses_invalid_campaigns(tmp_path):
    (tmp_path / "bad.yaml").write_text("id: bad\n")
    args = files(tmp_path)
    args[args.index("--campaigns") + 1] = str(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and "bad.yaml" in str(result.exception)


def test_preview_refuses_an_event_further_ahead_than_max_future_and_it_moves_no_time(tmp_path):
    args = files(tmp_path, bad_line=False)
    args[args.index("--max-future") + 1] = "1h"
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # The 15:00 event is 4 h 59 m after the largest event time before it (10:01): refused,
    # so event time ends at 10:01 and the cart abandoned at 10:01 is not yet due.
    ahead, newest = parse_ts("2026-11-25T15:00:00Z"), parse_ts("2026-11-25T10:01:00Z")
    assert (f"events.jsonl:5: ts {ahead} is {ahead - newest} ms ahead of the largest event time before it {newest}, "
            f"more than --max-future (3600000 ms): fix the clock of the event's producer, or raise --max-future"
            ) in result.stderr
    assert [t["campaign_id"] for t in triggers(result.stdout)] == ["welcome_coupon", "vip_checkout_recommendations"]
    assert "4 events, 2 users" in result.stderr


def test_preview_names_the_setting_to_change_when_settings_contradict(tmp_path):
    result = CliRunner().invoke(cli, [*files(tmp_path), "--allowed-lateness", "2h", "--dedup-horizon", "1h"])
    assert result.exit_code != 0
    assert "--allowed-lateness (7200s) is above --dedup-horizon (3600s)" in str(result.exception)
    assert "lower --allowed-lateness or raise --dedup-horizon" in str(result.exception)


def test_a_message_past_the_size_limit_is_a_counted_condition_error_and_no_trigger(tmp_path):
    (tmp_path / "echo.yaml").write_text(
        "id: echo\nversion: 1\npattern:\n  steps:\n    - event: note\n"
        "action:\n  channel: push\n  endpoint: app\n  message: \"{{ event.params.text }}\"\n")
    notes = [{"event_id": f"n{i}", "type": "note", "ts": "2026-11-25T10:00:00Z", "user_id": f"u{i}",
              "params": {"text": text}} for i, text in enumerate(["short", "x" * 40_000])]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in notes))
    result = CliRunner().invoke(cli, ["preview", "--campaigns", str(tmp_path / "echo.yaml"),
                                      "--events", str(tmp_path / "events.jsonl")])
    assert result.exit_code == 0, result.output
    assert [t["message"] for t in triggers(result.stdout)] == ["short"]
    assert "warning: echo: rendering failed, no trigger: RenderedTooLarge: the template's value would be 40000 " \
           "characters, above the limit of 32768" in result.stderr
    assert "2 events, 2 users, 0 duplicates, 1 condition errors: 1 triggers" in result.stderr


def test_preview_of_the_reference_scenarios_gives_exactly_their_triggers_and_suppressions(shipped):
    profiles = {p["user_id"]: p for p in scenarios.PROFILES}
    result = run_preview(shipped, (parse_event(json.dumps(e).encode()) for e in scenarios.events()), profiles)
    assert scenarios.summary(msgspec.to_builtins(result.triggers)) == sorted(scenarios.EXPECTED)
    assert scenarios.suppressed_summary(msgspec.to_builtins(result.suppressed)) == sorted(scenarios.SUPPRESSED)
