"""One record of the campaigns topic applied to a CampaignSet (docs/CONTRACTS.md, "Campaign").

The running job and its start-up both apply the topic's records, so both check them here
and agree on what is refused.
"""

import msgspec

from rtm.arbitration import POLICY_KEY
from rtm.campaigns import CampaignSet


def apply_update(campaigns: CampaignSet, campaign_id: str, definition: str | bytes | None) -> None:
    """Apply the record with message key `campaign_id` and value `definition` (JSON; None,
    a tombstone, retires the campaign). The key POLICY_KEY carries the job's policy
    instead: its record replaces the policy, its tombstone removes it.

    Raises ValueError (CampaignError among them) saying why it is refused; the running
    version then stays.
    """
    if campaign_id == POLICY_KEY:
        campaigns.set_policy(definition)
        return
    if definition is None:
        campaigns.retire(campaign_id)
        return
    try:
        parsed = msgspec.json.decode(definition)
    except msgspec.DecodeError as err:
        raise ValueError(f"the definition of {campaign_id!r} is not JSON: {err}") from None
    if not isinstance(parsed, dict) or parsed.get("id") != campaign_id:
        found = parsed.get("id") if isinstance(parsed, dict) else None
        raise ValueError(f"the message key {campaign_id!r} must equal the campaign id (found {found!r})")
    campaigns.upsert(parsed)
