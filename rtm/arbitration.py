"""Cross-campaign arbitration (campaigns/README.md, "Policy"): caps per user and channel over all campaigns.

The job's policy (campaigns/policy.yaml, key `_policy` on rtm.campaigns) caps how many
triggers a user gets on a channel per period (sliding) or per session, whatever
campaign sends them. A trigger is checked when it leaves (at completion, or when its
send window opens); one over a cap goes to rtm.suppressed with the cap as its reason
instead of rtm.triggers. Holdout triggers are checked (the control group meets the
same caps as everyone) but take no slot: nothing is sent to them. Which of several
triggers leaving at once takes the last slot is the campaigns' `priority` (the engine
offers them in that order: rtm.campaigns.visit_order).

Per user and capped channel the state keeps the recent send times (pruned to the
channel's longest period) and the count in the latest session, as rtm.caps does per
campaign.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from rtm.caps import count_since, remember
from rtm.records import Suppressed, Trigger
from rtm.state import Sends, UserState

POLICY_KEY = "_policy"  # its message key on rtm.campaigns: no campaign id starts with "_"


@dataclass(frozen=True, slots=True)
class ChannelCap:
    channel: str
    max: int
    per: int | None  # a period (ms), or None: per session
    reason: str  # as written, e.g. "cap email 3 per 1d": what a suppressed trigger says


@dataclass(frozen=True)
class Policy:
    caps: tuple[ChannelCap, ...] = ()
    definition: Mapping[str, Any] | None = None  # as written (JSON on rtm.campaigns); None: no policy
    by_channel: dict[str, tuple[ChannelCap, ...]] = field(init=False)
    memory_ms: dict[str, int] = field(init=False)  # per channel: how long a send time counts
    per_session: frozenset[str] = field(init=False)  # the channels with a cap per session

    def __post_init__(self) -> None:
        by_channel: dict[str, tuple[ChannelCap, ...]] = {}
        for cap in self.caps:
            by_channel[cap.channel] = (*by_channel.get(cap.channel, ()), cap)
        object.__setattr__(self, "by_channel", by_channel)
        object.__setattr__(self, "memory_ms", {ch: max(c.per or 0 for c in caps) for ch, caps in by_channel.items()})
        object.__setattr__(self, "per_session", frozenset(c.channel for c in self.caps if c.per is None))


NO_POLICY = Policy()


def admit(policy: Policy, user: UserState, trigger: Trigger, ts: int) -> str | None:
    """Whether `trigger`, leaving at `ts`, stays within the caps of its channel: None, and
    its send is counted (unless a holdout trigger); else the reason of the cap it would break."""
    caps = policy.by_channel.get(trigger.channel)
    if caps is None:
        return None
    session = user.sessions
    sends = user.sent.get(trigger.channel)
    if sends is not None:
        for cap in caps:
            if cap.per is None:
                used = sends.in_session if sends.session == session else 0
            else:
                used = count_since(sends.recent, ts - cap.per)
            if used >= cap.max:
                return cap.reason
    if not trigger.holdout:
        if sends is None:
            sends = user.sent[trigger.channel] = Sends()
        if sends.session == session:
            sends.in_session += 1
        else:
            sends.session, sends.in_session = session, 1
        keep = policy.memory_ms[trigger.channel]
        if keep:
            sends.recent = remember(sends.recent, ts, keep)
    return None


def suppressed(trigger: Trigger, reason: str) -> Suppressed:
    """The record of rtm.suppressed: the trigger as it would have left, and why it did not."""
    return Suppressed(**msgspec.structs.asdict(trigger), suppressed_reason=reason)


def forget_spent(policy: Policy, user: UserState, oldest_next: int) -> None:
    """Drop the send counts that can no longer break a cap: channels the policy no longer
    caps, and those whose sends are all older than the channel's longest period and, if it
    has a cap per session, not in the latest session (open, or closed: a deadline after it
    still counts in it)."""
    spent = None
    for channel, sends in user.sent.items():
        keep = policy.memory_ms.get(channel)
        if keep is None or not (
                any(t > oldest_next - keep for t in sends.recent)
                or (sends.session == user.sessions and channel in policy.per_session)):
            spent = [channel] if spent is None else [*spent, channel]
    for channel in spent or ():
        del user.sent[channel]
