"""Safe conditions and templates: Jinja2's sandbox, compiled once, evaluated per event.

Why Jinja2 and not CEL: measured on this project, a cel-python program took ~340 us
per evaluation; a sandboxed Jinja2 expression takes ~4 us plus ~2 us per event for
the shared context. The sandbox blocks attribute access outside the data; on top of
it we drop globals such as range(), keep a whitelist of filters, and cap `*` and `**`
so a condition's cost stays bounded. What can be refused before any event arrives is
refused when compiled (`rtm campaigns validate`): attributes that are not data
(`__class__`, `__globals__`...), calls of anything but a few read-only methods, constant
repeats past the cap, `%` formatting of text, template statements other than `if`. What only data can
decide is capped when rendered: a template's text or value, and a payload as a whole, is
at most MAX_RENDERED_CHARS (a trigger carries a message, not a document).

Most conditions are comparisons of fields with constants (`session.pages == 3`). Those
compile to one plain Python function that makes the very calls Jinja2's generated code
makes (the sandbox's getattr/getitem, the same operators and tests), without a
template context or a generator: ~0.5 us instead of ~4 us. Anything else (filters,
calls, inline if, ...) runs through Jinja2 itself.
"""

import keyword
import operator
from functools import wraps
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

import msgspec
from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.compiler import operators as _COMPARISONS
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.parser import Parser
from jinja2.nodes import EvalContext
from jinja2.runtime import ChainableUndefined, Context, Undefined, missing, str_join
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
    ImmutableSandboxedEnvironment,
)
from jinja2.utils import _PassArg

# The names every condition and template sees; campaigns add their bindings.
NAMES = ("event", "profile", "session", "user")

_SAFE_FILTERS = {
    "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first",
    "float", "int", "join", "last", "length", "list", "lower", "map", "max", "min",
    "reject", "rejectattr", "replace", "round", "select", "selectattr", "sort",
    "string", "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode",
}
_MAX_REPEAT = 10_000  # longest sequence `*` may build
_MAX_EXPONENT = 64
# The longest text (or JSON) a template, or a whole payload, may render to.
MAX_RENDERED_CHARS = 32 * 1024
# The methods a condition or template may call: they read, and cost what their input costs.
_METHODS = frozenset({
    "get", "keys", "values", "items", "startswith", "endswith", "lower", "upper", "strip", "lstrip", "rstrip",
    "split", "count", "find", "index", "title", "capitalize", "isdigit", "isalpha", "isalnum", "islower", "isupper",
})
_UNSAFE_ATTRIBUTES = (UNSAFE_FUNCTION_ATTRIBUTES | UNSAFE_METHOD_ATTRIBUTES | UNSAFE_GENERATOR_ATTRIBUTES
                      | UNSAFE_COROUTINE_ATTRIBUTES | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES | {"mro"})
# Template statements: text, {{ expressions }} and {% if %}. Not {% for %}: nested loops over an
# event's lists cost its length to the power of the depth (filters such as join and map do not).
_STATEMENTS = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.If)


class ExpressionError(ValueError):
    """A condition or template that does not compile; the message says why."""


class RenderedTooLarge(SecurityError):
    """A template rendered (or was about to render) more than MAX_RENDERED_CHARS on this data."""

    def __init__(self, what: str, size: int | str) -> None:
        super().__init__(f"{what} would be {size} characters, above the limit of {MAX_RENDERED_CHARS}: "
                         "render a reference (an id, a URL) instead of content")


def _bounded_replace(replace: Callable[..., Any]) -> Callable[..., Any]:
    """The `replace` filter, refused before it builds a text above the limit."""

    @wraps(replace)
    def bounded(eval_ctx, s, old, new, count=None):
        if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
            times = s.count(old) if count is None else min(count, s.count(old))
            size = len(s) + times * (len(new) - len(old))
            if size > MAX_RENDERED_CHARS:
                raise RenderedTooLarge("`replace`", size)
        return replace(eval_ctx, s, old, new, count)

    return bounded


