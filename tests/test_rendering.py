"""app/rendering.py and app/filters.py: the template contract, errors with line numbers, the sandbox and the render limits."""

from __future__ import annotations

import json
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from alertbridge import filters
from alertbridge.rendering import (
    BUILTIN_TEMPLATE_DIR,
    RenderLimits,
    TemplateError,
    builtin_template_names,
    compile_template,
    load_template_source,
    render,
)

FIXTURES = Path(__file__).parent / "fixtures"
FAST = RenderLimits(timeout_seconds=0.3)
DEFAULT = RenderLimits(max_output_bytes=1_048_576)  # the size-bomb cases are sized against 1 MiB
SPIN = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def run(source: str, payload: Any = None, limits: RenderLimits = DEFAULT, **context: Any) -> list[dict[str, Any]]:
    template = compile_template(source, "t.j2")
    return render(
        template,
        {
            "payload": payload if payload is not None else {},
            "headers": {},
            "query": {},
            "integration": "test",
            **context,
        },
        limits,
    )


def error_of(source: str, payload: Any = None, limits: RenderLimits = DEFAULT) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        run(source, payload, limits)
    return caught.value


# ---------------------------------------------------------------------------------------------------------
# The contract: JSON text in, event dicts out


@pytest.mark.parametrize(
    ("source", "events"),
    [
        ('{"action": "create", "alias": "a", "message": "m"}', [{"action": "create", "alias": "a", "message": "m"}]),
        (
            '[{"action": "close", "alias": "a"}, {"action": "close", "alias": "b"}]',
            [{"action": "close", "alias": "a"}, {"action": "close", "alias": "b"}],
        ),
        ("[]", []),
        ("\n  [ ]  \n", []),
        ('{"message": {{ payload.text | tojson }}}', [{"message": "say \"hi\" <b> & 'bye'\n"}]),
        (
            '{"n": {{ payload.n }}, "h": {{ headers["x-a"] | tojson }}, "q": {{ query.k | tojson }},'
            ' "i": {{ integration | tojson }}}',
            [{"n": 5, "h": "1", "q": "v", "i": "test"}],
        ),
    ],
)
def test_renders_events(source: str, events: list[dict[str, Any]]) -> None:
    payload = {"text": "say \"hi\" <b> & 'bye'\n", "n": 5}
    assert run(source, payload, headers={"x-a": "1"}, query={"k": "v"}) == events


def test_compiled_template_holds_name_source_and_hash() -> None:
    template = compile_template("[]", "mine")
    assert (template.name, template.source) == ("mine", "[]")
    assert template.sha256 == "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"


def test_payload_text_is_data_not_template() -> None:
    payload = json.loads((FIXTURES / "hostile" / "template_injection.json").read_bytes())
    source = (
        '[{% for a in payload.alerts %}{"message": {{ a.annotations.summary | tojson }},'
        ' "labels": {{ a.labels | tojson }}}{{ "," if not loop.last else "" }}{% endfor %}]'
    )
    events = run(source, payload)
    assert events[0]["labels"]["alertname"] == "{{ 7*7 }}"
    assert events[0]["labels"]["raw_block"] == "{% raw %}{{ not_rendered }}{% endraw %}"
    assert events[0]["message"].startswith("{{ 7*7 }} {% raw %} {{ ().__class__.__mro__ }}")
    assert "49" not in json.dumps(events)


def test_payload_is_not_modified_and_lists_cannot_be_changed() -> None:
    payload = {"tags": ["a"]}
    error = error_of("{{ payload.tags.append('b') }}[]", payload)
    assert error.kind == "runtime" and "unsafe" in error.message
    assert payload == {"tags": ["a"]}
    assert run(
        '{% set ns = namespace(tags=[]) %}{% for t in ["a", "b"] %}{% set ns.tags = ns.tags + [t] %}'
        '{% endfor %}{"tags": {{ ns.tags | tojson }}}'
    ) == [{"tags": ["a", "b"]}]


# ---------------------------------------------------------------------------------------------------------
# Errors: kind, message, line


