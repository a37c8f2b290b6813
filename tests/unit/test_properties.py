"""Properties over random event sequences (hypothesis), against the shipped campaigns plus caps, and a
policy of channel caps that bind often."""

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtm.campaigns import CampaignSet, load_definition, load_paths
from rtm.engine import EngineConfig, decode_state
from rtm.expressions import Scope
from rtm.preview import DECODED_USERS, run_preview
from rtm.events import event_dict
from rtm.send_windows import opens_at, zone
from rtm.settings import CAMPAIGNS_DIR
from rtm.triggers import in_holdout
from rtm.variants import assign

from engine_helpers import HOUR, MIN, SEC, T0, User, campaign_set, event

CONFIG = EngineConfig(dedup_max_ids=32)
TYPES = ["page_view", "add_to_cart", "purchase", "checkout", "login", "main_screen", "chat", "play", "level_up"]
GAPS = [0, SEC, MIN, 10 * MIN, 40 * MIN, 2 * HOUR, 5 * HOUR]
EXTRA = campaign_set("""
id: capped
version: 1
pattern: {steps: [{event: add_to_cart}, {event: checkout}], within: 1h, unless: [purchase]}
action: {channel: push, endpoint: p}
limits: {max: 2, per: 6h, cooldown: 30m}
""", """
id: twice_a_session
version: 1
pattern: {steps: [{event: [page_view, add_to_cart]}]}
action: {channel: popup, endpoint: p}
limits: {max: 2, per: session}
""", """
id: idle_once_a_session
version: 1
pattern: {steps: [{event: add_to_cart}], absence: {for: 10m, event: "*"}}
action: {channel: popup, endpoint: p}
limits: {max: 1, per: session}
""", """
id: office_hours_in_tokyo
version: 1
pattern: {steps: [{event: add_to_cart}]}
action: {channel: email, endpoint: e}
send_window: {from: "09:00", to: "18:00", timezone: Asia/Tokyo, within: 1d}
exit: [purchase]
""")
# Two caps on one channel, a period and a session: both must hold.
POLICY = {"caps": [{"channel": "popup", "max": 1, "per": "session"}, {"channel": "popup", "max": 2, "per": "2h"},
                   {"channel": "email", "max": 2, "per": "1d"}, {"channel": "push", "max": 1, "per": "6h"}]}
CAMPAIGNS = CampaignSet([*load_paths([CAMPAIGNS_DIR])[0], *EXTRA])
CAMPAIGNS.set_policy(POLICY)
PROFILES = st.sampled_from([None, {"user_id": "u1", "segments": ["vip"], "attributes": {"recommendations": ["r"]}},
                            {"user_id": "u1", "segments": [], "attributes": {}}])
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def histories(draw, max_size=40):
    """(events in arrival order, profile). Duplicates are exact resends within minutes."""
    known = draw(st.booleans())
    events, at = [], 0
    for i in range(draw(st.integers(0, max_size))):
        if events and draw(st.integers(0, 9)) == 0:
            events.append(events[draw(st.integers(max(0, len(events) - 3), len(events) - 1))])
            continue
        at += draw(st.sampled_from(GAPS))
        events.append(event(
            f"e{i}", draw(st.sampled_from(TYPES)), at, user_id="u1" if known else None,
            anonymous_id=None if known else "a1",
            params={"page": draw(st.sampled_from(["landing", "home"])),
                    "section": draw(st.sampled_from(["", "hats", "sale"])),
                    "cart_items": draw(st.integers(0, 6)), "sku": "s", "game": "chess"},
            context={"app": draw(st.sampled_from(["game", "web"]))}))
    return events, draw(PROFILES)


def run(events, profile, split_at=None, split_time=None, end=None):
    """One user through the events; optionally settle before event `split_at`, and at `end`."""
    user = User(CAMPAIGNS, profile, CONFIG)
    for i, e in enumerate(events):
        if i == split_at:
            user.settle(split_time)
        user.send(e)
    if end is not None:
        user.settle(end)
    return user


def applied(events):
    """The events the engine applies: first occurrence of each id (resends come within the horizon)."""
    seen, out = set(), []
    for e in events:
        if e.event_id not in seen:
            seen.add(e.event_id)
            out.append(e)
    return out


def _matches(filt, e) -> bool:
    return filt.matches(e.type, False, Scope({"event": event_dict(e)}), [], "")


