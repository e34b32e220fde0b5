"""Turning an untrusted webhook body into a JSON object, or a 400 message that says what is wrong. Pure."""

from __future__ import annotations

import json
import math
from typing import Any

BOM = b"\xef\xbb\xbf"


class BodyError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BodyError(f"duplicate key {key[:80]!r} in a JSON object (ambiguous; refused)")
            seen.add(key)
    return obj


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise BodyError(f"number {text[:40]} is out of range")
    return value


def _constant(name: str) -> Any:
    raise BodyError(f"{name} is not valid JSON")


def _depth_exceeds(value: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def parse_json_object(body: bytes, *, max_depth: int = 64, content_type: str | None = None) -> dict[str, Any]:
    """Parse ``body`` as one JSON object; raise BodyError with a sender-readable message otherwise.

    Rules: UTF-8 only (a leading BOM is accepted and dropped); NaN/Infinity, out-of-range numbers, integers
    over Python's digit limit and duplicate keys are refused; nesting deeper than ``max_depth`` is refused.
    """
    if body.startswith(BOM):
        body = body[len(BOM) :]
    if not body.strip():
        raise BodyError("body is empty; expected a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_float, parse_constant=_constant)
    except BodyError:
        raise
    except RecursionError:
        raise BodyError(f"JSON nesting is deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        hint = ""
        if content_type and "x-www-form-urlencoded" in content_type.lower():
            hint = " (the body is form-encoded: send JSON with Content-Type: application/json)"
        raise BodyError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}") from None
    except ValueError as exc:  # e.g. the 4300-digit integer limit
        raise BodyError(f"body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise BodyError(f"body must be a JSON object, got {_kind(value)}")
    if _depth_exceeds(value, max_depth):
        raise BodyError(f"JSON nesting is deeper than {max_depth} levels")
    return value