@pytest.mark.parametrize(
    ("source", "kind", "message", "line"),
    [
        ("[\n{% for %}\n]", "syntax", "Expected an expression, got 'end of statement block'", 2),
        (
            "[\n\n{% if x %}\n]",
            "syntax",
            "Unexpected end of template. Jinja was looking for the following tags: "
            "'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.",
            4,
        ),
        ("{{ x | no_such_filter }}", "syntax", "No filter named 'no_such_filter'.", 1),
        ("[\n{{ payload.alert.summary }}\n]", "undefined", "'dict object' has no attribute 'alert'", 2),
        ('{\n"a": 1,\n"b": {{ nope | tojson }}\n}', "undefined", "'nope' is undefined", 3),
        ("[\n\n{{ fail('alerts is missing') }}\n]", "runtime", "alerts is missing", 3),
        ("{% macro m() %}\n{{ fail('in a macro') }}\n{% endmacro %}\n{{ m() }}", "runtime", "in a macro", 2),
        ("[\n{{ 1 / 0 }}]", "runtime", "ZeroDivisionError: division by zero", 2),
        ("{{ '' | from_json }}", "runtime", "from_json: invalid JSON (Expecting value at line 1 column 1)", 1),
        ("{{ [1] | labels_as_tags }}", "runtime", "labels_as_tags(): expected an object, got an array", 1),
        ("{{ 'high' | priority({'high': 'urgent'}) }}", "runtime", "priority(): 'urgent' is not one of P1..P5", 1),
        (
            "[]\n{% include 'other.j2' %}",
            "syntax",
            "include, import and extends are not available: a payload "
            "template is self-contained (define macros in the same template)",
            2,
        ),
        (
            "{% import 'm.j2' as m %}[]",
            "syntax",
            "include, import and extends are not available: a payload "
            "template is self-contained (define macros in the same template)",
            1,
        ),
        (
            '{"message": "a" "b"}',
            "output",
            "the rendered output is not valid JSON: Expecting ',' delimiter at line 1 column 17, "
            'near \'{"message": "a" \' >>> \'"b"}\'',
            None,
        ),
        (
            '"just a string"',
            "output",
            "the rendered JSON is a string; expected an event object or an array of them",
            None,
        ),
        ("null", "output", "the rendered JSON is null; expected an event object or an array of them", None),
        ('[{"a": 1}, [2]]', "output", "item 1 of the rendered array is an array; each event must be an object", None),
        ("  \n ", "output", "the template rendered nothing; render [] for no events", None),
        ('{"a": NaN}', "output", "the rendered output is not usable JSON: NaN is not valid JSON", None),
    ],
)
def test_errors(source: str, kind: str, message: str, line: int | None) -> None:
    error = error_of(source)
    assert (error.kind, error.message, error.line) == (kind, message, line)
    assert error.to_dict() == {"kind": kind, "message": message, "line": line}


def test_bad_json_snippet_is_short() -> None:
    error = error_of('{"message": "' + "x" * 5000 + '" oops "' + "y" * 5000 + '"}')
    assert error.kind == "output"
    assert "oops" in error.message and len(error.message) < 250


def test_template_error_str_and_pickle() -> None:
    error = TemplateError("undefined", "'x' is undefined", 3)
    assert str(error) == "'x' is undefined (template line 3)"
    assert str(TemplateError("output", "bad")) == "bad"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.kind, copy.message, copy.line) == ("undefined", "'x' is undefined", 3)


# ---------------------------------------------------------------------------------------------------------
# The sandbox


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ().__class__.__mro__[1].__subclasses__() }}",
        "{{ ''|attr('__class__') }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__['os'] }}",
        "{{ payload.get.__self__.__class__ }}",
        "{{ '{0.__class__}'.format('') }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{% endfor %}",
    ],
)
def test_sandbox_blocks_escapes(source: str) -> None:
    error = error_of(source)
    assert error.kind in ("runtime", "undefined")
    assert "unsafe" in error.message or "undefined" in error.message or "attribute" in error.message
    assert error.line == 1


@pytest.mark.parametrize(
    "source", ["{{ lipsum(5) }}", "{{ config }}", "{{ request }}", "{{ self._TemplateReference__context }}"]
)
def test_dangerous_or_missing_globals(source: str) -> None:
    assert error_of(source).kind in ("undefined", "runtime")


# ---------------------------------------------------------------------------------------------------------
# Limits: time, size, events, recursion


