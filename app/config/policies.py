"""Checkers and sections of the lifecycle-policy settings: `[integrations.policies]`, `[[silences]]` and `[heartbeat]`
(the pacing keys of `[integrations.target]` and `[sweeper]` are plain numbers). The meaning of every setting is in
docs/policies.md; what the values become is `core/policies.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from alertbridge.config.model import PRIORITIES, HeartbeatConfig, PoliciesConfig, SilenceConfig
from alertbridge.config.values import MISSING, Check, Ctx, Reported, _expanded, string, toml_key, type_name
from alertbridge.core.policies import Window, parse_duration, zone

HEARTBEAT_REGIONS = ("us", "eu")  # JSM Ops has no confirmed ping endpoint for integration keys (CONTRACT §6)


def duration(value: Any, path: str, ctx: Ctx) -> float:
    """A duration: "90s", "2m", "1h30m", "1d", or a number of seconds; 0 turns the policy off."""
    if isinstance(value, str):
        value = ctx.expand(value, path)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ctx.error(path, str(exc)) from None


def timestamp(value: Any, path: str, ctx: Ctx) -> dt.datetime:
    """A point in time with its offset: a TOML datetime (`2026-12-06T02:00:00Z`) or the same as a string."""
    if isinstance(value, str):
        text = _expanded(value, path, ctx).strip()
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ctx.error(path, f"must be a time like 2026-12-06T02:00:00Z (got {text!r})") from None
    if not isinstance(value, dt.datetime):
        raise ctx.error(path, f"must be a time like 2026-12-06T02:00:00Z (got {type_name(value)})")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ctx.error(path, "needs a time zone offset (e.g. a trailing Z for UTC, or +01:00)")
    return value.astimezone(dt.UTC)


def timezone_name(value: Any, path: str, ctx: Ctx) -> str:
    text = _expanded(value, path, ctx).strip()
    try:
        zone(text)
    except ValueError as exc:
        raise ctx.error(path, str(exc)) from None
    return text


def priority_list(value: Any, path: str, ctx: Ctx) -> tuple[str, ...]:
    """P1..P5, as one string or an array."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ctx.error(path, f'must be a priority or an array of them, e.g. ["P4", "P5"] (got {type_name(value)})')
    out: list[str] = []
    for i, item in enumerate(items):
        text = ctx.check(string(), item, f"{path}[{i}]")
        if text is MISSING:
            raise Reported
        if text.strip().upper() not in PRIORITIES:
            raise ctx.error(f"{path}[{i}]", f"must be one of {', '.join(PRIORITIES)} (got {text!r})")
        out.append(text.strip().upper())
    return tuple(out)


def globs(value: Any, path: str, ctx: Ctx) -> Mapping[str, str]:
    """A free-form table: a key of the event's `details` -> a glob its value must match."""
    if not isinstance(value, dict):
        raise ctx.error(path, f'must be a table of key = "glob" (got {type_name(value)})')
    out: dict[str, str] = {}
    for key, item in value.items():
        text = ctx.check(string(), item, f"{path}.{toml_key(key)}")
        if text is MISSING:
            raise Reported
        out[key] = text
    return MappingProxyType(out)


def every(value: Any, path: str, ctx: Ctx) -> str:
    """A recurring window; checked against the silence's timezone by `silence`."""
    text = _expanded(value, path, ctx).strip()
    try:
        Window.parse(text, "UTC")
    except ValueError as exc:
        raise ctx.error(path, str(exc)) from None
    return text


def policies(values: dict[str, Any]) -> PoliciesConfig:
    return PoliciesConfig(**values)


def check_silence(values: dict[str, Any], raw: Mapping[str, Any], path: str, ctx: Ctx) -> SilenceConfig | None:
    """The rules across keys of one `[[silences]]`: a one-off needs starts_at and ends_at, a recurring window
    `every` (starts_at / ends_at then bound it); the end comes after the start."""
    before = len(ctx.errors)
    for key in ("starts_at", "ends_at", "every", "timezone"):
        if key in raw and key not in values:
            return None  # reported by its checker
    if "every" not in values and not ("starts_at" in values and "ends_at" in values):
        ctx.report(path, "give starts_at and ends_at (a one-off silence), or every (a recurring window)")
    if "timezone" in values and "every" not in values:
        ctx.report(f"{path}.timezone", "only applies with every (starts_at and ends_at carry their own offset)")
    start, end = values.get("starts_at"), values.get("ends_at")
    if start is not None and end is not None and end <= start:
        ctx.report(f"{path}.ends_at", "must be after starts_at")
    if not any(k in values for k in ("integration", "alias", "tags", "priorities", "details")):
        ctx.report(path, "matches everything: give at least one of integration, alias, tags, priorities, details")
    if len(ctx.errors) > before:
        return None
    return SilenceConfig(**values)


def heartbeat(values: dict[str, Any], raw: Mapping[str, Any], ctx: Ctx) -> HeartbeatConfig:
    config = HeartbeatConfig(**values)
    if config.name and config.api_key is None:
        ctx.report("heartbeat.api_key", "required when heartbeat.name is set (an API integration key)")
    return config


def silences_of(raw: Any, ctx: Ctx, schema: Mapping[str, Check], table: Any) -> tuple[SilenceConfig, ...]:
    """`[[silences]]`, each checked (``table``: schema.table)."""
    if not isinstance(raw, list):
        ctx.report("silences", f"must be an array of tables, written [[silences]] (got {type_name(raw)})")
        return ()
    out: list[SilenceConfig] = []
    for i, item in enumerate(raw):
        path = f"silences[{i}]"
        values = table(item, path, ctx, schema, "silences")
        if values is None:
            continue
        silence = check_silence(values, item, path, ctx)
        if silence is not None:
            out.append(silence)
    return tuple(out)