def assert_pattern_completed(trigger, stream):
    """An independent check that the matched events really complete the campaign's pattern."""
    campaign = CAMPAIGNS.get(trigger.campaign_id)
    pattern = campaign.pattern
    at = {e.event_id: i for i, e in enumerate(stream)}
    real = [i for i in trigger.matched_event_ids if i in at]
    end = trigger.event_time
    if not real:  # completed by the synthetic user_left_game: an hour without game events
        game = [e for e in stream if e.context.get("app") == "game" and e.ts < end]
        assert game and game[-1].ts == end - HOUR, trigger
        return
    positions = [at[i] for i in real]
    assert positions == sorted(positions)
    # Replay the matched events through the transitions (types only; conditions may be data-dependent).
    states = set(range(len(pattern.transitions))) if len(real) == pattern.max_ids else {0}
    for i in real:
        e = stream[at[i]]
        states = {t.target for s in states for t in pattern.transitions[s] if t.filter.types.has(e.type, False)}
    assert states & pattern.final, trigger
    first, last = positions[0], positions[-1]
    assert not any(_matches(u, e) for e in stream[first + 1:last] for u in pattern.unless)
    if pattern.absence:
        later = [e for e in stream[last + 1:] if e.ts < end]
        # An absence event after the last step postpones the deadline unless it starts the pattern
        # anew (then it would be the match's own first event): the deadline is `for` after the last.
        postponers = [e for e in later if _matches(pattern.absence.filter, e)]
        assert not any(_matches(t.filter, e) for e in postponers for t in pattern.transitions[0])
        assert end == max([stream[last].ts, *(e.ts for e in postponers)]) + pattern.absence.for_ms
        assert not any(_matches(u, e) for e in later for u in pattern.unless)
    else:
        assert end == stream[last].ts
    if pattern.within is not None:
        assert end - stream[first].ts <= pattern.within
    if campaign.audience.visitor == "first_time":
        assert first == 0


@FAST
@given(histories())
def test_no_trigger_without_a_completed_pattern(history):
    events, profile = history
    user = run(events, profile, end=10 * 24 * HOUR)
    stream = applied(events)
    for trigger in user.triggers:
        assert_pattern_completed(trigger, stream)


@FAST
@given(histories())
def test_caps_are_never_exceeded(history):
    events, profile = history
    user = run(events, profile, end=10 * 24 * HOUR)
    for campaign in CAMPAIGNS:
        limits = campaign.limits
        times = sorted(t.event_time for t in user.fired(campaign.id))
        if limits.lifetime_cap is not None:
            assert len(times) <= limits.lifetime_cap
        if limits.cooldown is not None:
            assert all(b - a >= limits.cooldown for a, b in zip(times, times[1:]))
        if limits.per is not None:
            assert all(sum(t - limits.per < u <= t for u in times) <= limits.max for t in times)
        if limits.per_session:
            assert max(Counter(_session_at(user.sessions, t, campaign) for t in times).values(),
                       default=0) <= limits.max


def _session_at(records, t, campaign, settled=False) -> int:
    """The session index a trigger at `t` counts in: the latest session begun by then (a deadline
    or a release due at an event's time is settled before that event opens a session)."""
    settled = settled or campaign.pattern.absence is not None
    return max(r.index for r in records if r.kind == "session_start" and (r.start < t or
                                                                         (r.start == t and not settled)))


def _sends(user, channel):
    """(time it left, session index) of the user's triggers sent on `channel`: holdout ones are not sent."""
    return [(t.scheduled_for or t.event_time,
             _session_at(user.sessions, t.scheduled_for or t.event_time, CAMPAIGNS.get(t.campaign_id),
                         t.scheduled_for is not None))
            for t in user.triggers if t.channel == channel and not t.holdout]


@FAST
@given(histories())
def test_no_user_gets_more_triggers_on_a_channel_than_the_policy_allows_nor_is_suppressed_below_it(history):
    events, profile = history
    user = run(events, profile, end=10 * 24 * HOUR)
    for cap in CAMPAIGNS.policy.caps:
        sends = _sends(user, cap.channel)
        if cap.per is None:
            assert max(Counter(session for _, session in sends).values(), default=0) <= cap.max
        else:
            assert all(sum(t - cap.per < u <= t for u, _ in sends) <= cap.max for t, _ in sends)
    for held_back in user.suppressed:
        [cap] = [c for c in CAMPAIGNS.policy.caps if c.reason == held_back.suppressed_reason]
        at = held_back.scheduled_for or held_back.event_time
        before = [(t, s) for t, s in _sends(user, cap.channel) if t <= at]
        if cap.per is None:
            session = _session_at(user.sessions, at, CAMPAIGNS.get(held_back.campaign_id),
                                  held_back.scheduled_for is not None)
            assert sum(s == session for _, s in before) >= cap.max
        else:
            assert sum(t > at - cap.per for t, _ in before) >= cap.max


@FAST
@given(histories())
def test_a_conversion_follows_its_own_trigger_within_the_goal_once(history):
    events, profile = history
    user = run(events, profile, end=10 * 24 * HOUR)
    fired = {t.trigger_id: t for t in user.triggers}
    converted = [c.trigger_id for c in user.conversions]
    assert len(converted) == len(set(converted))
    for conversion in user.conversions:
        trigger = fired[conversion.trigger_id]
        goal = CAMPAIGNS.get(trigger.campaign_id).goal
        assert (conversion.campaign_id, conversion.variant, conversion.holdout) == (
            trigger.campaign_id, trigger.variant, trigger.holdout)
        assert conversion.trigger_time == trigger.event_time
        assert 0 < conversion.latency_ms <= goal.within and goal.filter.types.has(conversion.event_type, False)