def test_nested_range_loop_stops_at_the_deadline() -> None:
    started = time.monotonic()
    error = error_of("[\n" + SPIN + "]", limits=FAST)
    assert time.monotonic() - started < 2
    assert (error.kind, error.message, error.line) == ("timeout", "rendering took longer than 0.3 s", 2)


@pytest.mark.parametrize(
    "source",
    [
        # loops over plain lists, with empty bodies: every loop iteration checks the deadline
        "{% set l = range(100000) | list %}{% for i in l %}{% for j in l %}{% endfor %}{% endfor %}[]",
        # C-level loops fed by a guarded iterator
        "{{ range(100000) | batch(1) | sum(start=[]) }}",
        # recursion through a loop
        "{% for i in range(100000) %}{{ range(100000) | join }}{% endfor %}",
    ],
)
def test_other_slow_templates_stop_at_the_deadline(source: str) -> None:
    started = time.monotonic()
    error = error_of(source, limits=FAST)
    assert error.kind in ("timeout", "too_large") and time.monotonic() - started < 2


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10**9 }}",
        "{{ 10 ** (10**8) }}",
        "{{ [1, 2] * 10**9 }}",
        "{{ 10**9 * 'x' }}",
        "{% set a = 10**600000 %}{{ a * a }}",
        "{{ 'x' | center(1000000000) }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ 'x'.zfill(10**9) }}",
        "{{ ('\t' * 1000000).expandtabs(1000) }}",
        "{{ '{:>1000000000}'.format(1) }}",
        "{{ '{:>{w}}'.format(1, w=10**9) }}",
        "{{ '%1000000000s' % 'x' }}",
        "{{ '%*s' % (10**9, 'x') }}",
        "{{ '%1000000000s' | format('x') }}",
        "{{ ('x' * 1000000) | replace('x', 'x' * 1000000) }}",
        "{{ ('x' * 1000000).replace('x', 'xx') }}",
        "{{ range(100000) | join('x' * 1000000) }}",
        "{{ ('x' * 1000000).join(range(1000) | list) }}",
        "{{ ('x' * 1000000).join(range(1000) | map('string')) }}",
        "{% set x = ('x' * 1000000).encode() %}{{ x.replace('x'.encode(), 'xx'.encode()) }}",
        "{{ ('%1000000000s'.encode()) % 'x'.encode() }}",
        "{{ ('a\n' * 100000) | indent('x' * 100000) }}",
        "{{ [1] | batch(10**9, 'x') | list }}",
        "{{ [[1]] | tojson(indent=10**8) }}",
        "{{ range(10**9) | list }}",
        "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}[]",
        "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}[]",
        "{{ ('&' * 500000) | forceescape | forceescape | forceescape }}",
        # text captured by set blocks never reaches the output, but still counts
        "{% set big %}{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}{% endset %}[]",
        "{% set big %}{% for i in range(100000) %}" + "y" * 10_000 + "{% endfor %}{% endset %}[]",
        "{% macro m() %}{{ 'x' * 1000000 }}{% endmacro %}{% for i in range(100) %}{% set _ = m() %}{% endfor %}[]",
        # plain output
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    ],
)
def test_size_bombs_are_refused_quickly(source: str) -> None:
    started = time.monotonic()
    error = error_of(source)
    assert error.kind == "too_large", error
    assert time.monotonic() - started < 1


def test_output_limit_counts_utf8_bytes() -> None:
    limits = RenderLimits(max_output_bytes=100)
    assert run('{"m": "' + "é" * 40 + '"}', limits=limits) == [{"m": "é" * 40}]  # 89 bytes
    error = error_of('{"m": "' + "é" * 50 + '"}', limits=limits)  # 109 bytes
    assert (error.kind, error.message) == ("too_large", "the output is larger than 100 bytes")


def test_max_events() -> None:
    source = (
        '[{% for i in range(n) %}{"action": "close", "alias": "{{ i }}"}{{ "," if not loop.last else "" }}{% endfor %}]'
    )
    assert len(render(compile_template(source), {"n": 5}, RenderLimits(max_events=5))) == 5
    with pytest.raises(TemplateError) as caught:
        render(compile_template(source), {"n": 6}, RenderLimits(max_events=5))
    assert (caught.value.kind, caught.value.message) == ("event", "the template produced 6 events; the limit is 5")


