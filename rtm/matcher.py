"""One campaign's partial match for one user, one event at a time: the matcher step.

Like a Flink CEP NFA with one computation state: the step looks at the match in
progress (Progress.run, a state of rtm.patterns' machine) and the event, moves the
match, and says what happened as an Outcome. It never fires: a COMPLETED match is left
in `progress.run` for the engine, which applies the caps at completion time and
renders the trigger (rtm.engine). A user has at most one partial match per campaign;
while it lasts, new starts of that campaign are not tracked.
"""

from enum import Enum

from rtm import caps
from rtm.campaigns import Campaign
from rtm.expressions import prune
from rtm.patterns import INITIAL, Pattern, Transition
from rtm.state import Progress, Run
from rtm.views import EventScope


class Outcome(Enum):
    IGNORED = "ignored"  # nothing changed
    MUTED = "muted"  # audience.exclude matched: no match for the rest of the session
    DROPPED = "dropped"  # the partial match ended (window, session, unless, absence broken...) and none started
    ADVANCED = "advanced"  # a partial match started or moved on
    AWAITING = "awaiting"  # the last step matched, or an absence event postponed: the match completes at run.deadline
    COMPLETED = "completed"  # the pattern completed: progress.run holds the match, for the engine to fire


# The members as module names: an Enum attribute lookup costs ~0.1 us in Python 3.11.
IGNORED, MUTED, DROPPED, ADVANCED, AWAITING, COMPLETED = Outcome


def step(campaign: Campaign, progress: Progress | None, scope: EventScope, synthetic: bool,
         errors: list[str]) -> Outcome:
    """Offer the scope's event to the campaign's partial match: `progress`, the user's standing
    with the campaign (None for none yet: then it goes into user.progress if the event counts)."""
    pattern = campaign.pattern
    user, etype = scope.user, scope.type
    run = progress.run if progress is not None else None
    if not synthetic:
        for exclusion in campaign.audience.exclude:
            if exclusion.matches(etype, False, scope, errors, "audience.exclude"):
                if progress is None:
                    progress = user.progress[campaign.id] = Progress(campaign.fingerprint)
                progress.muted, progress.run = user.sessions, None
                return MUTED
    ended = False
    waiting = None  # a match waiting on its absence that this event broke: kept unless the event starts anew
    if run is not None:
        if ((pattern.within is not None and scope.ts - run.start > pattern.within)
                or (pattern.same_session and not synthetic and run.session != user.sessions)):
            run = progress.run = None
            ended = True
        else:
            bound = scope.with_binds(run.binds)
            if pattern.cancels(etype, synthetic, bound, errors):
                run = progress.run = None
                ended = True
            elif run.deadline is not None:
                if not pattern.absence.filter.matches(etype, synthetic, bound, errors, "pattern.absence"):
                    return IGNORED
                waiting, run = run, None  # the absence is broken: the event may start a new match
                progress.run = None
                ended = True
            else:
                transition = pattern.next_transition(run.state, etype, synthetic, bound, errors)
                if transition is None:
                    return IGNORED
                return _take(campaign, progress, run, transition, scope)
    not_started = DROPPED if ended else IGNORED
    starts = campaign.wakes[INITIAL]  # Types.has, inlined
    if not (etype in starts.names or (starts.any and not synthetic)) \
            or (progress is not None and not caps.may_start(campaign.limits, progress, user.sessions)):
        return not_started if waiting is None else _postpone(pattern, progress, waiting, scope.ts)
    transition = pattern.next_transition(INITIAL, etype, synthetic, scope, errors)
    audience = campaign.audience
    if transition is None or (audience.checks and not audience.admits(scope, errors)):
        return not_started if waiting is None else _postpone(pattern, progress, waiting, scope.ts)
    if progress is None:
        progress = user.progress[campaign.id] = Progress(campaign.fingerprint)
    run = progress.run = Run(INITIAL, scope.ts, user.sessions)
    return _take(campaign, progress, run, transition, scope)


def _take(campaign: Campaign, progress: Progress, run: Run, transition: Transition, scope: EventScope) -> Outcome:
    """Follow a transition that matched the event."""
    if transition.target == INITIAL:  # a state machine back in its initial state
        progress.run = None
        return DROPPED
    pattern = campaign.pattern
    run.state = transition.target
    run.ids.append(scope.event_id)
    del run.ids[:-pattern.max_ids]
    paths = campaign.bind_paths.get(transition.bind)
    if paths is not None:
        run.binds[transition.bind] = prune(scope.event, paths)
    if run.state not in pattern.final:
        return ADVANCED
    if pattern.absence is None:
        return COMPLETED
    run.deadline = scope.ts + pattern.absence.for_ms
    if pattern.within is not None and run.deadline - run.start > pattern.within:
        progress.run = None  # the absence would end outside the window
        return DROPPED
    return AWAITING


def _postpone(pattern: Pattern, progress: Progress, waiting: Run, ts: int) -> Outcome:
    """An absence event that does not start the pattern anew: the match stays, bound fields and
    all, and its deadline moves to `for` after this event (the activity postpones it)."""
    deadline = ts + pattern.absence.for_ms
    if pattern.within is not None and deadline - waiting.start > pattern.within:
        return DROPPED  # the absence would now end outside the window
    waiting.deadline = deadline
    progress.run = waiting
    return AWAITING
