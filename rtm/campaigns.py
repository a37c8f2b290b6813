"""Campaign definitions: load (YAML files or JSON from rtm.campaigns), validate, compile.

Validation has two layers: the JSON Schema (rtm/campaign.schema.json, package data, so the
library needs no checkout; campaigns/campaign.schema.json links to it for editors) checks
the structure; compiling checks what a schema cannot (conditions, templates, bindings, state
names). Every problem becomes an Issue naming the source, the line (for YAML files), the
field and what is allowed. The job's policy (campaigns/policy.yaml, rtm.arbitration) is
loaded the same way, against the schema's `$defs.policy`.
"""

import hashlib
import importlib.resources
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import time
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import yaml

from rtm.arbitration import NO_POLICY, POLICY_KEY, ChannelCap, Policy
from rtm.errors import RtmError
from rtm.expressions import ExpressionError, Expression, Payload, Scope, Template, merge_paths
from rtm.goals import Goal
from rtm.patterns import (NO_TYPES, EventFilter, FieldError, Pattern, Types, compile_condition, compile_filter,
                          compile_pattern, duration_field)
from rtm.send_windows import SendWindow
from rtm.variants import Variant

# The package's data file, not one next to __file__: compiled, this module lives in rtm/_compiled/.
SCHEMA_PATH = importlib.resources.files("rtm") / "campaign.schema.json"
SESSION = "session"  # `limits.per: session`: a cap per session instead of per period
POLICY_FILE = "policy.yaml"  # in a campaigns folder: the job's policy, not a campaign


@dataclass(frozen=True)
class Issue:
    source: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.field or '(top level)'}: {self.message}"


class CampaignError(RtmError, ValueError):
    """A definition that cannot be used; `issues` lists every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("\n".join(map(str, issues)))
        self.issues = issues


@dataclass(frozen=True)
class Audience:
    visitor: str | None = None
    identity: str | None = None
    segments: tuple[str, ...] = ()
    where: Expression | None = None
    exclude: tuple[EventFilter, ...] = ()
    checks: bool = field(init=False)  # whether admits() can say no

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", bool(self.visitor or self.identity or self.segments or self.where))

    def admits(self, scope: Scope, errors: list[str]) -> bool:
        if self.visitor and scope["user"]["first_time"] != (self.visitor == "first_time"):
            return False
        if self.identity and scope["user"]["known"] != (self.identity == "known"):
            return False
        if self.segments and not set(self.segments).issubset(scope["profile"].get("segments") or ()):
            return False
        return self.where is None or self.where.holds(scope, errors, "audience.where")


@dataclass(frozen=True)
class Limits:
    max: int | None = None
    per: int | None = None  # a period (ms)...
    per_session: bool = False  # ...or `per: session`
    cooldown: int | None = None
    reenter: bool = True
    holdout: float = 0.0
    lifetime_cap: int | None = field(init=False)  # completions a user may ever have (None: no lifetime cap)
    memory_ms: int = field(init=False)  # how long a completion time counts (cap per period, cooldown)

    def __post_init__(self) -> None:
        capped_ever = self.per is None and not self.per_session
        object.__setattr__(self, "lifetime_cap", 1 if not self.reenter else self.max if capped_ever else None)
        object.__setattr__(self, "memory_ms", max(self.per or 0, self.cooldown or 0))


@dataclass(frozen=True)
class Action:
    channel: str
    endpoint: str
    message: Template
    data: Payload
    variants: tuple[Variant, ...] = ()  # A/B: each user gets one (rtm.variants), else message and data


@dataclass(frozen=True)
class Emit:
    event: str
    params: Payload


@dataclass(frozen=True, eq=False)
class Campaign:
    id: str
    version: int
    priority: int  # of several triggers leaving at once, the higher takes the last slot under a channel cap
    fingerprint: int  # of the whole definition: any change drops partial matches
    definition: Mapping[str, Any]
    pattern: Pattern
    audience: Audience
    limits: Limits
    action: Action | None
    emit: Emit | None
    goal: Goal | None  # a conversion to watch for after each trigger
    send_window: SendWindow | None  # when its triggers may leave (else they are held)
    exit: tuple[EventFilter, ...]  # events that cancel a held trigger
    bind_paths: Mapping[str, frozenset[tuple[str, ...]]]  # bound-event fields the campaign reads
    wakes: tuple[Types, ...]  # per pattern state (and waiting): event types the campaign consumes
    reads_session_id: bool  # some condition or template reads session.id (or the whole session)


@cache
def _validator(definition: str = "") -> jsonschema.Draft202012Validator:
    """The schema's validator: of a campaign, or of one of its `$defs` (the policy)."""
    schema = json.loads(SCHEMA_PATH.read_text())
    if definition:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    return jsonschema.Draft202012Validator(schema)


