"""Trigger patterns: step sequences and state machines, compiled to one representation.

The representation is a machine of numbered states; INITIAL means "no partial match".
A step sequence becomes a chain (a step repeated `times: 3` becomes three states), a
state machine keeps its own states. A user holds at most one partial match per
campaign: its state number, not the events (see rtm.matcher).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rtm.durations import InvalidDuration, parse_duration
from rtm.expressions import NAMES, Expression, ExpressionError, Scope

ANY = "*"  # matches every real event; synthetic events match only when named
INITIAL = 0  # the state of no partial match: a transition into it drops the match


class FieldError(ValueError):
    """A campaign field that is not valid; `field` is its dotted path in the definition."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def duration_field(text: str, field: str) -> int:
    """The milliseconds of a campaign's duration field (rtm.durations); FieldError names the field."""
    try:
        return parse_duration(text)
    except InvalidDuration as err:
        raise FieldError(field, str(err)) from None


def compile_condition(source: str | None, bindings: Sequence[str], field: str) -> Expression | None:
    if source is None:
        return None
    try:
        return Expression(str(source), bindings)
    except ExpressionError as err:
        raise FieldError(field, str(err)) from None


@dataclass(frozen=True, slots=True)
class Types:
    """A set of event types; `any` stands for every real (not synthetic) event."""

    names: frozenset[str]
    any: bool = False

    def has(self, event_type: str, synthetic: bool) -> bool:
        return event_type in self.names or (self.any and not synthetic)

    def __or__(self, other: "Types") -> "Types":
        return Types(self.names | other.names, self.any or other.any)


NO_TYPES = Types(frozenset())


@dataclass(frozen=True, slots=True)
class EventFilter:
    types: Types
    where: Expression | None = None

    def matches(self, event_type: str, synthetic: bool, scope: Scope, errors: list[str], label: str) -> bool:
        types = self.types  # Types.has, inlined: this runs for every event a campaign consumes
        if not (event_type in types.names or (types.any and not synthetic)):
            return False
        return self.where is None or self.where.holds(scope, errors, label)


def compile_filter(spec: str | Mapping[str, Any], bindings: Sequence[str], field: str) -> EventFilter:
    """`purchase`, or {event: type | [types] | "*", where: condition}."""
    if isinstance(spec, str):
        spec = {"event": spec}
    names = spec["event"] if isinstance(spec["event"], list) else [spec["event"]]
    types = Types(frozenset(n for n in names if n != ANY), ANY in names)
    return EventFilter(types, compile_condition(spec.get("where"), bindings, f"{field}.where"))


@dataclass(frozen=True, slots=True)
class Transition:
    filter: EventFilter
    target: int  # INITIAL drops the partial match (a state machine back in its initial state)
    bind: str | None = None
    label: str = ""  # where the transition was written, for error reports


@dataclass(frozen=True, slots=True)
class Absence:
    """After the final state: no matching event for `for_ms`, then the pattern completes."""

    for_ms: int
    filter: EventFilter


@dataclass(frozen=True)
class Pattern:
    transitions: tuple[tuple[Transition, ...], ...]  # per state, in priority order
    final: frozenset[int]
    bindings: tuple[str, ...]
    within: int | None = None
    same_session: bool = False
    unless: tuple[EventFilter, ...] = ()
    absence: Absence | None = None
    # Per state, then one more for a match waiting on its absence: the event types it consumes.
    consumes: tuple[Types, ...] = field(init=False)
    waiting: int = field(init=False)  # index into `consumes` for a match waiting on its absence deadline
    # Event ids a match keeps for matched_event_ids: one per state, the latest for loops.
    max_ids: int = field(init=False)

    def __post_init__(self) -> None:
        unless = NO_TYPES
        for f in self.unless:
            unless = unless | f.types
        consumes = []
        for state, transitions in enumerate(self.transitions):
            types = unless if state != INITIAL else NO_TYPES  # unless cancels a match, never starts one
            for t in transitions:
                types = types | t.filter.types
            consumes.append(types)
        consumes.append(unless | self.absence.filter.types if self.absence else unless)
        object.__setattr__(self, "consumes", tuple(consumes))
        object.__setattr__(self, "waiting", len(self.transitions))
        object.__setattr__(self, "max_ids", len(self.transitions))

    def next_transition(self, state: int, event_type: str, synthetic: bool, scope: Scope,
                        errors: list[str]) -> Transition | None:
        for t in self.transitions[state]:
            if t.filter.matches(event_type, synthetic, scope, errors, t.label):
                return t
        return None

    def cancels(self, event_type: str, synthetic: bool, scope: Scope, errors: list[str]) -> bool:
        for f in self.unless:
            if f.matches(event_type, synthetic, scope, errors, "pattern.unless"):
                return True
        return False


