"""Records of the campaigns topic: what the job and its start-up apply, and what they refuse."""

import json
import re

import pytest

from rtm.campaign_updates import apply_update
from rtm.campaigns import CampaignError

from engine_helpers import campaign_set

QUICK = {"id": "quick", "version": 1, "pattern": {"steps": [{"event": "add_to_cart"}]},
         "action": {"channel": "push", "endpoint": "p"}}


def _running():
    return campaign_set(json.dumps(QUICK))  # JSON is YAML


def test_a_new_version_replaces_the_running_one_and_a_tombstone_retires_it():
    campaigns = _running()
    apply_update(campaigns, "quick", json.dumps({**QUICK, "version": 2}).encode())
    assert campaigns.get("quick").version == 2
    apply_update(campaigns, "quick", None)
    assert "quick" not in campaigns


@pytest.mark.parametrize("key, definition, reason", [
    ("quick", b"{not json", "the definition of 'quick' is not JSON"),
    ("other", json.dumps({**QUICK, "version": 2}), "the message key 'other' must equal the campaign id (found 'quick')"),
    ("quick", b"[1]", "the message key 'quick' must equal the campaign id (found None)"),
])
def test_a_record_that_is_not_the_campaign_of_its_key_is_refused_and_the_running_version_stays(key, definition,
                                                                                               reason):
    campaigns = _running()
    with pytest.raises(ValueError, match=re.escape(reason)):
        apply_update(campaigns, key, definition)
    assert campaigns.get("quick").version == 1 and len(campaigns) == 1


def test_an_older_version_is_refused_as_a_campaign_error():
    campaigns = _running()
    apply_update(campaigns, "quick", json.dumps({**QUICK, "version": 3}))
    with pytest.raises(CampaignError, match="older than the running version 3"):
        apply_update(campaigns, "quick", json.dumps(QUICK))
