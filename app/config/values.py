"""Value checkers of the config file, and the context that collects their errors.

A checker takes (raw value, key path, context) and returns the checked value, or raises the exception that
``ctx.error(path, message)`` makes. Checkers of lists and free-form tables report each bad item and then raise
`Reported`. The context collects every error, so one run reports them all (`alertbridge check`).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Secret

from alertbridge.config.model import PRIORITIES

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MIN_TOKEN_LENGTH = 8
MAX_SOURCE_LENGTH = 100  # OpsGenie's limit for the `source` field
MAX_HEADER_NAME_LENGTH = 100
MAX_PRIORITY_KEY_LENGTH = 100
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an RFC 7230 token
SNS_TOPIC_ARN_PATTERN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$"


class Invalid(Exception):
    """One value is wrong; the message is complete (source, key path, problem)."""


class Reported(Exception):
    """The value is wrong and its problems were reported already."""


MISSING: Any = object()  # what Ctx.check returns for a value that failed


class Ctx:
    """Where errors go, and how strings are read: `${VAR}` expansion from `env` (not for values that come from
    the environment themselves: ``literal``), relative paths against `base_dir`."""

    def __init__(
        self,
        env: Mapping[str, str],
        source: str,
        base_dir: Path,
        *,
        errors: list[str] | None = None,
        literal: bool = False,
    ) -> None:
        self.env = env
        self.source = source
        self.base_dir = base_dir
        self.errors: list[str] = [] if errors is None else errors
        self.literal = literal

    def error(self, path: str, message: str) -> Invalid:
        return Invalid(f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}")

    def report(self, path: str, message: str) -> None:
        self.errors.append(str(self.error(path, message)))

    def check(self, checker: Check, value: Any, path: str) -> Any:
        """The checked value, or MISSING after recording why not."""
        try:
            return checker(value, path, self)
        except Invalid as exc:
            self.errors.append(str(exc))
        except Reported:
            pass
        return MISSING

    def expand(self, text: str, path: str) -> str:
        if self.literal:
            return text

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if name is None:
                raise self.error(
                    path, "malformed '${': write ${NAME} (letters, digits, '_') or '$${' for a literal '${'"
                )
            if name not in self.env:
                raise self.error(path, f"environment variable {name} is not set")
            return self.env[name]

        return _VAR_RE.sub(replace, text)


_VAR_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
Check = Callable[[Any, str, Ctx], Any]


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, datetime.datetime):
        return "datetime"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, datetime.time):
        return "time"
    return type(value).__name__


def _expanded(value: Any, path: str, ctx: Ctx, *, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise ctx.error(path, f"must be {what} (got {type_name(value)})")
    text = ctx.expand(value, path)
    if not text.strip():
        after = " after expanding environment variables" if "${" in value and not ctx.literal else ""
        raise ctx.error(path, f"must not be empty{after}")
    return text


def string(*, max_length: int | None = None) -> Check:
    def check(value: Any, path: str, ctx: Ctx) -> str:
        text = _expanded(value, path, ctx)
        if max_length is not None and len(text) > max_length:
            raise ctx.error(path, f"must be at most {max_length} characters (got {len(text)})")
        return text

    return check


def secret(*, min_length: int = 1) -> Check:
    """A string that is wrapped in Secret; error messages never include its value."""

    def check(value: Any, path: str, ctx: Ctx) -> Secret:
        text = _expanded(value, path, ctx)
        if len(text) < min_length:
            raise ctx.error(path, f"must be at least {min_length} characters (got {len(text)})")
        if not (text.isascii() and text.isprintable()) or any(c.isspace() for c in text):
            raise ctx.error(path, "must be printable ASCII without spaces (it is sent in an HTTP header)")
        return Secret(text)

    return check


def database_url(value: Any, path: str, ctx: Ctx) -> Secret:
    return Secret(_expanded(value, path, ctx))


def integer(*, minimum: int = 1, maximum: int | None = None) -> Check:
    def check(value: Any, path: str, ctx: Ctx) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.error(path, f"must be an integer (got {type_name(value)})")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ctx.error(path, f"must be {bounds} (got {value})")
        return value

    return check


def number(*, allow_zero: bool = False) -> Check:
    def check(value: Any, path: str, ctx: Ctx) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ctx.error(path, f"must be a number (got {type_name(value)})")
        result = float(value)
        if not math.isfinite(result) or result < 0 or (result == 0 and not allow_zero):
            wanted = "a finite number >= 0" if allow_zero else "a finite number > 0"
            raise ctx.error(path, f"must be {wanted} (got {value})")
        return result

    return check


def boolean(value: Any, path: str, ctx: Ctx) -> bool:
    if not isinstance(value, bool):
        raise ctx.error(path, f"must be true or false (got {type_name(value)})")
    return value


def choice(options: tuple[str, ...]) -> Check:
    def check(value: Any, path: str, ctx: Ctx) -> str:
        text = _expanded(value, path, ctx)
        if text not in options:
            listed = ", ".join(repr(o) for o in options)
            raise ctx.error(path, f"must be one of {listed} (got {text!r})")
        return text

    return check


def name(value: Any, path: str, ctx: Ctx) -> str:
    text = _expanded(value, path, ctx)
    if not re.fullmatch(NAME_PATTERN, text):
        raise ctx.error(
            path,
            f"must match {NAME_PATTERN} (lowercase letters, digits, '_' and '-'; at most 63 characters) (got {text!r})",
        )
    return text


def base_url(value: Any, path: str, ctx: Ctx) -> str:
    text = _expanded(value, path, ctx).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ctx.error(path, f"must be an http:// or https:// URL (got {text!r})")
    if parts.username is not None or parts.password is not None:
        raise ctx.error(path, "must not contain credentials (put the key in api_key)")
    if parts.query or parts.fragment:
        raise ctx.error(path, "must not contain a query string or fragment")
    return text.rstrip("/")


def path_value(value: Any, path: str, ctx: Ctx) -> Path:
    result = Path(_expanded(value, path, ctx)).expanduser()
    return result if result.is_absolute() else ctx.base_dir / result


def tokens(value: Any, path: str, ctx: Ctx) -> tuple[Secret, ...]:
    if not isinstance(value, list):
        raise ctx.error(path, f"must be an array of strings (got {type_name(value)})")
    check = secret(min_length=MIN_TOKEN_LENGTH)
    items = [ctx.check(check, item, f"{path}[{i}]") for i, item in enumerate(value)]
    seen: dict[str, int] = {}
    failed = any(item is MISSING for item in items)
    for i, token in enumerate(items):
        if token is MISSING:
            continue
        if str(token) in seen:
            ctx.report(f"{path}[{i}]", f"duplicate token (same as {path}[{seen[str(token)]}])")
            failed = True
        seen.setdefault(str(token), i)
    if failed:
        raise Reported
    return tuple(items)


def header_name(value: Any, path: str, ctx: Ctx) -> str:
    text = _expanded(value, path, ctx)
    if len(text) > MAX_HEADER_NAME_LENGTH or not re.fullmatch(HEADER_NAME_PATTERN, text):
        raise ctx.error(
            path,
            f"must be an HTTP header name: 1 to {MAX_HEADER_NAME_LENGTH} letters, digits and "
            f"!#$%&'*+-.^_`|~ (got {text!r})",
        )
    return text.lower()


def toml_key(key: str) -> str:
    """A key as written in TOML: bare if it can be, else quoted (`"needs attention"`)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def priorities(value: Any, path: str, ctx: Ctx) -> Mapping[str, str]:
    """A free-form table: any severity word -> "P1".."P5" (either case). Keys are lower-cased and stripped."""
    if not isinstance(value, dict):
        raise ctx.error(path, f"must be a table (got {type_name(value)})")
    result: dict[str, str] = {}
    first_key: dict[str, str] = {}
    failed = False
    for raw_key, item in value.items():
        key_path = f"{path}.{toml_key(raw_key)}"
        key = raw_key.strip().lower()
        if not key or len(key) > MAX_PRIORITY_KEY_LENGTH:
            ctx.report(key_path, f"key must be 1 to {MAX_PRIORITY_KEY_LENGTH} characters (got {len(key)})")
            failed = True
            continue
        if key in first_key:
            ctx.report(key_path, f"duplicate key (same as {path}.{toml_key(first_key[key])} once lower-cased)")
            failed = True
            continue
        first_key[key] = raw_key
        text = ctx.check(_expanded, item, key_path)
        if text is MISSING:
            failed = True
            continue
        priority = text.strip().upper()
        if priority not in PRIORITIES:
            listed = ", ".join(repr(p) for p in PRIORITIES)
            ctx.report(key_path, f"must be one of {listed}, in either case (got {text!r})")
            failed = True
            continue
        result[key] = priority
    if failed:
        raise Reported
    return MappingProxyType(result)


def topic_arns(value: Any, path: str, ctx: Ctx) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ctx.error(path, f"must be an array of strings (got {type_name(value)})")
    arns: list[str] = []
    failed = False
    for i, item in enumerate(value):
        arn = ctx.check(_expanded, item, f"{path}[{i}]")
        if arn is MISSING:
            failed = True
        elif not re.fullmatch(SNS_TOPIC_ARN_PATTERN, arn):
            ctx.report(
                f"{path}[{i}]", f"must be an SNS topic ARN like arn:aws:sns:<region>:<account>:<topic> (got {arn!r})"
            )
            failed = True
        elif arn in arns:
            ctx.report(f"{path}[{i}]", f"duplicate topic ARN (same as {path}[{arns.index(arn)}])")
            failed = True
        else:
            arns.append(arn)
    if failed:
        raise Reported
    return tuple(arns)


def names(value: Any, path: str, ctx: Ctx) -> tuple[str, ...]:
    """An array of non-empty strings."""
    if not isinstance(value, list):
        raise ctx.error(path, f"must be an array of strings (got {type_name(value)})")
    items = [ctx.check(string(), item, f"{path}[{i}]") for i, item in enumerate(value)]
    if any(item is MISSING for item in items):
        raise Reported
    return tuple(items)