def load_definition(definition: Any, source: str = "<definition>",
                    lines: Mapping[tuple, int] | None = None) -> Campaign:
    """Validate and compile one definition (a dict as parsed from YAML or JSON).

    Raises CampaignError listing every problem; `lines` maps field paths to YAML lines.
    """
    return _validated(_validator(), _compile, definition, source, lines or {})


def load_policy(definition: Any, source: str = "<policy>", lines: Mapping[tuple, int] | None = None) -> Policy:
    """Validate and compile the job's policy (a dict as parsed from YAML or JSON), as load_definition."""
    return _validated(_validator("policy"), _compile_policy, definition, source, lines or {})


def _validated(validator: jsonschema.Draft202012Validator, compile: Callable[[Any], Any], definition: Any,
               source: str, lines: Mapping[tuple, int]) -> Any:
    issues = sorted((Issue(source, _line_of(lines, tuple(err.absolute_path)), _dotted(err.absolute_path), _explain(err))
                     for err in validator.iter_errors(definition)), key=lambda i: (i.line or 0, i.field))
    if not issues:
        try:
            return compile(definition)
        except FieldError as err:
            path = _parse_dotted(err.field)
            issues.append(Issue(source, _line_of(lines, path), err.field, err.message))
    raise CampaignError(issues)


def _decode_json(raw: bytes | str, source: str) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as err:
        raise CampaignError([Issue(source, None, "", f"not JSON: {err}")]) from None


def parse_definition(raw: bytes | str, source: str = "<rtm.campaigns>") -> Campaign:
    """A definition as published on rtm.campaigns (JSON)."""
    return load_definition(_decode_json(raw, source), source)


def load_file(path: Path) -> Campaign:
    """One campaigns/<id>.yaml file; its id must equal the file's stem."""
    source = str(path)
    definition, lines, issues = _read_yaml(path)
    if isinstance(definition, dict) and definition.get("id") != path.stem:
        issues.append(Issue(source, lines.get(("id",)), "id",
                            f"{definition.get('id')!r} must equal the file name {path.stem!r}"))
    try:
        campaign = load_definition(definition, source, lines)
    except CampaignError as err:
        issues += err.issues
    if issues:
        raise CampaignError(issues)
    return campaign


def load_policy_file(path: Path) -> Policy:
    """The policy file (campaigns/policy.yaml)."""
    definition, lines, issues = _read_yaml(path)
    try:
        policy = load_policy(definition, str(path), lines)
    except CampaignError as err:
        issues += err.issues
    if issues:
        raise CampaignError(issues)
    return policy


def _read_yaml(path: Path) -> tuple[Any, dict[tuple, int], list[Issue]]:
    """A YAML file's data, the line of each field path, and its duplicate keys as issues."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CampaignError([Issue(source, None, "", f"cannot read: {err}")]) from None
    try:
        definition, lines, duplicates = _yaml_with_lines(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(err, "problem", None) or str(err)
        raise CampaignError([Issue(source, line, "", f"YAML syntax error: {problem}")]) from None
    return definition, lines, [Issue(source, line, _dotted(p), "key given twice; keep one") for p, line in duplicates]


def campaign_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files named by paths (files or folders, not recursive), sorted; a file
    named policy.yaml is the policy (policy_files), not a campaign."""
    return [p for p in _yaml_files(paths) if p.name != POLICY_FILE]


def policy_files(paths: Iterable[Path]) -> list[Path]:
    """The policy files among paths (policy.yaml, or a folder's)."""
    return [p for p in _yaml_files(paths) if p.name == POLICY_FILE]


def _yaml_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.exists():
            files.append(path)
        else:
            raise RtmError(f"{path}: no such file or folder")
    return files


def load_paths(paths: Iterable[Path]) -> tuple[list[Campaign], list[Issue]]:
    """Every campaign under paths, and every issue of every file (not just the first)."""
    campaigns: list[Campaign] = []
    issues: list[Issue] = []
    seen: dict[str, Path] = {}
    for path in campaign_files(paths):
        try:
            campaign = load_file(path)
        except CampaignError as err:
            issues += err.issues
            continue
        if campaign.id in seen:
            issues.append(Issue(str(path), None, "id", f"{campaign.id!r} is also defined in {seen[campaign.id]}"))
            continue
        seen[campaign.id] = path
        campaigns.append(campaign)
    return campaigns, issues


