"""Payload templates: a webhook payload + an admin-editable Jinja template -> a list of raw event dicts.

A payload template renders JSON text: one event object, or an array of zero or more event objects
(docs/templates.md). Templates and payloads are both untrusted, so rendering runs in a sandbox
(`ImmutableSandboxedEnvironment`, strict undefined) with limits per render:

- time: a deadline kept in a ContextVar and checked on every call, attribute/item lookup, loop iteration,
  `range` step, intercepted operator, filter and output chunk. No threads or signals are used, so one
  environment serves many threads at once; all per-render state lives in the ContextVar.
- size: output is cut off past `max_output_bytes` (UTF-8); operators, filters and str methods that could
  build a value larger than that are refused before they run; everything the template writes, including
  text captured by `{% set %}` blocks and macros, counts towards 4 x that limit.
- events: at most `max_events`; recursion depth: Python's, reported as an error.

Payload text is only ever data: nothing from the payload is compiled as a template.

Built-in templates are the package `alertbridge.templates` (the folder `templates/` of the repository, mapped into
the installed package by pyproject.toml), so they are found from a checkout, an editable install and a wheel.

Base layer: imports nothing from `app`.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib.util
import inspect
import json
import math
import re
import string
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Template, nodes, pass_context
from jinja2.exceptions import SecurityError, TemplateRuntimeError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import Context, StrictUndefined, Undefined
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from alertbridge.filters import FILTERS, GLOBALS, FilterError, PayloadFault, type_name


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


BUILTIN_TEMPLATE_DIR: Path = _package_dir("alertbridge.templates")

KINDS = ("syntax", "undefined", "runtime", "output", "timeout", "too_large", "event", "not_found", "payload")


class TemplateError(Exception):
    """Anything that went wrong with a template, as one human-readable message (never a stack trace).

    kind: syntax | undefined | runtime | output | timeout | too_large | event | not_found, or "payload": the
      template said the payload lacks something (`fail_payload`, `require`): the sender's error, not the template's.
    line: the template source line, when known.
    field: for "payload", what the payload lacks, when the template named it.
    """

    def __init__(self, kind: str, message: str, line: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.line = line
        self.field = field

    def __str__(self) -> str:
        return self.message if self.line is None else f"{self.message} (template line {self.line})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message, self.line, self.field))

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"kind": self.kind, "message": self.message, "line": self.line}
        if self.field is not None:
            result["field"] = self.field
        return result


@dataclass(frozen=True)
class RenderLimits:
    timeout_seconds: float = 2.0
    max_output_bytes: int = 4_194_304
    max_events: int = 1000


@dataclass(frozen=True, eq=False)
class CompiledTemplate:
    name: str
    source: str
    sha256: str  # hex sha256 of the UTF-8 source
    template: Template = field(repr=False)


# ---------------------------------------------------------------------------------------------------------
# Per-render state and the checks that use it


@dataclass
class _RenderState:
    limits: RenderLimits
    deadline: float
    written: int = 0  # characters written by the template anywhere (see _finalize)


_STATE: ContextVar[_RenderState | None] = ContextVar("alertbridge_render_state", default=None)
_WRITE_BUDGET_FACTOR = 4


def _check_deadline() -> None:
    state = _STATE.get()
    if state is not None and time.monotonic() > state.deadline:
        raise TemplateError("timeout", f"rendering took longer than {state.limits.timeout_seconds:g} s")


def _cap() -> int:
    state = _STATE.get()
    return (state.limits if state is not None else RenderLimits()).max_output_bytes


def _check_size(size: int, what: str) -> None:
    """Refuse an operation that multiplies (`*`, `**`, widths, padding) past the output size limit."""
    if size > _cap():
        raise TemplateError("too_large", f"{what} would be larger than the output limit of {_cap()} bytes")


def _check_result(value: Any, what: str) -> Any:
    """Refuse a value built by adding or transforming (`+`, `~`, filters) past the write budget (4 x the
    output limit): payload-sized values pass, repeated doubling or escaping does not."""
    if isinstance(value, (str, bytes, list, tuple)) and len(value) > _cap() * _WRITE_BUDGET_FACTOR:
        raise TemplateError("too_large", f"{what} is larger than {_cap() * _WRITE_BUDGET_FACTOR} characters")
    return value


def _digits(number: int) -> int:
    return int(number.bit_length() * 0.30103) + 1


def _binop_size(operator: str, left: Any, right: Any) -> int:
    """Estimated size (characters, items or decimal digits) of `left <operator> right`; 0 if small or unknown."""
    if operator == "*":
        if isinstance(left, int) and not isinstance(right, int):
            left, right = right, left
        if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, int):
            return len(left) * max(right, 0)
        if isinstance(left, int) and isinstance(right, int):
            return _digits(left) + _digits(right)
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            return int(right * math.log10(abs(left))) + 1
    elif operator == "%" and isinstance(left, (str, bytes)):
        _check_percent_format(left if isinstance(left, str) else left.decode("latin-1"), right)
    return 0


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_widths(widths: Sequence[str], args: Any) -> None:
    """Refuse format widths/precisions over the size limit, literal or taken from the arguments ("*", "{w}")."""
    for width in widths:
        if width.isdigit():
            _check_size(int(width), "a format width")
        elif width:
            values = args.values() if isinstance(args, Mapping) else args if isinstance(args, tuple) else (args,)
            for value in values:
                if isinstance(value, int):
                    _check_size(value, "a format width")


def _check_percent_format(fmt: str, args: Any) -> None:
    _check_widths([width for match in _PERCENT_SPEC.finditer(fmt) for width in match.groups() if width], args)


def _check_str_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    try:
        specs = [spec for _, _, spec, _ in string.Formatter().parse(fmt) if spec]
    except ValueError:
        return  # malformed: str.format will say so
    widths = [w for spec in specs for w in (re.findall(r"\d+", spec) + (["*"] if "{" in spec else []))]
    _check_widths(widths, (*args, *kwargs.values()))


def _text_method(obj: Any) -> types.BuiltinMethodType | None:
    """`obj` as a bound str/bytes method (seeing through the sandbox's str.format wrapper), else None."""
    wrapped = getattr(obj, "__wrapped__", None) if isinstance(obj, types.FunctionType) else None
    if wrapped is not None:
        obj = wrapped
    if isinstance(obj, types.BuiltinMethodType) and isinstance(obj.__self__, (str, bytes)):
        return obj
    return None


def _check_str_method(
    method: types.BuiltinMethodType, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Size checks for the str/bytes methods that can build huge strings from small inputs. Returns the
    arguments to call with (an iterable given to join() is read first, to be measured)."""
    text, name = method.__self__, method.__name__
    if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
        _check_size(args[0], f"str.{name}()")
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            _check_size(len(text) + text.count("\t") * tabsize, "str.expandtabs()")
    elif name == "replace" and len(args) >= 2:
        _check_size(_replace_size(text, args[0], args[1], args[2] if len(args) > 2 else None), "str.replace()")
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], Sequence) else list(_guarded_iter(args[0]))
        _check_size(len(text) * max(len(items) - 1, 0), "str.join()")
        args = (items, *args[1:])
    elif name == "format" and isinstance(text, str):
        _check_str_format(text, args, kwargs)
    elif name == "format_map" and isinstance(text, str) and args and isinstance(args[0], Mapping):
        _check_str_format(text, (), args[0])
    return args


def _replace_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    if not (isinstance(old, type(text)) and isinstance(new, type(text))):
        return 0
    occurrences = text.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * (len(new) - len(old))


def _guarded_iter(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _check_deadline()
        yield item


class _GuardedRange(Sequence[int]):
    """`range` for templates: at most MAX_RANGE items (like the sandbox's), checking the deadline per step."""

    def __init__(self, *args: int) -> None:
        self._range = range(*args)
        if len(self._range) > MAX_RANGE:
            raise TemplateError("too_large", f"range() of {len(self._range)} items is over the limit of {MAX_RANGE}")

    def __iter__(self) -> Iterator[int]:
        return _guarded_iter(self._range)

    def __reversed__(self) -> Iterator[int]:
        return _guarded_iter(reversed(self._range))

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index: Any) -> Any:
        return self._range[index]

    def __contains__(self, value: object) -> bool:
        return value in self._range

    def __repr__(self) -> str:
        return repr(self._range)


# Checks run before a built-in filter, given its bound arguments: parameters that multiply the size of the
# result, and iterables a C-level loop would consume without checking the deadline.
def _pre_center(a: dict[str, Any]) -> None:
    if isinstance(a.get("width"), int):
        _check_size(a["width"], "center()")


def _pre_indent(a: dict[str, Any]) -> None:
    width = a.get("width")
    unit = width if isinstance(width, int) else len(width) if isinstance(width, str) else 0
    _check_size(len(str(a["s"])) + (str(a["s"]).count("\n") + 1) * unit, "indent()")


def _pre_replace(a: dict[str, Any]) -> None:
    _check_size(_replace_size(str(a["s"]), a["old"], a["new"], a.get("count")), "replace()")


def _pre_format(a: dict[str, Any]) -> None:
    if isinstance(a["value"], str):
        _check_percent_format(a["value"], a.get("kwargs") or tuple(a.get("args", ())))


def _pre_wordwrap(a: dict[str, Any]) -> None:
    text, width, wrap = str(a["s"]), a.get("width"), a.get("wrapstring")
    if isinstance(width, int) and isinstance(wrap, str):
        _check_size(len(text) + (len(text) // max(width, 1) + 1) * len(wrap), "wordwrap()")


def _pre_join(a: dict[str, Any]) -> None:
    a["value"] = list(_guarded_iter(a["value"]))
    if isinstance(a.get("d"), str):
        _check_size(len(a["d"]) * max(len(a["value"]) - 1, 0), "join()")


def _pre_sum(a: dict[str, Any]) -> None:
    a["iterable"] = _guarded_iter(a["iterable"])


def _pre_batch(a: dict[str, Any]) -> None:
    if isinstance(a.get("linecount"), int):
        _check_size(a["linecount"], "batch()")


def _pre_slice(a: dict[str, Any]) -> None:
    if isinstance(a.get("slices"), int) and a["slices"] > MAX_RANGE:
        raise TemplateError("too_large", f"slice() into {a['slices']} parts is over the limit of {MAX_RANGE}")


def _pre_tojson(a: dict[str, Any]) -> None:
    indent = a.get("indent")
    if (isinstance(indent, int) and indent > 32) or (isinstance(indent, str) and len(indent) > 32):
        raise TemplateError("too_large", "tojson(): indent is limited to 32")


_PRECHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "replace": _pre_replace,
    "format": _pre_format,
    "wordwrap": _pre_wordwrap,
    "join": _pre_join,
    "sum": _pre_sum,
    "batch": _pre_batch,
    "slice": _pre_slice,
    "tojson": _pre_tojson,
}


_ACCEPTS_UNDEFINED = frozenset({"default", "d"})


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter: deadline check, undefined input, its precheck (if any), a size check of the result."""
    precheck = _PRECHECKS.get(name)
    signature = inspect.signature(func) if precheck else None
    value_at = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # after context/environment

    @functools.wraps(func)  # keeps jinja's pass_context/pass_environment marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        if name not in _ACCEPTS_UNDEFINED and len(args) > value_at and isinstance(args[value_at], Undefined):
            str(args[value_at])  # StrictUndefined raises its "'x' is undefined" error here
        # Every precheck is about parameters: a call with the value alone uses the (harmless) defaults.
        if signature is not None and precheck is not None and (kwargs or len(args) > value_at + 1):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                pass  # wrong arguments: let the filter raise its own error
            else:
                bound.apply_defaults()
                precheck(bound.arguments)
                args, kwargs = bound.args, bound.kwargs
        return _check_result(func(*args, **kwargs), f"the result of the {name!r} filter")

    return guarded


def _guard_loop(iterable: Any) -> Iterator[Any]:
    """Inserted around every `for` loop's iterable: one deadline check per iteration."""
    _check_deadline()
    return _guarded_iter(iterable)


def _guard_concat(value: Any) -> Any:
    """Inserted around every `~` concatenation."""
    return _check_result(value, "the concatenated text")


@pass_context
def _finalize(context: Context, value: Any) -> Any:
    """Runs on every piece of output, wherever it goes (the result, a `{% set %}` block, a macro)."""
    state = _STATE.get()
    if state is not None and not isinstance(value, Undefined):
        _check_deadline()
        state.written += len(value) if isinstance(value, str) else len(str(value))
        budget = state.limits.max_output_bytes * _WRITE_BUDGET_FACTOR
        if state.written > budget:
            raise TemplateError(
                "too_large",
                f"the template wrote more than {budget} characters in total "
                "(counting text captured by set blocks, macros and filter blocks)",
            )
    return value


class _AddGuards(NodeTransformer):
    """Rewrites a parsed template before compiling: guarded loops, guarded `~`, and literal text routed
    through finalize (so that literal text in loops counts towards the write budget)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_guard_loop", [], [], None, None, lineno=node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, "_guard_concat", [], [], None, None, lineno=node.lineno)

    def _refuse(self, node: nodes.Node) -> nodes.Node:
        raise TemplateSyntaxError(
            "include, import and extends are not available: a payload template is self-contained "
            "(define macros in the same template)",
            node.lineno,
        )

    visit_Include = visit_Import = visit_FromImport = visit_Extends = _refuse

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [
            nodes.Const(child.data, lineno=child.lineno) if isinstance(child, nodes.TemplateData) else child
            for child in node.nodes
        ]
        return node


_SAFE_DICT_METHODS = frozenset({"get", "items", "keys", "values"})
_DICT_ATTRIBUTES = frozenset(dir(dict))


class PayloadEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox payload templates run in. Safe to share between threads: per-render state is in _STATE.

    Immutable: templates cannot modify lists or dicts (`append`, `update`, ...), so the payload the caller
    passed in is never changed; build values with `+`, `namespace()` and filters instead.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            optimized=False,  # constant folding would run filters at compile time, outside every limit
            finalize=_finalize,
            auto_reload=False,
        )
        del self.globals["lipsum"]  # lipsum(n) builds text in one uninterruptible call
        self.globals["range"] = _GuardedRange
        self.globals.update(GLOBALS)
        self.filters.update(FILTERS)
        self.filters = {name: _guard_filter(name, func) for name, func in self.filters.items()}
        self.filters["_guard_loop"] = _guard_loop
        self.filters["_guard_concat"] = _guard_concat
        self.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        method = _text_method(obj)
        if method is None:
            return super().call(context, obj, *args, **kwargs)
        args = _check_str_method(method, args, kwargs)
        return _check_result(super().call(context, obj, *args, **kwargs), f"the result of {method.__name__}()")

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_deadline()
        if type(obj) is dict and type(attribute) is str:
            # The common case (payload.alerts, alert.get(...)), answered as SandboxedEnvironment.getattr answers it,
            # without its per-call safety checks: those read-only dict methods are safe, and a name that is no
            # attribute of dict at all is looked up as a key.
            if attribute in _SAFE_DICT_METHODS:
                return getattr(obj, attribute)
            if attribute not in _DICT_ATTRIBUTES:
                try:
                    return obj[attribute]
                except KeyError:
                    return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_deadline()
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_deadline()
        _check_size(_binop_size(operator, left, right), f"the result of {operator!r}")
        return _check_result(super().call_binop(context, operator, left, right), f"the result of {operator!r}")


_ENV = PayloadEnvironment()


# ---------------------------------------------------------------------------------------------------------
# Public API


def builtin_template_names() -> list[str]:
    return sorted(path.stem for path in BUILTIN_TEMPLATE_DIR.glob("*.j2"))


_BUILTIN_NAME = re.compile(r"[A-Za-z0-9_-]+")


def load_template_source(ref: str, base_dir: Path | None = None) -> tuple[str, str]:
    """Read a template: `ref` is a built-in name ("alertmanager") or a path to a .j2 file (relative paths
    resolve against `base_dir`, default the working directory). Returns (name, source)."""
    builtins = builtin_template_names()
    if _BUILTIN_NAME.fullmatch(ref):
        name, path = ref, BUILTIN_TEMPLATE_DIR / f"{ref}.j2"
        missing = f"no built-in template named {ref!r}"
        close = difflib.get_close_matches(ref.lower(), builtins, n=1, cutoff=0.6)
        if close:
            missing += f"; did you mean {close[0]!r}?"
    else:
        path = Path(ref).expanduser()
        if not path.is_absolute():
            path = (base_dir if base_dir is not None else Path.cwd()) / path
        name, missing = ref, f"template file {str(path)!r} not found"
        if path.suffix == ".j2" and path.stem in builtins:  # e.g. "templates/grafana.j2" copied from the repo
            missing += f"; did you mean the built-in template {path.stem!r} (template = {json.dumps(path.stem)})?"
    try:
        if not path.is_file():
            raise FileNotFoundError(path)
        data = path.read_bytes()
    except OSError:
        raise TemplateError("not_found", f"{missing} (built-in templates: {', '.join(builtins)})") from None
    try:
        return name, data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TemplateError("syntax", f"template {ref!r} is not valid UTF-8 (byte {exc.start})") from None


def compile_template(source: str, name: str = "template") -> CompiledTemplate:
    """Compile template source; raises TemplateError(kind="syntax", line=...)."""
    try:
        tree = _AddGuards().visit(_ENV.parse(source, name=name, filename=name))
        code = _ENV.compile(tree, name=name, filename=name)
        template = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None))
    except TemplateSyntaxError as exc:
        raise TemplateError("syntax", exc.message or str(exc), exc.lineno) from None
    except RecursionError:
        raise TemplateError("syntax", "the template is nested too deeply") from None
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    return CompiledTemplate(name=name, source=source, sha256=digest, template=template)


def _template_line(exc: BaseException, name: str) -> int | None:
    """The template line of the innermost template frame (Jinja rewrites those frames to template lines)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == name:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _as_template_error(exc: Exception, name: str) -> TemplateError:
    line = _template_line(exc, name)
    if isinstance(exc, PayloadFault):
        return TemplateError("payload", exc.message, line, exc.field)
    if isinstance(exc, FilterError):
        return TemplateError("runtime", exc.message, line)
    if isinstance(exc, SecurityError):
        return TemplateError("runtime", f"blocked by the sandbox: {exc}", line)
    if isinstance(exc, UndefinedError):
        return TemplateError("undefined", str(exc), line)
    if isinstance(exc, TemplateSyntaxError):
        return TemplateError("syntax", exc.message or str(exc), exc.lineno)
    if isinstance(exc, RecursionError):
        return TemplateError("runtime", "recursion too deep (does a macro call itself without end?)", line)
    if isinstance(exc, MemoryError):
        return TemplateError("too_large", "out of memory while rendering", line)
    if isinstance(exc, TemplateRuntimeError):
        return TemplateError("runtime", str(exc), line)
    return TemplateError("runtime", f"{type(exc).__name__}: {exc}", line)


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _snippet(text: str, pos: int, width: int = 40) -> str:
    before, after = text[max(0, pos - width) : pos], text[pos : pos + width]
    return f"{before!r} >>> {after!r}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_output(text: str, limits: RenderLimits) -> list[dict[str, Any]]:
    if not text.strip():
        raise TemplateError("output", "the template rendered nothing; render [] for no events")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            "output",
            f"the rendered output is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}, "
            f"near {_snippet(text, exc.pos)}",
        ) from None
    except (ValueError, RecursionError) as exc:
        raise TemplateError("output", f"the rendered output is not usable JSON: {exc or 'nested too deeply'}") from None
    events = [data] if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise TemplateError(
            "output", f"the rendered JSON is {type_name(data)}; expected an event object or an array of them"
        )
    if len(events) > limits.max_events:
        raise TemplateError("event", f"the template produced {len(events)} events; the limit is {limits.max_events}")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise TemplateError(
                "output", f"item {index} of the rendered array is {type_name(event)}; each event must be an object"
            )
    return events


def render(
    template: CompiledTemplate, context: Mapping[str, Any], limits: RenderLimits = RenderLimits()
) -> list[dict[str, Any]]:
    """Render `template` with `context` (payload, headers, query, integration) into raw event dicts.

    A rendered object gives [object]; an array gives its items. Raises TemplateError.
    """
    state = _RenderState(limits=limits, deadline=time.monotonic() + limits.timeout_seconds)
    token = _STATE.set(state)
    chunks: list[str] = []
    size = 0
    try:
        stream = template.template.generate(dict(context))
        try:
            for chunk in stream:
                _check_deadline()
                size += _utf8_len(chunk)
                if size > limits.max_output_bytes:
                    raise TemplateError("too_large", f"the output is larger than {limits.max_output_bytes} bytes")
                chunks.append(chunk)
        finally:
            stream.close()
    except TemplateError as exc:
        if exc.line is None:
            exc.line = _template_line(exc, template.name)
        raise
    except RecursionError as exc:
        raise _as_template_error(exc, template.name) from None
    except Exception as exc:
        raise _as_template_error(exc, template.name) from exc
    finally:
        _STATE.reset(token)
    return _parse_output("".join(chunks), limits)
