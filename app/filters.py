"""The functions payload templates may call: filters (`value | priority`) and globals (`fail(...)`).

To add one: write a small function here and add it to FILTERS or GLOBALS; docs/templates.md lists them (a test
checks). They run inside the sandbox (app.rendering wraps every filter with its deadline and size checks) and
raise FilterError, which becomes a "runtime" template error carrying the template line (PayloadFault: a "payload"
error). Imports only app.text of ours.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context, Undefined

from alertbridge.text import truncate_chars as _truncate


class FilterError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_SEVERITY_PRIORITY = {
    **dict.fromkeys(("critical", "crit", "fatal", "emergency", "emerg", "alert", "disaster", "p1"), "P1"),
    **dict.fromkeys(("high", "error", "err", "major", "severe", "p2"), "P2"),
    **dict.fromkeys(("warning", "warn", "medium", "moderate", "average", "minor", "p3"), "P3"),
    **dict.fromkeys(("low", "info", "informational", "information", "notice", "p4"), "P4"),
    **dict.fromkeys(("debug", "trace", "verbose", "lowest", "p5"), "P5"),
}
_PRIORITIES = ("P1", "P2", "P3", "P4", "P5")


def type_name(value: Any) -> str:
    """JSON's name for the value's type, with an article: "an object", "a string", "null"."""
    if value is None:
        return "null"
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number"}
    return names.get(type(value), "a number" if isinstance(value, float) else f"a {type(value).__name__}")


class PayloadFault(FilterError):
    """The payload lacks something the template needs: the sender's mistake, not the template's (a 422
    `payload_error` that tells the sender what to fix). `field` names what is missing or wrong, when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def fail(message: Any = "the template called fail()") -> None:
    """Global: stop rendering with this message, e.g. `{{ fail("unexpected alert format") }}`: a template error
    (the template's author is to fix it)."""
    raise FilterError(str(message))


def fail_payload(message: Any = "the payload is not what this integration expects", field: Any = None) -> None:
    """Global: stop rendering because the payload is wrong, e.g. `{{ fail_payload("'alerts' must be an array",
    "alerts") }}`: a payload error (the sender is to fix it)."""
    raise PayloadFault(str(message), None if field is None else str(field))


def require(value: Any, field: Any, why: Any = None) -> Any:
    """Global: `value`, unless it is missing, null or blank text: then a payload error naming `field`, e.g.
    `{{ require(payload.alias, "alias") | tojson }}`."""
    if isinstance(value, Undefined) or value is None:
        problem = f"the payload has no {str(field)!r}"
    elif isinstance(value, str) and not value.strip():
        problem = f"the payload's {str(field)!r} is empty"
    else:
        return value
    raise PayloadFault(problem + (f" ({why})" if why is not None else ""), str(field))


def priority(severity: Any, mapping: Mapping[str, Any] | None = None, default: str | None = "P3") -> str | None:
    """Filter: a severity word -> P1..P5 (case-insensitive; `mapping` entries win), else `default`."""
    key = str(severity).strip().lower() if severity is not None else ""
    if mapping is not None and not isinstance(mapping, Mapping):
        raise FilterError(f"priority(): mapping must be an object, got {type_name(mapping)}")
    custom = {str(k).strip().lower(): v for k, v in (mapping or {}).items()}
    result = custom[key] if key in custom else _SEVERITY_PRIORITY.get(key, default)
    if result is None:
        return None
    if str(result).strip().upper() not in _PRIORITIES:
        raise FilterError(f"priority(): {result!r} is not one of P1..P5")
    return str(result).strip().upper()


PRIORITY_OVERRIDES = "priority_overrides"  # context key: the integration's [integrations.priorities] table


@pass_context
def priority_filter(
    context: Context, severity: Any, mapping: Mapping[str, Any] | None = None, default: str | None = "P3"
) -> str | None:
    """The template-facing `priority`: the integration's overrides (context variable ``priority_overrides``)
    win over the template's own ``mapping``, which wins over the built-in table."""
    overrides = context.get(PRIORITY_OVERRIDES)
    if overrides:
        if mapping is not None and not isinstance(mapping, Mapping):
            raise FilterError(f"priority(): mapping must be an object, got {type_name(mapping)}")
        mapping = {**(mapping or {}), **overrides}
    return priority(severity, mapping, default)


def sha256(value: Any) -> str:
    """Filter: hex sha256 of the value's UTF-8 text."""
    return hashlib.sha256(str(value).encode("utf-8", "surrogatepass")).hexdigest()


def _tag_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


def labels_as_tags(labels: Any, keys: Any = None, exclude: Any = None) -> list[str]:
    """Filter: {"k": "v", ...} -> ["k:v", ...] sorted by key; only `keys` if given, never `exclude`.

    Null and empty values are skipped."""
    if not isinstance(labels, Mapping):
        raise FilterError(f"labels_as_tags(): expected an object, got {type_name(labels)}")
    wanted = None if keys is None else {keys} if isinstance(keys, str) else set(keys)
    unwanted = set() if exclude is None else {exclude} if isinstance(exclude, str) else set(exclude)
    tags = []
    for key, value in sorted(labels.items(), key=lambda item: str(item[0])):
        if (wanted is None or key in wanted) and key not in unwanted and value is not None and value != "":
            tags.append(f"{key}:{_tag_value(value)}")
    return tags


def truncate_chars(value: Any, length: int, end: str = "…") -> str:
    """Filter: at most `length` characters, ending with `end`, without splitting a grapheme cluster (the same
    function as OpsGenie's field limits use: app.text)."""
    return _truncate(str(value), length, end)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _from_epoch(number: int | float) -> datetime:
    """Seconds, milliseconds, microseconds or nanoseconds since 1970, told apart by magnitude."""
    size = abs(number)
    per_second = 10**9 if size >= 1e17 else 10**6 if size >= 1e14 else 10**3 if size >= 1e11 else 1
    if isinstance(number, int):
        return _EPOCH + timedelta(microseconds=number * 10**6 // per_second)
    return _EPOCH + timedelta(microseconds=round(number * 10**6 / per_second))


def iso8601(value: Any) -> Any:
    """Filter: epoch seconds/ms/µs/ns or an ISO-8601 string -> "2026-09-14T08:11:32.481Z" (UTC).

    Fails soft: anything it cannot read is returned unchanged."""
    try:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            moment = _from_epoch(value)
        elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            text = value.strip()
            moment = _from_epoch(int(text) if text.lstrip("+-").isdigit() else float(text))
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.strip())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        else:
            return value
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return value
    spec = "seconds" if not moment.microsecond else "milliseconds" if moment.microsecond % 1000 == 0 else "auto"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def from_json(value: Any) -> Any:
    """Filter: parse a JSON string (e.g. SNS's `Message`)."""
    if not isinstance(value, str):
        raise FilterError(f"from_json: expected a string, got {type_name(value)}")
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise FilterError(f"from_json: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise FilterError(f"from_json: unusable JSON ({exc or 'nested too deeply'})") from None


FILTERS: dict[str, Callable[..., Any]] = {
    "priority": priority_filter,
    "sha256": sha256,
    "labels_as_tags": labels_as_tags,
    "truncate_chars": truncate_chars,
    "iso8601": iso8601,
    "from_json": from_json,
}
GLOBALS: dict[str, Any] = {
    "fail": fail,
    "fail_payload": fail_payload,
    "require": require,
}