def load_set(paths: Iterable[Path]) -> tuple["CampaignSet", list[Issue]]:
    """The campaigns and the policy under paths, as one set, and every issue of every file."""
    paths = list(paths)
    campaigns, issues = load_paths(paths)
    policy, found = NO_POLICY, policy_files(paths)
    if len(found) > 1:
        issues.append(Issue(str(found[1]), None, "", f"a second policy (the first: {found[0]}); the job has one, "
                                                     f"keep one"))
    elif found:
        try:
            policy = load_policy_file(found[0])
        except CampaignError as err:
            issues += err.issues
    return CampaignSet(campaigns, policy), issues


def visit_order(campaign: Campaign) -> tuple[int, str]:
    """The order the engine offers an event to campaigns: higher priority first, then by id
    (so of the triggers completing on one event, the higher priority's leaves first)."""
    return -campaign.priority, campaign.id


class CampaignSet:
    """The running campaigns, compiled once, indexed by the event types they consume, and
    the job's policy.

    The Flink job builds it from its broadcast state and applies rtm.campaigns updates
    with upsert/retire/set_policy; preview builds it from files.
    """

    def __init__(self, campaigns: Iterable[Campaign] = (), policy: Policy = NO_POLICY) -> None:
        self.policy = policy
        self._by_id: dict[str, Campaign] = {c.id: c for c in campaigns}
        # The campaign of an id, or None: the dict's own get (called per campaign a user has state for).
        self.get: Callable[[str], Campaign | None] = self._by_id.get
        self._reindex()

    @classmethod
    def from_definitions(cls, definitions: Mapping[str, Any]) -> "CampaignSet":
        """From campaign id -> definition (dict, or JSON text/bytes as on rtm.campaigns), the
        policy's under its key (POLICY_KEY)."""
        campaigns, issues, policy = [], [], NO_POLICY
        for key, definition in sorted(definitions.items()):
            try:
                if key == POLICY_KEY:
                    policy = _policy_any(definition)
                else:
                    campaigns.append(_load_any(definition, f"campaign {key}"))
            except CampaignError as err:
                issues += err.issues
        if issues:
            raise CampaignError(issues)
        return cls(campaigns, policy)

    def upsert(self, definition: Any) -> Campaign:
        """Add or replace one campaign; on any error the running version stays."""
        campaign = _load_any(definition, "<rtm.campaigns>")
        running = self._by_id.get(campaign.id)
        if running is not None:
            if campaign.version < running.version:
                raise CampaignError([Issue(campaign.id, None, "version", f"{campaign.version} is older than the "
                                           f"running version {running.version}; publish a higher version")])
            if campaign.version == running.version:
                if campaign.fingerprint != running.fingerprint:
                    raise CampaignError([Issue(campaign.id, None, "version", f"the definition changed but the version is "
                                               f"still {campaign.version}; bump the version")])
                return running
        self._by_id[campaign.id] = campaign
        self._reindex()
        return campaign

    def set_policy(self, definition: Any) -> None:
        """Replace the policy (None: no policy); on any error the running one stays."""
        self.policy = NO_POLICY if definition is None else _policy_any(definition)

    def retire(self, campaign_id: str) -> bool:
        """Remove a campaign (users' state for it is dropped when next touched)."""
        found = self._by_id.pop(campaign_id, None) is not None
        if found:
            self._reindex()
        return found

    def rank(self, campaign_id: str) -> tuple[int, str]:
        """The visit order of a running campaign, by id."""
        return visit_order(self._by_id[campaign_id])

    def __contains__(self, campaign_id: object) -> bool:
        return campaign_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Campaign]:
        return iter(sorted(self._by_id.values(), key=lambda c: c.id))

    def starting(self, event_type: str, synthetic: bool) -> tuple[Campaign, ...]:
        """Campaigns a user without a partial match must visit for this event type."""
        if synthetic:
            return self._named.get(event_type, ())
        return self._real.get(event_type, self._any)

    def _reindex(self) -> None:
        named: dict[str, list[Campaign]] = {}
        any_type: list[Campaign] = []
        for campaign in sorted(self._by_id.values(), key=visit_order):
            starts = campaign.wakes[0]
            for name in starts.names:
                named.setdefault(name, []).append(campaign)
            if starts.any:
                any_type.append(campaign)
        self._named = {t: tuple(cs) for t, cs in named.items()}
        self.goals = {c.id: c.goal for c in self if c.goal is not None}
        goal_types = NO_TYPES
        for goal in self.goals.values():
            goal_types = goal_types | goal.filter.types
        self.goal_types = goal_types  # the event types that may reach a goal
        self.exits = {c.id: c.exit for c in self if c.exit}  # what cancels a held trigger
        self._any = tuple(any_type)
        self.reads_session_id = any(c.reads_session_id for c in self)
        self._real = {t: tuple(sorted({*cs, *any_type}, key=visit_order)) for t, cs in named.items()}