@FAST
@given(histories())
def test_held_triggers_leave_only_inside_their_send_window_and_within_its_wait(history):
    events, profile = history
    user = run(events, profile, end=10 * 24 * HOUR)
    for trigger in user.triggers:
        window = CAMPAIGNS.get(trigger.campaign_id).send_window
        scheduled = trigger.scheduled_for
        if window is None:
            assert scheduled is None
            continue
        tz = zone(str(window.timezone.render(Scope({"profile": profile or {}}))))
        assert opens_at(window, scheduled or trigger.event_time, tz) is None
        if scheduled is not None:
            assert trigger.event_time < scheduled <= trigger.event_time + window.within


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_size=150))
def test_state_size_is_bounded_by_the_definitions_not_the_events(history):
    events, profile = history
    user = User(CAMPAIGNS, profile, CONFIG)
    bound = 100 + 20 * CONFIG.dedup_max_ids + 300 * len(CAMPAIGNS)
    for e in events:
        user.send(e)
        state = decode_state(user.state)
        assert len(user.state) <= bound
        assert len(state.seen) <= CONFIG.dedup_max_ids
        for cid, progress in state.progress.items():
            campaign = CAMPAIGNS.get(cid)
            assert len(progress.recent) <= (campaign.limits.max or 1)
            if progress.run is not None:
                assert len(progress.run.ids) <= campaign.pattern.max_ids
                assert set(progress.run.binds) <= set(campaign.pattern.bindings)
        for channel, sends in state.sent.items():
            assert len(sends.recent) <= max(c.max for c in CAMPAIGNS.policy.by_channel[channel])


@FAST
@given(histories(), st.data())
def test_splitting_the_input_and_settling_in_between_gives_the_same_triggers(history, data):
    events, profile = history
    split_at = data.draw(st.integers(0, len(events)))
    before = max((e.ts for e in events[:split_at]), default=T0) - T0
    after = events[split_at].ts - T0 if split_at < len(events) else before + 6 * HOUR
    split_time = data.draw(st.integers(before, max(before, after)))
    end = max([after, *(e.ts - T0 for e in events)]) + 10 * HOUR
    whole = run(events, profile, end=end)
    split = run(events, profile, split_at, split_time, end=end)
    assert split.triggers == whole.triggers
    assert split.suppressed == whole.suppressed
    assert split.sessions == whole.sessions


# Derandomized: a share of 10k hashes is itself a sample (a 2% miss is a ~4 sigma event), so
# the same examples run every time rather than hunting for the rare unlucky draw.
@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.lists(st.integers(1, 10), min_size=2, max_size=4), st.integers(1, 1000), st.sampled_from([0.0, 0.1]))
def test_variant_assignment_is_stable_and_within_2_percent_of_the_weights_outside_the_holdout(weights, version,
                                                                                              holdout):
    campaign = load_definition({
        "id": "ab", "version": version, "pattern": {"steps": [{"event": "a"}]}, "limits": {"holdout": holdout},
        "action": {"channel": "push", "endpoint": "p",
                   "variants": [{"name": f"v{i}", "weight": w} for i, w in enumerate(weights)]}})
    users = [f"user-{i}" for i in range(10_000)]
    treated = [u for u in users if not in_holdout(u, campaign.id, holdout)]
    names = [assign(campaign.action.variants, u, campaign.id, version).name for u in treated]
    assert names == [assign(campaign.action.variants, u, campaign.id, version).name for u in treated]
    counts = Counter(names)
    for i, weight in enumerate(weights):
        assert abs(counts[f"v{i}"] / len(treated) - weight / sum(weights)) < 0.02


@FAST
@given(histories(), st.sampled_from([0, 1, DECODED_USERS]))
def test_preview_with_states_kept_decoded_or_encoded_gives_what_the_job_does(history, decoded_users):
    # The User driver encodes the state after every call and decodes it for the next, as
    # the job does between batches; preview keeps up to `decoded_users` users decoded.
    events, profile = history
    end = max((e.ts for e in events), default=T0) - T0 + 10 * HOUR
    job = run(events, profile, end=end)
    profiles = {events[0].key: profile} if events and profile else {}
    preview = run_preview(CAMPAIGNS, events, profiles, until=T0 + end, config=CONFIG, decoded_users=decoded_users)
    assert preview.triggers == job.triggers
    assert preview.suppressed == job.suppressed
    assert preview.sessions == job.sessions
    assert preview.conversions == job.conversions
