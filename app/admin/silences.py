"""Silences as admins manage them from the console or the admin API: list, create, expire early. The config file's
``[[silences]]`` are provisioned at start and at every SIGHUP (main.sync_integrations); an admin may expire one of
them early too (a SIGHUP does not bring it back). Every change is an ``admin_audit`` row and is live in every
process within a second (the config counter)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from alertbridge.admin.actor import Actor
from alertbridge.admin.errors import Invalid, NotFound
from alertbridge.config import NAME_PATTERN, PRIORITIES
from alertbridge.core.policies import Window, parse_duration, zone
from alertbridge.db import Database
from alertbridge.store import audit
from alertbridge.store import silences as store

MAX_TEXT = 500


def _text(body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Invalid(f"{key!r} is required")
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise Invalid(f"{key!r} must be a string of at most {MAX_TEXT} characters")
    return value.strip()


def _list(body: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """An array of strings, or one comma-separated string (a console form)."""
    value = body.get(key)
    if value is None or value == "":
        return ()
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and len(v) <= MAX_TEXT for v in items):
        raise Invalid(f"{key!r} must be a list of strings (or one comma-separated string)")
    return tuple(v for v in items if v)


def _time(body: Mapping[str, Any], key: str) -> datetime | None:
    text = _text(body, key)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{key!r} must be an ISO 8601 time, e.g. 2026-12-06T02:00:00Z") from None
    if when.tzinfo is None:
        raise Invalid(f"{key!r} needs a time zone (e.g. a trailing Z for UTC)")
    return when.astimezone(UTC)


def parse(body: Mapping[str, Any], actor: Actor, now: datetime) -> store.NewSilence:
    """A silence from JSON (or a console form): matchers, when, a comment. ``starts_at`` defaults to now;
    ``duration`` ("2h") may stand for ``ends_at``; ``every`` + ``timezone`` make it recurring."""
    integration = _text(body, "integration")
    if integration is not None:
        if not re.fullmatch(NAME_PATTERN, integration):
            raise Invalid(f"'integration' must be an integration name (got {integration!r})")
    priorities = tuple(p.upper() for p in _list(body, "priorities"))
    if any(p not in PRIORITIES for p in priorities):
        raise Invalid(f"'priorities' must be among {', '.join(PRIORITIES)}")
    details = body.get("details") or {}
    if not isinstance(details, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in details.items()):
        raise Invalid("'details' must be an object of key -> glob (strings)")
    every, timezone = _text(body, "every"), _text(body, "timezone") or "UTC"
    try:
        zone(timezone)
        if every is not None:
            Window.parse(every, timezone)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    starts_at, ends_at = _time(body, "starts_at"), _time(body, "ends_at")
    duration = _text(body, "duration")
    if duration is not None:
        if ends_at is not None:
            raise Invalid("give 'ends_at' or 'duration', not both")
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise Invalid(f"'duration' {exc}") from None
        if seconds <= 0:
            raise Invalid("'duration' must be more than 0")
        ends_at = (starts_at or now) + timedelta(seconds=seconds)
    if every is None:
        starts_at = starts_at or now
        if ends_at is None:
            raise Invalid("give 'ends_at' or 'duration' (or 'every' for a recurring window)")
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise Invalid("'ends_at' must be after 'starts_at'")
    if ends_at is not None and ends_at <= now:
        raise Invalid("'ends_at' is in the past: this silence would never be active")
    silence = store.NewSilence(
        created_by=actor.label,
        integration=integration,
        alias=_text(body, "alias"),
        tags=_list(body, "tags"),
        priorities=priorities,
        details=details,
        starts_at=starts_at,
        ends_at=ends_at,
        every=every,
        timezone=timezone,
        comment=_text(body, "comment", required=True) or "",
    )
    if not (silence.integration or silence.alias or silence.tags or silence.priorities or silence.details):
        raise Invalid("this would silence everything: give at least one of integration, alias, tags, priorities")
    return silence


def shown(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """A silences row as the API and the console show it: with whether it is active now and its window."""
    policy = store.to_policy(row)
    state = "expired" if policy.over(now) else ("active" if policy.active(now) else "waiting")
    return {**row, "state": state, "window": policy.window.text if policy.window else None}


async def listing(
    db: Database, *, integration: str | None = None, include_over: bool = False, now: datetime | None = None
) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    async with db.connection() as conn:
        rows = await store.listing(conn, integration=integration, include_over=include_over)
    return [shown(r, now) for r in rows]


async def get(db: Database, silence_id: int) -> dict[str, Any]:
    async with db.connection() as conn:
        row = await store.get(conn, silence_id)
    if row is None:
        raise NotFound(f"no silence {silence_id}")
    return shown(row, datetime.now(UTC))


def _audited(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("integration", "alias", "tags", "priorities", "details", "starts_at", "ends_at", "every", "timezone")
    out = {k: row[k] for k in (*keys, "comment", "expired_at", "expired_by") if row.get(k) not in (None, [], {})}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in out.items()}


async def create(db: Database, actor: Actor, body: Mapping[str, Any]) -> dict[str, Any]:
    actor.require_admin()
    now = datetime.now(UTC)
    silence = parse(body, actor, now)
    async with db.transaction() as conn:
        row = await store.create(conn, silence)
        await audit.record(
            conn, actor=actor.label, action="silence.create", target=f"silence:{row['id']}", after=_audited(row)
        )
    return shown(row, now)


async def expire(db: Database, actor: Actor, silence_id: int) -> dict[str, Any]:
    """End a silence now; what it withheld and still fires is sent at the sweeper's next pass."""
    actor.require_admin()
    async with db.transaction() as conn:
        changed = await store.expire(conn, silence_id, actor.label)
        if changed is None:
            raise NotFound(f"no silence {silence_id}")
        before, after = changed
        if before is not after:
            await audit.record(
                conn,
                actor=actor.label,
                action="silence.expire",
                target=f"silence:{silence_id}",
                before=_audited(before),
                after=_audited(after),
            )
    return shown(after, datetime.now(UTC))
