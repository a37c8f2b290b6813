"""The job's policy (rtm.arbitration): channel caps over all campaigns, priority, suppressed triggers."""

import json

import pytest
import yaml
from click.testing import CliRunner

from rtm.arbitration import POLICY_KEY
from rtm.campaign_updates import apply_update
from rtm.campaigns import CampaignError, CampaignSet, load_policy_file, load_set
from rtm.cli.campaigns import campaigns as cli
from rtm.engine import decode_state
from rtm.settings import CAMPAIGNS_DIR

from engine_helpers import HOUR, MIN, SEC, T0, User, campaign_set, event


def popup(cid, event_type="view", priority=0, limits="{}", holdout=""):
    return f"""
id: {cid}
version: 1
priority: {priority}
pattern: {{steps: [{{event: {event_type}}}]}}
action: {{channel: popup, endpoint: web, message: {cid}}}
limits: {limits if not holdout else "{holdout: " + holdout + "}"}
"""


ONE_POPUP_A_SESSION = "caps: [{channel: popup, max: 1, per: session}]"
TWO_EMAILS_A_DAY = "caps: [{channel: email, max: 2, per: 1d}]"


def email(cid, event_type):
    return f"""
id: {cid}
version: 1
pattern: {{steps: [{{event: {event_type}}}]}}
action: {{channel: email, endpoint: mail, message: {cid}}}
"""


# -- the policy file --------------------------------------------------------------------


def test_the_shipped_policy_caps_popups_per_session_and_emails_per_day():
    policy = load_policy_file(CAMPAIGNS_DIR / "policy.yaml")
    assert [(c.channel, c.max, c.per, c.reason) for c in policy.caps] == [
        ("popup", 1, None, "cap popup 1 per session"), ("email", 3, 24 * HOUR, "cap email 3 per 1d")]
    campaigns, issues = load_set([CAMPAIGNS_DIR])
    assert issues == [] and campaigns.policy == policy and "policy" not in campaigns


@pytest.mark.parametrize("text, line, field, problem", [
    ("caps:\n  - {channel: sms, max: 1, per: 1d}\n", 2, "caps[0].channel", "'sms' is not one of"),
    ("caps:\n  - channel: email\n    max: 0\n    per: 1d\n", 3, "caps[0].max", "0 is less than the minimum of 1"),
    ("caps:\n  - {channel: email, max: 1, per: daily}\n", 2, "caps[0].per", "'daily' is not valid: a period"),
    ("caps:\n  - {channel: email, max: 1, per: 1d}\n  - {channel: email, max: 3, per: 1d}\n", 3, "caps[1]",
     "email per 1d is capped by caps[0] too; keep one"),
    ("caps: []\nlimits: {}\n", 1, "", "'limits' was unexpected); allowed: caps, description"),
])
def test_a_bad_policy_is_refused_with_file_line_and_field(tmp_path, text, line, field, problem):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(CampaignError) as err:
        load_policy_file(path)
    [issue] = err.value.issues
    assert (issue.source, issue.line, issue.field) == (str(path), line, field) and problem in issue.message


def test_validate_checks_the_policy_beside_the_campaigns(tmp_path):
    (tmp_path / "a.yaml").write_text(f"# a\n{email('a', 'x')}")
    (tmp_path / "policy.yaml").write_text("caps:\n  - {channel: email, max: 1, per: sometimes}\n")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path}/policy.yaml:2: caps[0].per: 'sometimes' is not valid" in result.output
    assert "1 problem(s) in 1 of 2 file(s)" in result.output
    (tmp_path / "policy.yaml").write_text(TWO_EMAILS_A_DAY)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 0 and "ok: 1 campaign(s) and a policy of 1 cap(s) in 2 file(s)" in result.output


def test_the_policy_record_on_the_campaigns_topic_replaces_the_policy_and_its_tombstone_removes_it():
    campaigns = CampaignSet()
    apply_update(campaigns, POLICY_KEY, json.dumps(yaml.safe_load(ONE_POPUP_A_SESSION)).encode())
    assert [c.reason for c in campaigns.policy.caps] == ["cap popup 1 per session"]
    with pytest.raises(CampaignError, match="caps"):
        apply_update(campaigns, POLICY_KEY, b'{"caps": [{"channel": "popup"}]}')
    assert [c.reason for c in campaigns.policy.caps] == ["cap popup 1 per session"]  # the running one stays
    apply_update(campaigns, POLICY_KEY, None)
    assert campaigns.policy.caps == () and campaigns.policy.definition is None


def test_the_start_up_set_carries_the_policy_under_its_key():
    from jobs import startup

    shipped = startup.folder_campaigns(CAMPAIGNS_DIR)
    again = CampaignSet.from_definitions(startup.definitions(shipped))
    assert again.policy == shipped.policy and [c.id for c in again] == [c.id for c in shipped]


# -- arbitration --------------------------------------------------------------------------


def test_of_two_triggers_on_one_event_the_higher_priority_takes_the_last_slot():
    campaigns = campaign_set(popup("a_low"), popup("z_high", priority=5), policy=ONE_POPUP_A_SESSION)
    user = User(campaigns)
    user.send(event("e1", "view", 0))
    assert [t.campaign_id for t in user.triggers] == ["z_high"]
    [held_back] = user.suppressed
    assert (held_back.campaign_id, held_back.suppressed_reason) == ("a_low", "cap popup 1 per session")
    assert held_back.matched_event_ids == ["e1"] and held_back.channel == "popup"  # the trigger, as it would have left


def test_equal_priorities_go_by_campaign_id():
    user = User(campaign_set(popup("b"), popup("a"), policy=ONE_POPUP_A_SESSION))
    user.send(event("e1", "view", 0))
    assert [t.campaign_id for t in user.triggers] == ["a"] and [t.campaign_id for t in user.suppressed] == ["b"]