def _bounded_join(join: Callable[..., Any]) -> Callable[..., Any]:
    """The `join` filter, refused before it builds a text above the limit."""

    @wraps(join)
    def bounded(eval_ctx, value, d="", attribute=None):
        items = list(value) if not isinstance(value, (list, tuple)) else value
        if isinstance(d, str) and len(d) * max(len(items) - 1, 0) > MAX_RENDERED_CHARS:
            raise RenderedTooLarge("`join`", f"over {len(d) * (len(items) - 1)}")
        return join(eval_ctx, items, d, attribute)

    return bounded


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self) -> None:
        # Chainable: `cart.params.sku` of an event without params is undefined, not an
        # error, so a template renders it empty (or a lone expression as null).
        super().__init__(undefined=ChainableUndefined)
        self.globals.clear()
        self.filters = {name: f for name, f in self.filters.items() if name in _SAFE_FILTERS}
        self.filters["replace"] = _bounded_replace(self.filters["replace"])
        self.filters["join"] = _bounded_join(self.filters["join"])

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Data is dicts: `event.params` reads the key directly instead of failing an
        # attribute lookup first (an exception per access, the bulk of a condition's cost).
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, op: str, left: Any, right: Any) -> Any:
        if op == "%":
            if isinstance(left, str):  # "%100000000s" % 1 builds 100 MB
                raise SecurityError("`%` formatting of text is refused: join text with ~")
            return operator.mod(left, right)
        if op == "**":
            if isinstance(right, (int, float)) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is above {_MAX_EXPONENT}")
            return operator.pow(left, right)
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > _MAX_REPEAT:
                raise SecurityError(f"`*` would build a sequence longer than {_MAX_REPEAT}")
        return operator.mul(left, right)


_ENV = _Sandbox()


class Scope(Mapping[str, Any]):
    """The names one evaluation sees. Subclasses may compute values on first use (`get`).

    The Jinja2 context, which only expressions that are not plain Python need, is built
    once, on first use, over the scope itself.
    """

    __slots__ = ("_vars", "_context")

    def __init__(self, vars: Mapping[str, Any] | None = None) -> None:
        self._vars = vars if vars is not None else {}
        self._context: Context | None = None

    def get(self, name: str, default: Any = None) -> Any:
        return self._vars.get(name, default)

    def names(self) -> Iterable[str]:
        return self._vars

    def __getitem__(self, name: str) -> Any:
        value = self.get(name, missing)
        if value is missing:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return self.get(name, missing) is not missing  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return sum(1 for _ in self.names())

    def with_binds(self, binds: Mapping[str, Any]) -> "Scope":
        """This scope plus a partial match's bound events (their names never clash with NAMES)."""
        return _Bound(binds, self) if binds else self

    @property
    def context(self) -> Context:
        if self._context is None:
            self._context = Context(_ENV, self, None, {})
        return self._context


class _Bound(Scope):
    __slots__ = ("_base",)

    def __init__(self, binds: Mapping[str, Any], base: Scope) -> None:
        super().__init__(binds)
        self._base = base

    def get(self, name: str, default: Any = None) -> Any:
        value = self._vars.get(name, missing)
        return self._base.get(name, default) if value is missing else value

    def names(self) -> Iterable[str]:
        return [*self._vars, *self._base.names()]


class _Compiled:
    """What conditions and templates share: the source, the names, the bound-event fields used."""

    def __init__(self, source: str, ast: nodes.Template, bindings: Collection[str]) -> None:
        self.source = source
        allowed = set(NAMES) | set(bindings)
        unknown = sorted(meta.find_undeclared_variables(ast) - allowed)
        if unknown:
            raise ExpressionError(f"unknown name {unknown[0]!r}; available: {', '.join(sorted(allowed))}")
        problem = _unsafe(ast)
        if problem:
            raise ExpressionError(f"{problem} in {source!r}")
        self.paths = _binding_paths(ast, bindings)
        self.reads_session_id = _reads_session_id(_binding_paths(ast, ("session",)).get("session", ()))


