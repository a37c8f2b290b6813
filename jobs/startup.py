"""What is in effect before the campaign job's first event: the campaign definitions and the policy.

The folder's campaigns and policy, updated by what the campaigns topic holds at start
(newer versions win; the topic's policy, if any, replaces the folder's, as it would in
the running job), so the start-up set never depends on which input Flink reads first.
Profiles need no such step: the job reads them through its own sources (jobs.campaign_job).
"""

import json
from pathlib import Path
from typing import Callable

from rtm import kafka_clients
from rtm.campaign_updates import apply_update
from rtm.arbitration import POLICY_KEY
from rtm.campaigns import CampaignSet, load_set
from rtm.errors import RtmError


def folder_campaigns(folder: Path) -> CampaignSet:
    """The campaigns and the policy of a folder; raises RtmError listing every problem."""
    campaigns, issues = load_set([folder])
    if issues:
        raise RtmError("fix the campaigns first (rtm campaigns validate):\n" + "\n".join(map(str, issues)))
    return campaigns


def with_topic(campaigns: CampaignSet, bootstrap: str, topic: str, warn: Callable[[str], None]) -> CampaignSet:
    """`campaigns` updated by the current contents of the compacted campaigns `topic`, as
    the running job applies them; a refused record is reported through `warn` and left
    out (the job's DLQ gets it with the reason too)."""
    for campaign_id, definition in kafka_clients.latest_by_key(bootstrap, topic).items():
        try:
            apply_update(campaigns, campaign_id, definition)
        except ValueError as err:
            warn(f"{topic} {campaign_id}: {err}")
    return campaigns


def definitions(campaigns: CampaignSet) -> dict[str, str]:
    """Campaign id -> definition JSON, and the policy's under its key: how the job receives
    its start-up set."""
    definitions = {campaign.id: json.dumps(campaign.definition) for campaign in campaigns}
    if campaigns.policy.definition is not None:
        definitions[POLICY_KEY] = json.dumps(campaigns.policy.definition)
    return definitions
