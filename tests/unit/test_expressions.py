"""Conditions and templates are safe, checked when compiled, and keep only the fields they read."""

import pytest
from jinja2.exceptions import SecurityError

from rtm.expressions import (
    MAX_RENDERED_CHARS,
    Expression,
    ExpressionError,
    Payload,
    RenderedTooLarge,
    Scope,
    Template,
    prune,
)

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


@pytest.mark.parametrize("source, message", [
    ("event.__class__.__mro__", "attribute '__mro__' is not data"),
    ("event.params.__class__", "attribute '__class__' is not data"),
    ("event.params.get.__globals__", "attribute '__globals__' is not data"),
    ("event.params.items.__self__", "attribute '__self__' is not data"),
    ("event.params['__class__']", "field '__class__' is not data"),
    ("event.type.mro", "attribute 'mro' is not data"),
    ("cycler.__init__.__globals__", "unknown name 'cycler'"),
    ("joiner()", "unknown name 'joiner'"),
    ("lipsum(n=100000)", "unknown name 'lipsum'"),
    ("namespace(x=1)", "unknown name 'namespace'"),
    ("event.params.update({'x': 1})", "calling 'update' is refused"),
    ("event.params.pop('sku')", "calling 'pop' is refused"),
    ("event.type.center(100000000)", "calling 'center' is refused"),
    ("'{:>100000000}'.format(1)", "calling 'format' is refused"),
    ("event.type | attr('__class__')", "No filter named 'attr'"),
    ("'a' * 100000000", "would build a sequence of 100000000"),
    ("100000000 * ['a']", "would build a sequence of 100000000"),
    ("9 ** 99999", "exponent 99999 is above 64"),
    ("'%100000000s' % 1", "`%` formatting of text is refused"),
])
def test_sandbox_escapes_and_costly_constants_are_refused_when_compiled(source, message):
    with pytest.raises(ExpressionError, match=message):
        Expression(source)
    with pytest.raises(ExpressionError, match=message):
        Template("Hi {{ " + source + " }}")


@pytest.mark.parametrize("source, message", [
    ("{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}", "{% macro %} is refused"),
    ("{% for a in event.params.l %}{% for b in event.params.l %}x{% endfor %}{% endfor %}", "{% for %} is refused"),
    ("{% set s = 'x' %}{{ s }}", "{% assign %} is refused"),
    ("{% include 'x' %}", "{% include %} is refused"),
])
def test_template_statements_other_than_if_are_refused_when_compiled(source, message):
    with pytest.raises(ExpressionError, match=message):
        Template(source)
    assert Template("{% if event.type %}Hi {{ event.type }}{% endif %}").render(Scope({"event": EVENT})) == "Hi checkout"


BIG = {"event": {"params": {"s": "a" * 1000, "n": "%100000000s", "l": ["x"] * 1000, "blob": "b" * 40_000}}}


@pytest.mark.parametrize("source, what", [
    ("{{ event.params.s | replace('a', 'b' * 1000) }}", "`replace`"),  # one filter call, 1 MB
    ("{{ event.params.l | join('y' * 1000) }}", "`join`"),
    ("{{ event.params.blob }}", "the template's value"),  # a lone expression
    ("Note: {{ event.params.blob }}", "the template's text"),  # text and expressions (plain Python)
    ("{% if 1 %}{{ event.params.blob }}{% endif %}", "the template's text"),  # Jinja2 itself
    ("{{ event.params.l * 9 }}", "the template's value as JSON"),
])
def test_a_template_that_renders_past_the_limit_on_some_data_fails_on_that_data(source, what):
    template = Template(source)  # valid: only the data makes it large
    with pytest.raises(RenderedTooLarge, match=what):
        template.render(Scope(BIG))


def test_a_payload_past_the_limit_as_a_whole_fails_though_each_template_fits():
    payload = Payload({"a": "{{ event.params.half }}", "b": "{{ event.params.half }}"}, (), "action.data")
    half = {"event": {"params": {"half": "h" * (MAX_RENDERED_CHARS // 2 + 10)}}}
    with pytest.raises(RenderedTooLarge, match="the payload as JSON"):
        payload.render(Scope(half))


def test_percent_formatting_of_text_from_the_data_is_refused_when_evaluated():
    ok, errors = holds("event.params.n % 1", BIG)
    assert not ok and "`%` formatting of text is refused" in errors[0]
    assert holds("event.params.cart_items % 2 == 1") == (True, [])


@pytest.mark.parametrize("source", ["event.params.sku * 100000", "[1] * (event.params.cart_items * 10000)",
                                    "9 ** (event.params.cart_items * 33333)"])
def test_costly_operations_the_data_decides_are_refused_when_evaluated(source):
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
    "event.params.n if event.params.zz", "event.params.d.e", "event.params.n > 'a'", "event.params.n % 2",
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
