"""What is in effect before the campaign job's first event: the campaign definitions.

The folder's campaigns, updated by what the campaigns topic holds at start (newer
versions win), so the start-up set never depends on which input Flink reads first.
Profiles need no such step: the job reads them through its own sources (jobs.campaign_job).
"""

import json
from pathlib import Path
from typing import Callable

from rtm import kafka_clients
from rtm.campaign_updates import apply_update
from rtm.campaigns import CampaignSet, load_paths
from rtm.errors import RtmError


def folder_campaigns(folder: Path) -> CampaignSet:
    """The campaigns of a folder; raises RtmError listing every problem."""
    loaded, issues = load_paths([folder])
    if issues:
        raise RtmError("fix the campaigns first (rtm campaigns validate):\n" + "\n".join(map(str, issues)))
    return CampaignSet(loaded)


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
    """Campaign id -> definition JSON: how the job receives its start-up set."""
    return {campaign.id: json.dumps(campaign.definition) for campaign in campaigns}
