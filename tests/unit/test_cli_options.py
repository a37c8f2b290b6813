"""The engine's time settings reach the engine from the command line."""

import json

import pytest
from click.testing import CliRunner

from rtm.cli import main

T0 = 1_795_600_000_000


def _page_views(tmp_path, offsets_ms):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(
        json.dumps({"event_id": f"p{i}", "type": "page_view", "ts": T0 + at, "anonymous_id": "reader",
                    "params": {"page": f"p{i}"}}) + "\n"
        for i, at in enumerate(offsets_ms)
    ))
    return path


def _three_page_view_triggers(events, *options):
    result = CliRunner().invoke(main, ["campaigns", "preview", "--campaigns", "campaigns/three_page_views.yaml",
                                       "--events", str(events), *options])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_allowed_lateness_decides_whether_an_old_event_still_counts(tmp_path):
    events = _page_views(tmp_path, [0, -10 * 60_000, 1000])  # the second is 10 minutes behind

    assert _three_page_view_triggers(events) == []  # default 5m: the old one is late, two views only
    assert len(_three_page_view_triggers(events, "--allowed-lateness", "1h")) == 1


def test_session_gap_decides_whether_views_share_a_session(tmp_path):
    events = _page_views(tmp_path, [0, 20 * 60_000, 40 * 60_000])  # 20 minutes apart

    assert len(_three_page_view_triggers(events)) == 1  # default gap 30m: one session
    assert _three_page_view_triggers(events, "--session-gap", "10m") == []


def test_a_duration_that_is_not_one_is_refused_with_the_units_allowed(tmp_path):
    result = CliRunner().invoke(main, ["campaigns", "preview", "--campaigns", "campaigns",
                                       "--events", str(_page_views(tmp_path, [0])), "--session-gap", "ten"])
    assert result.exit_code == 2
    assert "--session-gap" in result.output and "ms, s, m, h, d, w" in result.output


@pytest.mark.parametrize("options, named", [
    (["--allowed-lateness", "2h", "--dedup-horizon", "1h"], "lower --allowed-lateness or raise --dedup-horizon"),
    (["--idle-expiry", "10m", "--session-gap", "30m"], "--idle-expiry (600s) is below --session-gap (1800s)"),
    (["--out-of-orderness", "10m"], "--out-of-orderness (600s) is above --allowed-lateness (300s)"),
    (["--idle-timeout", "0s"], "--idle-timeout (0s) is not positive"),
    (["--max-future", "0s"], "--max-future (0s) is not positive"),
])
def test_rtm_run_refuses_settings_that_contradict_before_it_starts_anything(options, named):
    # No broker is given: the check comes first, so nothing starts.
    result = CliRunner().invoke(main, ["run", "--bootstrap", "127.0.0.1:1", *options])
    assert result.exit_code == 2, result.output
    assert "these settings do not fit together" in result.output and named in result.output


def test_every_contradiction_is_named_at_once(tmp_path):
    result = CliRunner().invoke(main, ["backtest", "--events", str(_page_views(tmp_path, [0])), "--out-dir",
                                       str(tmp_path / "out"), "--allowed-lateness", "2h", "--idle-expiry", "1h",
                                       "--max-future", "0s"])
    assert result.exit_code == 2, result.output
    assert "--dedup-horizon" in result.output and "--session-gap" not in result.output
    assert "--max-future (0s)" in result.output
    assert not (tmp_path / "out").exists()


def test_rtm_submit_refuses_contradicting_settings_before_it_looks_for_a_cluster():
    result = CliRunner().invoke(main, ["submit", "--jobmanager", "127.0.0.1:1", "--", "--allowed-lateness", "2h"])
    assert result.exit_code == 2, result.output
    assert "--allowed-lateness (7200s) is above --dedup-horizon (3600s)" in result.output