def _unsafe(ast: nodes.Node) -> str | None:
    """What in a condition or template is refused before any data is seen (the sandbox would
    refuse much of it when evaluated; a campaign should fail `validate` instead), or None."""
    for node in ast.find_all(nodes.Node):
        if isinstance(node, nodes.Getattr) and (node.attr.startswith("_") or node.attr in _UNSAFE_ATTRIBUTES):
            return f"attribute {node.attr!r} is not data: read the fields of {', '.join(NAMES)} and bound events"
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str) and node.arg.value.startswith("_"):
            return f"field {node.arg.value!r} is not data: names starting with _ are refused"
        if isinstance(node, nodes.Call):
            if not isinstance(node.node, nodes.Getattr) or node.node.attr not in _METHODS:
                called = node.node.attr if isinstance(node.node, nodes.Getattr) else "a value"
                return f"calling {called!r} is refused: only {', '.join(sorted(_METHODS))} may be called"
        if isinstance(node, nodes.Mul):
            for seq, times in ((node.left, node.right), (node.right, node.left)):
                if isinstance(times, nodes.Const) and type(times.value) is int:
                    if isinstance(seq, nodes.Const):  # Jinja2 folds a constant list into one
                        length = len(seq.value) if isinstance(seq.value, (str, list, tuple)) else 0
                    else:
                        length = len(seq.items) if isinstance(seq, (nodes.List, nodes.Tuple)) else 0
                    if length * times.value > _MAX_REPEAT:
                        return f"`*` would build a sequence of {length * times.value}, above {_MAX_REPEAT}"
        if isinstance(node, nodes.Mod) and isinstance(node.left, nodes.Const) and isinstance(node.left.value, str):
            return "`%` formatting of text is refused: join text with ~"
        if isinstance(node, nodes.Pow) and isinstance(node.right, nodes.Const) \
                and isinstance(node.right.value, (int, float)) and abs(node.right.value) > _MAX_EXPONENT:
            return f"exponent {node.right.value} is above {_MAX_EXPONENT}"
        if isinstance(node, nodes.Stmt) and not isinstance(node, _STATEMENTS) and not _is_result(node):
            return f"the statement {{% {type(node).__name__.lower()} %}} is refused: templates are text, " \
                   "{{ expressions }} and {% if %} (filters such as join and map go over lists)"
    return None


def _is_result(node: nodes.Node) -> bool:
    """The `{% set __result = expr %}` an Expression is evaluated as."""
    return isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name) and node.target.name == "__result"


class Expression(_Compiled):
    """A compiled expression; `holds` is the per-event test."""

    def __init__(self, source: str, bindings: Collection[str] = (), expr: nodes.Expr | None = None) -> None:
        if expr is None:
            parser = Parser(_ENV, source, state="variable")
            try:
                expr = parser.parse_expression()
                if not parser.stream.eos:
                    raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
            except TemplateSyntaxError as err:
                raise ExpressionError(f"syntax error in {source!r}: {err.message}") from None
        # Evaluate as `{% set __result = expr %}`, like Environment.compile_expression,
        # but run against a context shared by all expressions of one event.
        ast = nodes.Template([nodes.Assign(nodes.Name("__result", "store"), expr, lineno=1)], lineno=1)
        ast.set_environment(_ENV)
        try:
            super().__init__(source, ast, bindings)
            self._render = _ENV.from_string(ast).root_render_func
        except TemplateSyntaxError as err:
            raise ExpressionError(f"{err.message} in {source!r}") from None
        self._plain = _plain_expression(expr)

    def evaluate(self, scope: Scope) -> Any:
        if self._plain is not None:
            value = self._plain(scope)
        else:
            context = scope.context
            for _ in self._render(context):
                pass
            value = context.vars["__result"]
        return None if isinstance(value, Undefined) else value

    def holds(self, scope: Scope, errors: list[str], where: str) -> bool:
        """True when the condition holds; a missing field is False, other errors are reported."""
        try:
            # bool() of an Undefined is False, as bool() of the None evaluate() makes of it.
            return bool(self._plain(scope) if self._plain is not None else self.evaluate(scope))
        except UndefinedError:
            return False
        except Exception as err:  # noqa: BLE001 - any data-dependent failure means "no match"
            errors.append(f"{where}: {type(err).__name__}: {err}")
            return False


