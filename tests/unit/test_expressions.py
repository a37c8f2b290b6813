"""Conditions and templates are safe, checked when compiled, and keep only the fields they read."""

import pytest
from jinja2.exceptions import SecurityError

from rtm.expressions import Expression, ExpressionError, Payload, Scope, Template, prune

EVENT = {"event_id": "e1", "type": "checkout", "ts": 1, "params": {"cart_items": 3, "sku": "s"}}


def holds(source, vars=None, bindings=()):
    errors = []
    return Expression(source, bindings).holds(Scope(vars or {"event": EVENT}), errors, "test"), errors


def test_a_condition_reads_nested_fields():
    assert holds("event.params.cart_items < 4 and event.type == 'checkout'") == (True, [])


def test_a_missing_field_is_false_without_an_error():
    assert holds("event.params.nothing > 1") == (False, [])


def test_a_type_error_is_false_and_reported():
    ok, errors = holds("event.params.sku > 1")
    assert not ok and "TypeError" in errors[0]


@pytest.mark.parametrize("source", [
    "event.__class__.__mro__",
    "event.params.__class__",
    "event.params.update({'x': 1})",
    "event.params.pop('sku')",
])
def test_the_sandbox_blocks_escapes_and_mutation(source):
    try:
        value = Expression(source).evaluate(Scope({"event": EVENT}))
    except SecurityError:
        value = None
    assert value is None  # an unsafe attribute is undefined; a mutating call is refused
    assert EVENT["params"] == {"cart_items": 3, "sku": "s"}


@pytest.mark.parametrize("source", ["'x' * 100000", "[1] * 100000", "9 ** 99999"])
def test_costly_operations_are_refused(source):
    ok, errors = holds(source)
    assert not ok and "SecurityError" in errors[0]


@pytest.mark.parametrize("source, message", [
    ("event.params.", "syntax error"),
    ("evnt.type == 'x'", "unknown name 'evnt'"),
    ("range(10) | length", "unknown name 'range'"),
    ("event.type | center(99999)", "No filter named 'center'"),
    ("event.type }} {{ 1", "unexpected text after the expression"),
])
def test_bad_conditions_fail_when_compiled(source, message):
    with pytest.raises(ExpressionError, match=message):
        Expression(source)


def test_a_binding_is_a_name_and_its_fields_are_recorded():
    expr = Expression("cart.params.sku == event.params.sku and cart['ts'] < 5 and cart.params.get('x') is none",
                      bindings=["cart"])
    assert expr.paths == {"cart": {("params", "sku"), ("ts",), ("params",)}}


def test_prune_keeps_only_the_read_fields():
    kept = prune({**EVENT, "context": {"os": "ios"}}, {("params", "sku"), ("params", "absent")})
    assert kept == {"event_id": "e1", "type": "checkout", "ts": 1, "params": {"sku": "s"}}


def test_a_template_renders_text_and_a_lone_expression_keeps_its_type():
    scope = Scope({"profile": {"attributes": {"recs": ["a", "b"], "name": "Ann"}}})
    assert Template("Hi {{ profile.attributes.name }}!").render(scope) == "Hi Ann!"
    assert Template("{{ profile.attributes.recs }}").render(scope) == ["a", "b"]
    assert Template("{{ profile.attributes.recs | select('ne', 'a') }}").render(scope) == ["b"]
    assert Template("{{ profile.attributes.missing }}").render(scope) is None


def test_a_payload_renders_every_string_and_names_the_field_of_an_error():
    payload = Payload({"a": ["{{ 1 + 1 }}", 3], "b": {"c": "x{{ 2 }}"}}, (), "action.data")
    assert payload.render(Scope({})) == {"a": [2, 3], "b": {"c": "x2"}}
    with pytest.raises(ExpressionError, match=r"action.data.b\[0\]"):
        Payload({"b": ["{{ nope }}"]}, (), "action.data")


# Jinja2 itself, in the same sandbox: the oracle for conditions and templates compiled to plain Python.
from rtm.expressions import _ENV as SANDBOX  # noqa: E402

SCOPES = [
    {"event": {"params": {"n": 2, "s": "hello", "l": [3, 1, 2], "k": "s", "f": 1.5, "d": {"e": 7}, "section": "hats"},
               "context": {"app": "game"}}, "profile": {"attributes": {"ltv": 2000}}, "session": {"pages": 3}},
    {"event": {"params": {"n": None, "s": 3, "l": [], "k": "zz", "f": "x", "d": {}}}, "session": {}},
    {"event": {"params": {"n": "x", "s": None, "l": "abc", "section": ""}}, "session": {"pages": "3"}},
    {},
]


def outcome(compute):
    try:
        return "value", compute()
    except Exception as err:  # noqa: BLE001 - the error is what is compared
        return type(err).__name__, str(err)


@pytest.mark.parametrize("source", [
    "session.pages == 3", "event.params.section is defined and event.params.section", "event.context.app == 'game'",
    "profile.attributes.ltv > 1000", "event.params.n + 1", "event.params.n * 'ab'", "event.params.n ** 2",
    "not event.params.n", "-event.params.n", "1 < event.params.n < 5", "event.params.n in [1, 2, 3]",
    "event.params.s ~ 'x'", "event.params['s']", "event.params[event.params.k]", "event.params.keys is defined",
    "event.params.s | upper", "event.missing | default('d', true)", "event.params.l | first", "event.params.l | sort",
    "event.params.l | join('-')", "event.params | tojson", "event.params.n is divisibleby 2", "event.params.n / 0",
    "event.params.n if event.params.zz", "event.params.d.e", "event.params.n > 'a'", "event.__class__",
])
def test_conditions_compiled_to_python_give_jinja2s_values_and_errors(source):
    expression, jinja = Expression(source), SANDBOX.compile_expression(source, undefined_to_none=True)
    for vars in SCOPES:
        assert outcome(lambda: expression.evaluate(Scope(vars))) == outcome(lambda: jinja(**vars)), vars


@pytest.mark.parametrize("source", [
    "Your game{{ ' ' ~ event.params.s if event.params.s }} misses you.", "{{ event.params.s | title }}: {{ session }}",
    "New in {{ event.params.section | title }}{{ ', ' ~ profile.attributes.name if profile.attributes.name }}!",
    "{{ event.params.l | join(', ') }} {{ 1 / event.params.n }}", "just text\n",
])
def test_templates_compiled_to_python_render_as_jinja2_does(source):
    template, jinja = Template(source), SANDBOX.from_string(source)
    for vars in SCOPES:
        assert outcome(lambda: template.render(Scope(vars))) == outcome(lambda: jinja.render(**vars)), vars


@pytest.mark.parametrize("source, reads", [
    ("session.pages == 3", False), ("event.session.id", False), ("session.id", True), ("session['id']", True),
    ("session | length", True), ("session.get('pages')", True), ("session[event.params.k]", True),
])
def test_an_expression_knows_whether_it_reads_the_session_id(source, reads):
    assert Expression(source).reads_session_id is reads
