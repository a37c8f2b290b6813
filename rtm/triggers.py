"""Triggers (docs/CONTRACTS.md, "Trigger"): deterministic ids, the holdout split, the record."""

import hashlib
from collections.abc import Sequence
from typing import Any

from rtm.records import Trigger


def _digest(*parts: str, size: int) -> bytes:
    # \x1f (unit separator) cannot occur in ids typed by people, so parts cannot run together.
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=size).digest()


def trigger_id(campaign_id: str, version: int, user_key: str, matched_event_ids: Sequence[str]) -> str:
    """The same events and campaign version give the same id: delivery can be idempotent."""
    return _digest(campaign_id, str(version), user_key, *matched_event_ids, size=16).hex()


def in_holdout(user_key: str, campaign_id: str, share: float) -> bool:
    """A stable `share` of users per campaign forms the control group."""
    if share <= 0:
        return False
    bucket = int.from_bytes(_digest(campaign_id, user_key, size=8), "big") / 2**64
    return bucket < share


def make_trigger(*, campaign_id: str, version: int, user_key: str, user_id: str | None,
                 anonymous_id: str | None, channel: str, endpoint: str, message: str,
                 data: Any, matched_event_ids: list[str], event_time: int, holdout: bool,
                 variant: str | None = None) -> Trigger:
    """A trigger; `emitted_at` is left for the caller to set at emission (wall time)."""
    return Trigger(trigger_id=trigger_id(campaign_id, version, user_key, matched_event_ids), campaign_id=campaign_id,
                   campaign_version=version, user_key=user_key, user_id=user_id, anonymous_id=anonymous_id,
                   channel=channel, endpoint=endpoint, message=message, data=data,
                   matched_event_ids=matched_event_ids, event_time=event_time, holdout=holdout, variant=variant)