def compile_pattern(spec: Mapping[str, Any]) -> Pattern:
    """A schema-valid `pattern:` mapping to a Pattern; raises FieldError."""
    if "steps" in spec:
        transitions, final, bindings = _compile_steps(spec["steps"])
    else:
        transitions, final, bindings = _compile_machine(spec["machine"])
    absence = None
    if "absence" in spec:
        a = spec["absence"]
        absence = Absence(duration_field(a["for"], "pattern.absence.for"),
                          compile_filter({"event": a.get("event", ANY), "where": a.get("where")}, bindings,
                                         "pattern.absence"))
    return Pattern(
        transitions=transitions,
        final=final,
        bindings=bindings,
        within=duration_field(spec["within"], "pattern.within") if "within" in spec else None,
        same_session=bool(spec.get("same_session", False)),
        unless=tuple(compile_filter(u, bindings, f"pattern.unless[{i}]") for i, u in enumerate(spec.get("unless", []))),
        absence=absence,
    )


def _step_bounds(step: Mapping[str, Any], field: str) -> tuple[int, int | None]:
    if "times" in step:
        if "at_least" in step or "at_most" in step:
            raise FieldError(field, "use either times or at_least/at_most, not both")
        return step["times"], step["times"]
    if "at_least" not in step and "at_most" not in step:
        return 1, 1  # a plain step takes one event; later ones of its type are skipped
    low, high = step.get("at_least", 1), step.get("at_most")
    if high is not None and high < low:
        raise FieldError(f"{field}.at_most", f"at_most {high} is below at_least {low}")
    return low, high


def _compile_steps(steps: Sequence[Mapping[str, Any]]):
    states: list[list[Transition]] = [[]]
    bindings: list[str] = []
    exits = [INITIAL]  # states from which the next step may be entered
    for i, step in enumerate(steps):
        field = f"pattern.steps[{i}]"
        filt = compile_filter(step, bindings, field)
        bind = _new_binding(step.get("as"), bindings, f"{field}.as")
        low, high = _step_bounds(step, field)
        last = i == len(steps) - 1
        # The last step completes on its `low`-th event; others keep counting up to `high`.
        count = low if last or high is None else high
        first = len(states)
        states.extend([] for _ in range(count))
        label = f"{field}.where"
        for s in exits:
            # Entering the next step goes first: a satisfied repeat gives way (reluctant).
            states[s].insert(0, Transition(filt, first, bind, label))
        for c in range(1, count):
            states[first + c - 1].append(Transition(filt, first + c, bind, label))
        if high is None and not last:
            states[first + count - 1].append(Transition(filt, first + count - 1, bind, label))
        exits = list(range(first + low - 1, first + count))
    final = frozenset({len(states) - 1})
    return tuple(tuple(s) for s in states), final, tuple(bindings)


def _compile_machine(spec: Mapping[str, Any]):
    initial = spec["initial"]
    index = {initial: INITIAL}
    bindings: list[str] = []
    for i, t in enumerate(spec["transitions"]):
        if t.get("as") and t["as"] not in bindings:  # several transitions may bind one name
            _new_binding(t["as"], bindings, f"pattern.machine.transitions[{i}].as")
        index.setdefault(t["to"], len(index))
    states: list[list[Transition]] = [[] for _ in index]
    for i, t in enumerate(spec["transitions"]):
        field = f"pattern.machine.transitions[{i}]"
        if t["from"] not in index:
            raise FieldError(f"{field}.from", f"state {t['from']!r} is never entered; states: {', '.join(index)}")
        states[index[t["from"]]].append(
            Transition(compile_filter(t, bindings, field), index[t["to"]], t.get("as"), f"{field}.where"))
    final = set()
    for i, name in enumerate(spec["fire_on"]):
        field = f"pattern.machine.fire_on[{i}]"
        if name not in index or index[name] == INITIAL:
            raise FieldError(field, f"{name!r} is not a state a transition enters; states: {', '.join(list(index)[1:])}")
        if states[index[name]]:
            raise FieldError(field, f"{name!r} has outgoing transitions, but a match completes on entering it")
        final.add(index[name])
    return tuple(tuple(s) for s in states), frozenset(final), tuple(bindings)


def _new_binding(name: str | None, bindings: list[str], field: str) -> str | None:
    if name is None:
        return None
    if name in NAMES:
        raise FieldError(field, f"{name!r} is a reserved name ({', '.join(NAMES)}); choose another")
    if name in bindings:
        raise FieldError(field, f"binding {name!r} is already used by an earlier step")
    bindings.append(name)
    return name