class Template(_Compiled):
    """A compiled text template; a string that is exactly one `{{ expr }}` keeps the value's type."""

    def __init__(self, source: str, bindings: Collection[str] = ()) -> None:
        try:
            ast = _ENV.parse(source)
            super().__init__(source, ast, bindings)
            body = ast.body
            if len(body) == 1 and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1 \
                    and not isinstance(body[0].nodes[0], nodes.TemplateData):
                self._native: Expression | None = Expression(source, bindings, body[0].nodes[0])
            else:
                self._native = None
                self._template = _ENV.from_string(ast)
                self._plain = _plain_template(ast)
        except TemplateSyntaxError as err:
            raise ExpressionError(f"template error in {source!r}: {err.message}") from None

    def render(self, scope: Scope) -> Any:
        """The text (or, for a lone expression, the value); RenderedTooLarge past MAX_RENDERED_CHARS."""
        if self._native is not None:
            value = _jsonable(self._native.evaluate(scope))
            if isinstance(value, (list, dict)):
                _check_size(value, "the template's value")
            elif isinstance(value, str) and len(value) > MAX_RENDERED_CHARS:
                raise RenderedTooLarge("the template's value", len(value))
            return value
        if self._plain is not None:
            text = self._plain(scope)
            if len(text) > MAX_RENDERED_CHARS:
                raise RenderedTooLarge("the template's text", len(text))
            return text
        # Jinja2 streams its output: stop at the limit rather than build it all (a loop).
        parts, size = [], 0
        for part in self._template.root_render_func(scope.context):
            size += len(part)
            if size > MAX_RENDERED_CHARS:
                raise RenderedTooLarge("the template's text", f"over {size}")
            parts.append(part)
        return _ENV.concat(parts)


def _check_size(value: Any, what: str) -> None:
    size = len(msgspec.json.encode(value))
    if size > MAX_RENDERED_CHARS:
        raise RenderedTooLarge(f"{what} as JSON", size)


class _NotPlain(Exception):
    """The expression uses something only Jinja2 itself evaluates."""


_LITERALS = (str, int, bool, type(None))  # repr() writes them back exactly (floats: inf and nan do not)
_PLAIN_BINOPS = {nodes.Add: "+", nodes.Sub: "-", nodes.Div: "/", nodes.FloorDiv: "//",
                 nodes.And: "and", nodes.Or: "or"}
_PLAIN_UNOPS = {nodes.Not: "not ", nodes.Neg: "-", nodes.Pos: "+"}
_EVAL_CONTEXT = EvalContext(_ENV, None)  # what `context.eval_ctx` is for every expression here
_PASS_ARGS = {None: (), _PassArg.environment: (_ENV,), _PassArg.eval_context: (_EVAL_CONTEXT,)}


