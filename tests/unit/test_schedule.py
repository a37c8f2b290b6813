"""rtm.schedule: what falls due for one user, and in which order items due together settle."""

from rtm.schedule import Due, absence_deadlines, next_due
from rtm.sessions import Session
from rtm.state import Held, Progress, Run, UserState

GAP, IDLE = 30, 1000


def user(last_seen=100, session_last=None, deadlines=()):
    session = Session(1, 0, session_last) if session_last is not None else None
    progress = {cid: Progress(1, Run(1, 0, 1, deadline=at)) for cid, at in deadlines}
    progress["no_wait"] = Progress(1, Run(1, 0, 1))
    return UserState(last_seen, 0, "u1", None, 1, session, {}, progress)


def due(u):
    return next_due(u, absence_deadlines(u), GAP, IDLE)


def test_only_matches_waiting_on_an_absence_have_deadlines():
    assert absence_deadlines(user(deadlines=[("b", 50), ("a", 70)])) == {"b": 50, "a": 70}


def test_the_earliest_item_is_due_first():
    assert due(user(session_last=100, deadlines=[("a", 200)])) == (130, Due.SESSION_END, "")
    assert due(user(session_last=100, deadlines=[("a", 120)])) == (120, Due.ABSENCE, "a")
    assert due(user(last_seen=100)) == (1100, Due.EXPIRY, "")


def test_items_due_together_settle_deadlines_then_the_session_end_then_the_expiry():
    assert due(user(session_last=100, deadlines=[("b", 130), ("a", 130)])) == (130, Due.ABSENCE, "a")
    assert due(user(last_seen=100, session_last=1070)) == (1100, Due.SESSION_END, "")


def test_a_user_is_not_forgotten_while_a_deadline_is_pending():
    u = user(last_seen=100, deadlines=[("a", 5000)])
    assert due(u) == (5000, Due.ABSENCE, "a")
    del u.progress["a"]
    assert due(u) == (1100, Due.EXPIRY, "")


def test_a_held_trigger_is_released_at_its_window_before_a_later_deadline_and_keeps_the_user():
    u = user(last_seen=100, deadlines=[("a", 300)])
    u.held = [Held(200, "w", b""), Held(250, "w", b"")]
    assert due(u) == (200, Due.RELEASE, "w")
    u.held = [Held(5000, "w", b"")]
    assert due(u) == (300, Due.ABSENCE, "a")
    del u.progress["a"]
    assert due(u) == (5000, Due.RELEASE, "w")  # not forgotten at 1100 while a trigger is held