def test_a_session_cap_opens_again_in_the_next_session():
    user = User(campaign_set(popup("a", "view"), popup("b", "scroll"), policy=ONE_POPUP_A_SESSION))
    user.send(event("e1", "view", 0), event("e2", "scroll", MIN), event("e3", "scroll", MIN + 31 * MIN))
    assert [(t.campaign_id, t.matched_event_ids) for t in user.triggers] == [("a", ["e1"]), ("b", ["e3"])]
    assert [(t.campaign_id, t.matched_event_ids) for t in user.suppressed] == [("b", ["e2"])]


def test_a_cap_per_day_is_sliding_and_counts_every_campaign_of_the_channel():
    user = User(campaign_set(email("a", "x"), email("b", "y"), email("c", "z"), policy=TWO_EMAILS_A_DAY))
    user.send(event("e1", "x", 0), event("e2", "y", HOUR), event("e3", "z", 2 * HOUR),  # the third: over
              event("e4", "z", 24 * HOUR), event("e5", "z", 24 * HOUR + SEC))  # e1 left the day; e2 not yet
    assert [t.matched_event_ids for t in user.triggers] == [["e1"], ["e2"], ["e4"]]
    assert [(t.matched_event_ids, t.suppressed_reason) for t in user.suppressed] == [
        (["e3"], "cap email 2 per 1d"), (["e5"], "cap email 2 per 1d")]


def test_a_suppressed_trigger_is_not_counted_by_its_campaigns_own_caps():
    once = popup("once", "scroll", limits="{reenter: false}")
    user = User(campaign_set(popup("first", "view", priority=1), once, policy=ONE_POPUP_A_SESSION))
    user.send(event("e1", "view", 0), event("e2", "scroll", SEC), event("e3", "scroll", HOUR))
    assert [t.campaign_id for t in user.suppressed] == ["once"]
    assert [(t.campaign_id, t.matched_event_ids) for t in user.triggers] == [("first", ["e1"]), ("once", ["e3"])]


def test_holdout_triggers_meet_the_caps_but_take_no_slot():
    control = popup("control", "view", priority=1, holdout="1.0")  # everyone in the holdout
    user = User(campaign_set(control, popup("shown", "view"), policy=ONE_POPUP_A_SESSION))
    user.send(event("e1", "view", 0))
    assert [(t.campaign_id, t.holdout) for t in user.triggers] == [("control", True), ("shown", False)]
    user.send(event("e2", "view", SEC))
    assert [(t.campaign_id, t.holdout) for t in user.suppressed] == [("control", True), ("shown", False)]


def test_a_held_trigger_meets_the_caps_when_its_window_opens_not_when_it_completed():
    night = """
id: night_mail
version: 1
pattern: {steps: [{event: x}]}
action: {channel: email, endpoint: mail}
send_window: {from: "08:00", to: "21:00", within: 1d}
"""
    user = User(campaign_set(night, email("now", "y"),
                             policy="caps: [{channel: email, max: 1, per: 1d}]"))
    midnight = 14 * HOUR + 13 * MIN + 20 * SEC  # T0 is 09:46:40 UTC
    user.send(event("e1", "x", midnight))  # held until 08:00
    user.send(event("e2", "y", midnight + HOUR))  # 01:00: leaves at once, takes the day's email
    user.settle(midnight + 9 * HOUR)
    assert [t.campaign_id for t in user.triggers] == ["now"]
    [held] = user.suppressed
    assert held.campaign_id == "night_mail" and held.scheduled_for == T0 + midnight + 8 * HOUR


def test_deadlines_due_at_the_same_time_leave_in_priority_order():
    def idle(cid, priority):
        return f"""
id: {cid}
version: 1
priority: {priority}
pattern: {{steps: [{{event: open}}], absence: {{for: 10m, event: "*"}}}}
action: {{channel: popup, endpoint: web}}
"""
    user = User(campaign_set(idle("a_idle", 0), idle("b_idle", 1), policy=ONE_POPUP_A_SESSION))
    user.send(event("e1", "open", 0))
    user.settle(10 * MIN)
    assert [t.campaign_id for t in user.triggers] == ["b_idle"] and [t.campaign_id for t in user.suppressed] == [
        "a_idle"]


def test_a_changed_policy_applies_to_the_next_trigger_and_without_one_nothing_is_kept():
    campaigns = campaign_set(popup("a"), policy=ONE_POPUP_A_SESSION)
    user = User(campaigns)
    user.send(event("e1", "view", 0), event("e2", "view", SEC))
    assert len(user.triggers) == len(user.suppressed) == 1 and set(decode_state(user.state).sent) == {"popup"}
    campaigns.set_policy(None)
    user.send(event("e3", "view", 2 * SEC))
    assert len(user.triggers) == 2 and decode_state(user.state).sent == {}  # forgotten once uncapped


def test_a_deadline_after_the_session_closed_counts_in_that_session_even_after_a_settle_in_between():
    waits = """
id: waits
version: 1
pattern: {steps: [{event: open}], absence: {for: 40m, event: purchase}}
action: {channel: popup, endpoint: web}
"""
    user = User(campaign_set(popup("shown"), waits, policy=ONE_POPUP_A_SESSION))
    user.send(event("e1", "view", 0), event("e2", "open", SEC))
    user.settle(35 * MIN)  # the session closed at 30 min 1 s; nothing opened since
    user.settle(41 * MIN)
    assert [t.campaign_id for t in user.triggers] == ["shown"] and [t.campaign_id for t in user.suppressed] == [
        "waits"]
