"""The wall-clock arithmetic of the job's timers (rtm.time_rules), without Flink."""

from rtm.time_rules import TimeRules, event_timer_to_arm, wall_timer_to_arm

RULES = TimeRules(out_of_orderness_ms=5_000)
ANCHOR = (1_000_000, 50_000)  # the user's last event: wall clock 1,000,000 ms, event time 50,000 ms


def test_in_a_quiet_live_run_event_time_advances_with_the_wall_clock_less_the_bound():
    assert RULES.event_time_at(ANCHOR, 1_000_000) == 45_000
    assert RULES.event_time_at(ANCHOR, 1_060_000) == 105_000


def test_a_deadline_is_due_on_the_wall_clock_when_event_time_reaches_it():
    for deadline in (50_000, 110_000, 50_000 + 4 * 3_600_000):
        wall = RULES.wall_time_of(ANCHOR, deadline)
        assert RULES.event_time_at(ANCHOR, wall) == deadline
        assert RULES.event_time_at(ANCHOR, wall - 1) < deadline
    assert RULES.wall_time_of(ANCHOR, 50_000 + 3_600_000) == 1_000_000 + 3_600_000 + 5_000


def test_the_wall_timer_only_moves_earlier():
    assert wall_timer_to_arm(None, 2_000) == 2_000
    assert wall_timer_to_arm(3_000, 2_000) == 2_000  # earlier: armed as well, the later one re-arms on firing
    assert wall_timer_to_arm(2_000, 2_000) is None
    assert wall_timer_to_arm(2_000, 3_000) is None  # the armed one fires first and re-arms


def test_the_event_time_timer_only_moves_earlier():
    assert event_timer_to_arm(None, 2_000) == 2_000
    assert event_timer_to_arm(1_000, 2_000) == 1_000  # a later deadline: the armed one fires early, re-arms
    assert event_timer_to_arm(3_000, 2_000) == 2_000  # an earlier deadline: moved
    assert event_timer_to_arm(2_000, None) is None  # nothing due any more: deleted
