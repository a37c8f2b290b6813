"""Fixtures of the unit tests (their helpers are in engine_helpers)."""

import pytest

from rtm import settings
from rtm.campaigns import CampaignSet, load_set


@pytest.fixture(scope="session")
def shipped() -> CampaignSet:
    """The campaigns and the policy of campaigns/."""
    campaigns, issues = load_set([settings.CAMPAIGNS_DIR])
    assert not issues, issues
    return campaigns