class _PlainPython:
    """Jinja2 AST -> the Python that Jinja2's code generator writes for it, as one plain function.

    Same calls as jinja2.compiler.CodeGenerator writes (names resolved once from the
    scope, `environment.getattr`/`getitem`, `call_binop` for the intercepted operators,
    tests and filters called directly, `str_join` for `~`), so the same values and the
    same errors; only without a template context and a generator. getattr's first case
    (a dict holding the key) is written inline: it is the common one.
    """

    def __init__(self) -> None:
        self.constants: list[Any] = []
        self.names: list[str] = []
        self.temps = 0

    def constant(self, value: Any) -> str:
        if type(value) in _LITERALS:
            return repr(value)
        self.constants.append(value)
        return f"_const[{len(self.constants) - 1}]"

    def code(self, node: nodes.Node) -> str:
        kind, code = type(node), self.code
        if kind is nodes.Const and type(node.value) in (*_LITERALS, float):
            return self.constant(node.value)
        if kind is nodes.Name and node.ctx == "load":
            if node.name not in self.names:
                self.names.append(node.name)
            return f"_n{self.names.index(node.name)}"
        if kind is nodes.Getattr:
            self.temps += 1
            obj, key = f"_t{self.temps}", repr(node.attr)
            return f"({obj}[{key}] if type({obj} := {code(node.node)}) is dict and {key} in {obj} " \
                   f"else _getattr({obj}, {key}))"
        if kind is nodes.Getitem and not isinstance(node.arg, nodes.Slice):
            return f"_getitem({code(node.node)}, {code(node.arg)})"
        if kind is nodes.Compare:
            return "(" + code(node.expr) + "".join(f" {_COMPARISONS[op.op]} {code(op.expr)}" for op in node.ops) + ")"
        if kind in _PLAIN_BINOPS:
            return f"({code(node.left)} {_PLAIN_BINOPS[kind]} {code(node.right)})"
        if kind in (nodes.Mul, nodes.Pow, nodes.Mod):
            return f"_binop(None, {node.operator!r}, {code(node.left)}, {code(node.right)})"
        if kind in _PLAIN_UNOPS:
            return f"({_PLAIN_UNOPS[kind]}{code(node.node)})"
        if kind in (nodes.Test, nodes.Filter) and node.node is not None:
            return self.call(_ENV.tests if kind is nodes.Test else _ENV.filters, node)
        if kind is nodes.Concat:
            return "_str_join((" + "".join(f"{code(n)}, " for n in node.nodes) + "))"
        if kind is nodes.CondExpr:
            otherwise = code(node.expr2) if node.expr2 is not None else self.constant(
                f"the inline if-expression on line {node.lineno} evaluated to false and no else section was defined.")
            if node.expr2 is None:
                otherwise = f"_cond_undefined({otherwise})"
            return f"({code(node.expr1)} if {code(node.test)} else {otherwise})"
        if kind is nodes.List or (kind is nodes.Tuple and node.ctx == "load"):
            items = ", ".join(code(item) for item in node.items)
            return f"[{items}]" if kind is nodes.List else f"({items}{',' if len(node.items) == 1 else ''})"
        raise _NotPlain

    def call(self, functions: Mapping[str, Callable[..., Any]], node: nodes.Test | nodes.Filter) -> str:
        function = functions.get(node.name)
        pass_arg = _PassArg.from_obj(function) if function is not None else None
        if function is None or pass_arg not in _PASS_ARGS or node.dyn_args or node.dyn_kwargs \
                or any(not k.key.isidentifier() or keyword.iskeyword(k.key) for k in node.kwargs):
            raise _NotPlain
        args = [self.constant(a) for a in _PASS_ARGS[pass_arg]] + [self.code(node.node)]
        args += [self.code(a) for a in node.args] + [f"{k.key}={self.code(k.value)}" for k in node.kwargs]
        return f"{self.constant(function)}({', '.join(args)})"

    def function(self, body: str) -> Callable[[Scope], Any]:
        lines = ["def plain(scope):"]
        for i, name in enumerate(self.names):
            lines += [f"    _n{i} = scope.get({name!r}, _missing)",
                      f"    if _n{i} is _missing: _n{i} = _undefined(name={name!r})"]
        lines.append(f"    return {body}")
        namespace = {"_const": self.constants, "_missing": missing, "_undefined": _ENV.undefined,
                     "_getattr": _ENV.getattr, "_getitem": _ENV.getitem, "_binop": _ENV.call_binop,
                     "_str_join": str_join, "_cond_undefined": Undefined}
        exec(compile("\n".join(lines), "<condition>", "exec"), namespace)  # noqa: S102 - built from the AST
        return namespace["plain"]


def _plain_expression(expr: nodes.Expr) -> Callable[[Scope], Any] | None:
    """`expr` as one Python function of a Scope, or None when it needs Jinja2 itself."""
    python = _PlainPython()
    try:
        return python.function(python.code(expr))
    except _NotPlain:
        return None


def _plain_template(ast: nodes.Template) -> Callable[[Scope], str] | None:
    """A template of text and `{{ expressions }}` (no statements) as one Python function of a Scope."""
    python = _PlainPython()
    try:
        if not all(isinstance(n, nodes.Output) for n in ast.body):
            raise _NotPlain
        parts = [repr(n.data) if isinstance(n, nodes.TemplateData) else f"str({python.code(n)})"
                 for output in ast.body for n in output.nodes]
        return python.function(f"''.join(({''.join(p + ', ' for p in parts)}))")
    except _NotPlain:
        return None


