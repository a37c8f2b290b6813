"""One duration grammar (rtm.durations) for campaigns, options and SQL variables."""

import json

import pytest

from rtm import sql
from rtm.campaigns import SCHEMA_PATH, CampaignError, load_definition
from rtm.durations import PATTERN, InvalidDuration, parse_duration, sql_interval
from rtm.errors import RtmError


@pytest.mark.parametrize("text, ms", [("250ms", 250), ("90s", 90_000), ("30m", 1_800_000), ("4h", 14_400_000),
                                      ("7d", 604_800_000), ("2w", 1_209_600_000), ("0s", 0)])
def test_a_number_and_a_unit_give_milliseconds(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["4", "h", "4 h", "4H", "5 minutes", "1.5h", "-1s", "4h ", "4h\n", ""])
def test_anything_else_is_refused_saying_how_to_write_one(text):
    with pytest.raises(InvalidDuration, match=r"is not a duration; write a number and a unit: ms, s, m, h, d, w"):
        parse_duration(text)


@pytest.mark.parametrize("ms, literal", [(5_000, "INTERVAL '5' SECOND"), (90_000, "INTERVAL '90' SECOND"),
                                         (300_000, "INTERVAL '5' MINUTE"), (129_600_000, "INTERVAL '36' HOUR"),
                                         (1_209_600_000, "INTERVAL '14' DAY"), (1_250, "INTERVAL '1.250' SECOND")])
def test_sql_intervals_use_the_largest_unit_that_holds_the_duration_whole(ms, literal):
    assert sql_interval(ms) == literal


def test_campaigns_and_sql_variables_read_the_same_grammar():
    campaign = load_definition({"id": "c", "name": "c", "version": 1, "audience": {},
                                "pattern": {"steps": [{"event": "a"}], "within": "90s"},
                                "action": {"channel": "popup", "endpoint": "web"}, "limits": {"cooldown": "2w"}})
    assert (campaign.pattern.within, campaign.limits.cooldown) == (parse_duration("90s"), parse_duration("2w"))
    rendered = sql.variables("kafka:9092", overrides={"trigger_window": "90s", "conversion_window": "2w"})
    assert (rendered["trigger_window"], rendered["conversion_window"]) == ("90s", "2w")

    with pytest.raises(CampaignError, match=r"pattern.within: '5 minutes' is not valid: a number and a unit"):
        load_definition({"id": "c", "name": "c", "version": 1, "audience": {},
                         "pattern": {"steps": [{"event": "a"}], "within": "5 minutes"},
                         "action": {"channel": "popup", "endpoint": "web"}})
    with pytest.raises(RtmError, match=r"trigger_window='5 minutes' is not a duration"):
        sql.variables("kafka:9092", overrides={"trigger_window": "5 minutes"})


def test_the_campaign_schema_states_the_same_grammar_for_editors():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$defs"]["duration"]["pattern"] == PATTERN