def test_recursion_is_an_error() -> None:
    error = error_of("[\n{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}\n{{ r(0) }}]")
    assert error.kind == "runtime"
    assert error.message == "recursion too deep (does a macro call itself without end?)"
    assert error.line == 2


def test_ordinary_work_is_not_limited() -> None:
    source = """[
{% for i in range(1000) %}
  {"action": "create", "alias": {{ ("a" ~ i) | tojson }}, "message": {{ ("x" * 100) | tojson }},
   "tags": {{ (["a", "b"] * 3) | tojson }}, "n": {{ 2 ** 64 }}, "s": {{ ("%05d" % i) | tojson }},
   "f": {{ "{:>8}".format(i) | tojson }}}{{ "," if not loop.last else "" }}
{% endfor %}
]"""
    events = run(source, limits=RenderLimits(timeout_seconds=5))
    assert len(events) == 1000 and events[7]["s"] == "00007" and events[7]["f"] == "       7"
    assert events[0]["n"] == 2**64


def test_deadlines_are_per_render_across_threads() -> None:
    """Two renders at once in two threads: one spins into its 0.2 s deadline; the other sleeps past that
    moment (a real time.sleep passed in the context), then keeps checking its own 10 s deadline and completes."""
    spin = compile_template(SPIN + "[]")
    work = compile_template("{% set _ = pause(0.5) %}{% for i in range(10000) %}{% endfor %}[{}]")
    results: dict[str, Any] = {}

    def go(key: str, template: Any, limits: RenderLimits) -> None:
        started = time.monotonic()
        try:
            results[key] = render(template, {"pause": time.sleep}, limits)
        except TemplateError as exc:
            results[key] = exc
        results[key + "_seconds"] = time.monotonic() - started

    threads = [
        threading.Thread(target=go, args=("work", work, RenderLimits(timeout_seconds=10))),
        threading.Thread(target=go, args=("spin", spin, RenderLimits(timeout_seconds=0.2))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert isinstance(results["spin"], TemplateError) and results["spin"].kind == "timeout"
    assert results["spin_seconds"] < 0.45  # not held up by the other render
    assert results["work"] == [{}]
    assert results["work_seconds"] >= 0.5  # outlived the other render's deadline


def test_no_state_leaks_between_renders() -> None:
    with pytest.raises(TemplateError):
        run(SPIN, limits=FAST)
    assert run("[{% for i in range(10) %}{% endfor %}]") == []


# ---------------------------------------------------------------------------------------------------------
# Filters and globals


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("'critical' | priority", "P1"),
        ("' FATAL ' | priority", "P1"),
        ("'error' | priority", "P2"),
        ("'High' | priority", "P2"),
        ("'warning' | priority", "P3"),
        ("'minor' | priority", "P3"),
        ("'info' | priority", "P4"),
        ("'low' | priority", "P4"),
        ("'debug' | priority", "P5"),
        ("'p2' | priority", "P2"),
        ("'whatever' | priority", "P3"),
        ("none | priority", "P3"),
        ("'whatever' | priority(default='p4')", "P4"),
        ("'whatever' | priority(default=none)", None),
        ("'sev0' | priority({'SEV0': 'P1', 'warning': 'P5'})", "P1"),
        ("'warning' | priority({'SEV0': 'P1', 'warning': 'p5'})", "P5"),
        ("'abc' | sha256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "{'b': '2', 'a': '1', 'n': none, 'e': '', 't': true, 'x': 1.5} | labels_as_tags",
            ["a:1", "b:2", "t:true", "x:1.5"],
        ),
        ("{'b': '2', 'a': '1', 'c': '3'} | labels_as_tags(keys=['c', 'a', 'zz'])", ["a:1", "c:3"]),
        ("{'b': '2', 'a': '1', 'c': '3'} | labels_as_tags(exclude=['b'])", ["a:1", "c:3"]),
        ("('🔥' * 200) | truncate_chars(130)", "🔥" * 129 + "…"),
        ("'abcdef' | truncate_chars(4, end='.')", "abc."),
        ("1789374692 | iso8601", "2026-09-14T08:31:32Z"),
        ("1789374692481 | iso8601", "2026-09-14T08:31:32.481Z"),
        ("1789374692.5 | iso8601", "2026-09-14T08:31:32.500Z"),
        ("1789375031937002246 | iso8601", "2026-09-14T08:37:11.937002Z"),
        ("'1789374692' | iso8601", "2026-09-14T08:31:32Z"),
        ("'2026-09-14T08:11:32.481Z' | iso8601", "2026-09-14T08:11:32.481Z"),
        ("'2026-09-14T10:11:32+02:00' | iso8601", "2026-09-14T08:11:32Z"),
        ("'2026-09-14T08:11:32.481123456Z' | iso8601", "2026-09-14T08:11:32.481123Z"),
        ("'2026-09-14 08:11' | iso8601", "2026-09-14T08:11:00Z"),
        ("'0001-01-01T00:00:00Z' | iso8601", "0001-01-01T00:00:00Z"),
        ("'yesterday' | iso8601", "yesterday"),
        ("'' | iso8601", ""),
        ("none | iso8601", None),
        ("(10**30) | iso8601", 10**30),
        ("'{\"a\": [1, 2]}' | from_json", {"a": [1, 2]}),
        ("{'b': 1, 'a': 'é<'} | tojson", '{"a": "é\\u003c", "b": 1}'),
        ("range(3) | list", [0, 1, 2]),
        ("range(5) | length", 5),
        ("range(5)[1:3] | list", [1, 2]),
        ("range(3) | reverse | list", [2, 1, 0]),
    ],
)
def test_filters(expression: str, expected: Any) -> None:
    assert run('{"value": {{ (' + expression + ") | tojson }}}") == [{"value": expected}]