def _load_any(definition: Any, source: str) -> Campaign:
    if isinstance(definition, (bytes, str)):
        return parse_definition(definition, source)
    return load_definition(definition, source)


def _policy_any(definition: Any) -> Policy:
    source = f"policy {POLICY_KEY}"
    return load_policy(_decode_json(definition, source) if isinstance(definition, (bytes, str)) else definition, source)


def _compile_policy(d: Mapping[str, Any]) -> Policy:
    caps, seen = [], {}
    for i, spec in enumerate(d["caps"]):
        channel, per = spec["channel"], spec["per"]
        if (channel, per) in seen:
            raise FieldError(f"caps[{i}]", f"{channel} per {per} is capped by caps[{seen[channel, per]}] too; keep one")
        seen[channel, per] = i
        caps.append(ChannelCap(channel, spec["max"], None if per == SESSION else duration_field(per, f"caps[{i}].per"),
                               f"cap {channel} {spec['max']} per {per}"))
    return Policy(tuple(caps), d)


def _compile(d: Mapping[str, Any]) -> Campaign:
    if ("action" in d) == ("emit" in d):
        raise FieldError("action", "a campaign needs exactly one of `action` (deliver a trigger) "
                                   "or `emit` (feed a synthetic event back)")
    pattern = compile_pattern(d["pattern"])
    bindings = pattern.bindings
    a = d.get("audience", {})
    audience = Audience(
        visitor=a.get("visitor"), identity=a.get("identity"), segments=tuple(a.get("segments", ())),
        where=compile_condition(a.get("where"), (), "audience.where"),
        exclude=tuple(compile_filter(f, (), f"audience.exclude[{i}]") for i, f in enumerate(a.get("exclude", ()))))
    lim = d.get("limits", {})
    per = lim.get("per")
    limits = Limits(
        max=lim.get("max"), per=duration_field(per, "limits.per") if per not in (None, SESSION) else None,
        per_session=per == SESSION,
        cooldown=duration_field(lim["cooldown"], "limits.cooldown") if "cooldown" in lim else None,
        reenter=lim.get("reenter", True), holdout=float(lim.get("holdout", 0.0)))
    if per is not None and limits.max is None:
        raise FieldError("limits.per", "per needs max (at most `max` triggers per period or session)")
    action = emit = None
    if "action" in d:
        spec = d["action"]
        message = _template(spec.get("message", ""), bindings, "action.message")
        data = _payload(spec.get("data", {}), bindings, "action.data")
        variants = _variants(spec.get("variants", ()), message, data, bindings)
        action = Action(spec["channel"], spec["endpoint"], message, data, variants)
        rendered = [message, data, *(x for v in variants for x in (v.message, v.data))]
    else:
        if limits.holdout:
            raise FieldError("limits.holdout", "holdout applies to campaigns with an action; an emit is never delivered")
        emit = Emit(d["emit"]["event"], _payload(d["emit"].get("params", {}), bindings, "emit.params"))
        rendered = [emit.params]
    goal = None
    if "goal" in d:
        if action is None:
            raise FieldError("goal", "a goal follows triggers; an emit campaign has none (put the goal on the "
                                     "campaign that delivers)")
        spec = d["goal"]
        goal = Goal(compile_filter({"event": spec["event"], "where": spec.get("where")}, (), "goal"),
                    duration_field(spec["within"], "goal.within"))
    send_window, exits = _send_window(d, action, bindings)
    if send_window is not None:
        rendered.append(send_window.timezone)
    conditions = [t.filter.where for ts in pattern.transitions for t in ts]
    conditions += [f.where for f in pattern.unless] + [pattern.absence.filter.where if pattern.absence else None]
    paths = merge_paths([*(c.paths for c in conditions if c is not None), *(r.paths for r in rendered)])
    conditions += [audience.where, *(f.where for f in audience.exclude)]  # they read no bindings
    conditions += [goal.filter.where if goal else None, *(f.where for f in exits)]
    exclude = NO_TYPES
    for f in audience.exclude:
        exclude = exclude | f.types
    return Campaign(
        id=d["id"], version=d["version"], priority=d.get("priority", 0), fingerprint=_fingerprint(d), definition=d,
        pattern=pattern,
        audience=audience, limits=limits, action=action, emit=emit, goal=goal, send_window=send_window, exit=exits,
        bind_paths={name: frozenset(p) for name, p in paths.items()},
        wakes=tuple(types | exclude for types in pattern.consumes),
        reads_session_id=any(x.reads_session_id for x in [*conditions, *rendered] if x is not None))


