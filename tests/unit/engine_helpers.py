"""The engine in unit tests: an event factory, campaigns from YAML, and a one-user driver."""

from typing import Any

import msgspec
import yaml

from rtm.campaigns import CampaignSet, load_definition
from rtm.engine import DEFAULT_CONFIG, EngineConfig, apply_event, decode_state, encode_state, settle
from rtm.events import Event, parse_event
from rtm.records import Conversion, SessionRecord, Suppressed, Trigger

T0 = 1_795_600_000_000  # 2026-11-25T09:46:40Z
SEC, MIN, HOUR = 1000, 60_000, 3_600_000


def event(event_id: str, type: str, at: int, user_id: str | None = "u1", anonymous_id: str | None = None,
          **fields: Any) -> Event:
    """An event `at` millis after T0, parsed through the real contract."""
    raw = {"event_id": event_id, "type": type, "ts": T0 + at, "user_id": user_id, "anonymous_id": anonymous_id,
           **fields}
    return parse_event(msgspec.json.encode(raw))


def campaign_set(*yaml_texts: str, policy: str | None = None) -> CampaignSet:
    """Campaigns from YAML texts, and the policy from its YAML (rtm.arbitration)."""
    campaigns = CampaignSet(load_definition(yaml.safe_load(text)) for text in yaml_texts)
    if policy is not None:
        campaigns.set_policy(yaml.safe_load(policy))
    return campaigns


class User:
    """Drives one user's state through apply_event/settle like the Flink job does: the state
    goes through its bytes (`state`) between calls."""

    def __init__(self, campaigns: CampaignSet, profile: dict | None = None,
                 config: EngineConfig = DEFAULT_CONFIG) -> None:
        self.campaigns, self.profile, self.config = campaigns, profile, config
        self.state: bytes | None = None
        self.triggers: list[Trigger] = []
        self.suppressed: list[Suppressed] = []
        self.sessions: list[SessionRecord] = []
        self.conversions: list[Conversion] = []
        self.duplicates = 0
        self.next_deadline: int | None = None

    def _take(self, result) -> list[Trigger]:
        self.state = None if result.user is None else encode_state(result.user)
        self.next_deadline = result.next_deadline
        self.triggers += result.triggers
        self.suppressed += result.suppressed
        self.sessions += result.sessions
        self.conversions += result.conversions
        self.duplicates += result.duplicate
        return result.triggers

    def send(self, *events: Event) -> list[Trigger]:
        """Apply events; return the triggers they caused."""
        fired = []
        for e in events:
            fired += self._take(apply_event(decode_state(self.state), e, self.campaigns, self.profile, self.config))
        return fired

    def settle(self, at: int) -> list[Trigger]:
        return self._take(settle(decode_state(self.state), T0 + at, self.campaigns, self.profile, self.config))

    def fired(self, campaign_id: str) -> list[Trigger]:
        return [t for t in self.triggers if t.campaign_id == campaign_id]