def test_from_json_refuses_deep_nesting() -> None:
    error = error_of("{{ payload.s | from_json }}", {"s": "[" * 100_000 + "]" * 100_000})
    assert error.kind == "runtime" and error.message.startswith("from_json: ")


# ---------------------------------------------------------------------------------------------------------
# Loading templates


def test_builtin_templates() -> None:
    assert Path(__file__).resolve().parent.parent / "templates" == BUILTIN_TEMPLATE_DIR
    names = builtin_template_names()
    assert names == sorted(p.stem for p in BUILTIN_TEMPLATE_DIR.glob("*.j2"))
    assert {"alertmanager", "generic"} <= set(names)
    name, source = load_template_source("alertmanager")
    assert name == "alertmanager" and source == (BUILTIN_TEMPLATE_DIR / "alertmanager.j2").read_text("utf-8")


def test_load_template_from_a_path(tmp_path: Path) -> None:
    (tmp_path / "mine.j2").write_bytes(b"\xef\xbb\xbf[]")  # a BOM is dropped
    assert load_template_source("mine.j2", tmp_path) == ("mine.j2", "[]")
    assert load_template_source(str(tmp_path / "mine.j2")) == (str(tmp_path / "mine.j2"), "[]")
    assert load_template_source("./mine.j2", tmp_path)[1] == "[]"


@pytest.mark.parametrize("ref", ["nope", "nope.j2", "/does/not/exist.j2", "."])
def test_load_template_not_found(ref: str, tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        load_template_source(ref, tmp_path)
    assert caught.value.kind == "not_found"
    assert caught.value.message.endswith(f"(built-in templates: {', '.join(builtin_template_names())})")


def test_load_template_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "bad.j2").write_bytes(b"[\xff]")
    with pytest.raises(TemplateError) as caught:
        load_template_source("bad.j2", tmp_path)
    assert (caught.value.kind, caught.value.message) == ("syntax", "template 'bad.j2' is not valid UTF-8 (byte 1)")


# ---------------------------------------------------------------------------------------------------------
# docs/templates.md stays in sync


def test_docs_list_every_filter_global_and_priority_word() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "templates.md").read_text("utf-8")
    for name in [*filters.FILTERS, *filters.GLOBALS]:
        assert f"| {name}" in docs or f"`{name}(" in docs, name
    table = {}
    for line in docs.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0] in ("P1", "P2", "P3", "P4", "P5"):
            table.update(dict.fromkeys((word.strip() for word in cells[1].split(",")), cells[0]))
    assert table == filters._SEVERITY_PRIORITY