class Payload:
    """A JSON-like value whose strings are templates (the trigger's data, a synthetic event's params)."""

    def __init__(self, value: Any, bindings: Collection[str], field: str) -> None:
        self._value = _compile_tree(value, bindings, field)
        # One template is capped by itself; several may add up past the limit.
        self._many = sum(1 for _ in _templates(self._value)) > 1
        self.paths = merge_paths(t.paths for t in _templates(self._value))
        self.reads_session_id = any(t.reads_session_id for t in _templates(self._value))

    def render(self, scope: Scope) -> Any:
        """The rendered value; RenderedTooLarge if it, as JSON, is past MAX_RENDERED_CHARS."""
        value = _render_tree(self._value, scope)
        if self._many:
            _check_size(value, "the payload")
        return value


def _compile_tree(value: Any, bindings: Collection[str], field: str) -> Any:
    if isinstance(value, str):
        try:
            return Template(value, bindings)
        except ExpressionError as err:
            raise ExpressionError(f"{field}: {err}") from None
    if isinstance(value, dict):
        return {k: _compile_tree(v, bindings, f"{field}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_compile_tree(v, bindings, f"{field}[{i}]") for i, v in enumerate(value)]
    return value


def _templates(value: Any) -> Iterator[Template]:
    if isinstance(value, Template):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _templates(v)
    elif isinstance(value, list):
        for v in value:
            yield from _templates(v)


def _render_tree(value: Any, scope: Scope) -> Any:
    if isinstance(value, Template):
        return value.render(scope)
    if isinstance(value, dict):
        return {k: _render_tree(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_tree(v, scope) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    """Native template results go into JSON: generators (from filters) become lists."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    if isinstance(value, Iterable):
        return [_jsonable(v) for v in value]
    return str(value)


def _binding_paths(ast: nodes.Node, bindings: Collection[str]) -> dict[str, set[tuple[str, ...]]]:
    """Which fields of each bound event an AST reads, so state keeps those and no more.

    `cart.params.sku` -> {"cart": {("params", "sku")}}; a bare `cart` keeps the whole event.
    """
    found: dict[str, set[tuple[str, ...]]] = {}

    def chain(node: nodes.Node) -> tuple[str, tuple[str, ...]] | None:
        path = []
        while True:
            if isinstance(node, nodes.Getattr):
                path.append(node.attr)
            elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                path.append(node.arg.value)
            else:
                break
            node = node.node
        if isinstance(node, nodes.Name) and node.name in bindings:
            return node.name, tuple(reversed(path))
        return None

    def walk(node: nodes.Node) -> None:
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            # In `cart.params.get('sku')` the last attribute is a method, not a field.
            hit = chain(node.node.node)
            if hit is not None:
                found.setdefault(hit[0], set()).add(hit[1])
                for child in node.iter_child_nodes():
                    if child is not node.node:
                        walk(child)
                return
        hit = chain(node)
        if hit is not None:
            found.setdefault(hit[0], set()).add(hit[1])
            return
        for child in node.iter_child_nodes():
            walk(child)

    walk(ast)
    return found


def _reads_session_id(paths: Collection[tuple[str, ...]]) -> bool:
    """Whether `session.id` is read, or the whole session (`session | tojson`, `session[key]`...)."""
    return any(path[:1] in ((), ("id",)) for path in paths)


def merge_paths(parts: Iterable[Mapping[str, set[tuple[str, ...]]]]) -> dict[str, set[tuple[str, ...]]]:
    """Union of the bound-event fields several expressions read."""
    merged: dict[str, set[tuple[str, ...]]] = {}
    for part in parts:
        for name, paths in part.items():
            merged.setdefault(name, set()).update(paths)
    return merged


def prune(event: Mapping[str, Any], paths: Collection[tuple[str, ...]]) -> dict[str, Any]:
    """The part of an event that the given field paths read (plus its id, type and ts)."""
    if () in paths:
        return dict(event)
    kept: dict[str, Any] = {"event_id": event["event_id"], "type": event["type"], "ts": event["ts"]}
    for path in paths:
        value: Any = event
        for key in path:
            # A dict first: an ABC isinstance check costs as much as the rest of the loop.
            if not (type(value) is dict or isinstance(value, Mapping)) or key not in value:
                break
            value = value[key]
        else:
            node = kept
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
    return kept