def _send_window(d: Mapping[str, Any], action: Action | None,
                 bindings: tuple[str, ...]) -> tuple[SendWindow | None, tuple[EventFilter, ...]]:
    """`send_window` and `exit` (which cancels what the window holds)."""
    if "send_window" not in d:
        if "exit" in d:
            raise FieldError("exit", "exit cancels triggers held for the send window; add a send_window, "
                                     "or use pattern.unless to cancel a match")
        return None, ()
    if action is None:
        raise FieldError("send_window", "an emit campaign sends nothing; put the send window on the campaign that "
                                        "delivers")
    spec = d["send_window"]
    window = SendWindow(
        time.fromisoformat(spec["from"]), time.fromisoformat(spec["to"]),
        _template(spec.get("timezone", "UTC"), bindings, "send_window.timezone"),
        duration_field(spec.get("within", "1d"), "send_window.within"))
    return window, tuple(compile_filter(f, (), f"exit[{i}]") for i, f in enumerate(d.get("exit", ())))


def _variants(specs: Iterable[Mapping[str, Any]], message: Template, data: Payload,
              bindings: tuple[str, ...]) -> tuple[Variant, ...]:
    """`action.variants`; a variant without its own message or data uses the action's."""
    variants: list[Variant] = []
    for i, spec in enumerate(specs):
        field = f"action.variants[{i}]"
        for j, earlier in enumerate(variants):
            if earlier.name == spec["name"]:
                raise FieldError(f"{field}.name", f"{spec['name']!r} is also the name of variants[{j}]; "
                                                  f"give each variant its own name")
        variants.append(Variant(
            spec["name"], float(spec["weight"]),
            _template(spec["message"], bindings, f"{field}.message") if "message" in spec else message,
            _payload(spec["data"], bindings, f"{field}.data") if "data" in spec else data))
    return tuple(variants)


def _template(source: str, bindings: tuple[str, ...], field: str) -> Template:
    try:
        return Template(source, bindings)
    except ExpressionError as err:
        raise FieldError(field, str(err)) from None


def _payload(value: Any, bindings: tuple[str, ...], field: str) -> Payload:
    try:
        return Payload(value, bindings, field)
    except ExpressionError as err:
        raise FieldError(field, str(err)) from None


def _fingerprint(definition: Mapping[str, Any]) -> int:
    canonical = msgspec.json.encode(definition, order="sorted")
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=4).digest(), "big")


def _explain(err: jsonschema.ValidationError) -> str:
    """The schema's message, plus what is allowed where jsonschema does not say."""
    if err.validator == "additionalProperties":
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        return f"{err.message}; allowed: {allowed}"
    if err.validator == "anyOf" and err.context:
        return jsonschema.exceptions.best_match(err.context).message
    if err.validator == "pattern" and err.schema.get("description"):
        return f"{err.instance!r} is not valid: {err.schema['description']}"
    return err.message


def _dotted(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _parse_dotted(field: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", field))


def _line_of(lines: Mapping[tuple, int], path: tuple) -> int | None:
    """The line of the deepest known field on path (a missing field: its parent's line)."""
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path)


def _yaml_with_lines(text: str) -> tuple[Any, dict[tuple, int], list[tuple[tuple, int]]]:
    """Parse YAML; also map each field path to its 1-based line and list duplicate keys."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines: dict[tuple, int] = {}
    duplicates: list[tuple[tuple, int]] = []

    def walk(n: yaml.Node, path: tuple) -> None:
        lines[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                child = (*path, key.value)
                if child in lines:
                    duplicates.append((child, key.start_mark.line + 1))
                walk(value, child)
                lines[child] = key.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return data, lines, duplicates
