"""A/B variants of a campaign's action (campaigns/README.md, "Variants"): who gets which.

Each user gets one variant per campaign version, chosen by a hash of the user key, the
campaign id and the version, in proportion to the weights: stable across replays,
restarts and parallelism, with no state kept. The holdout is decided first (its users
get no variant: they are the control group every variant is measured against).
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from rtm.expressions import Payload, Template


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    weight: float
    message: Template  # the action's own when the variant gives none
    data: Payload


def assign(variants: Sequence[Variant], user_key: str, campaign_id: str, version: int) -> Variant:
    """The user's variant: a point in [0, total weight) falls in one variant's share."""
    digest = hashlib.blake2b(f"{campaign_id}\x1f{version}\x1f{user_key}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64 * sum(v.weight for v in variants)
    for variant in variants:
        point -= variant.weight
        if point < 0:
            return variant
    return variants[-1]  # rounding at the very top
