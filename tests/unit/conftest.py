"""Fixtures of the unit tests (their helpers are in engine_helpers)."""

import pytest

from rtm import settings
from rtm.campaigns import CampaignSet, load_paths


@pytest.fixture(scope="session")
def shipped() -> CampaignSet:
    """The campaigns of campaigns/."""
    campaigns, issues = load_paths([settings.CAMPAIGNS_DIR])
    assert not issues, issues
    return CampaignSet(campaigns)
