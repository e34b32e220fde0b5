"""Integrations as admins see and change them: the list with the last 24 h, one integration, a console-managed
integration created from a built-in template, its webhook tokens (a new one is shown once; the old ones stay
valid until removed), its target and API key (stored only encrypted), enable/disable.

File-managed integrations are changed in the file (only their template may be edited here, unless locked).
Nothing secret is ever returned: API keys are "set" or not, tokens are labels.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from alertbridge.admin.actor import Actor
from alertbridge.admin.auth import digest, new_secret
from alertbridge.admin.errors import Conflict, Invalid, NotFound
from alertbridge.config import NAME_PATTERN, PRIORITIES, REGION_BASE_URLS
from alertbridge.db import Connection, Database
from alertbridge.models import ManagedBy
from alertbridge.rendering import TemplateError, builtin_template_names, compile_template, load_template_source
from alertbridge.secretbox import NO_KEY, SecretBox
from alertbridge.store import aliases, audit, config_state, inbound, integration_tokens, integrations, outbox, versions

WEBHOOK_TOKEN_PREFIX = "whk_"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def api_key_state(row: dict[str, Any]) -> str:
    if row["managed_by"] == ManagedBy.FILE:
        return "in the config file"
    return "encrypted in Postgres" if row["has_api_key"] else "missing"


def public(row: dict[str, Any], stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """An integration as the API shows it (no secret)."""
    out = {
        "name": row["name"],
        "webhook_path": f"/webhooks/{row['name']}",
        "managed_by": row["managed_by"],
        "enabled": row["enabled"],
        "locked": row["locked"],
        "auth_mode": row["auth_mode"],
        "token_header": row["token_header"],
        "target": {
            "region": row["target_region"],
            "base_url": row["target_base_url"],
            "api_key": api_key_state(row),
        },
        "defaults": {
            "team": row["default_team"],
            "priority": row["default_priority"],
            "source": row["default_source"],
        },
        "scope_aliases": row["scope_aliases"],
        "forward_unknown": row["forward_unknown"],
        "priorities": row["priorities"],
        "policies": row.get("policies") or {},
        "template": {
            "configured": row["template"],
            "active_version": row["active_version"],
            "author": row["active_author"],
            "sha256": row["template_sha256"],
            "changed_in_console_since_file_applied": bool(row["changed_since_file"]),
        },
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }
    if stats is not None:
        out["last_24h"] = stats
    return out


async def _stats(conn: Connection) -> dict[str, dict[str, Any]]:
    per = await inbound.stats(conn)
    dead = await outbox.dead_counts(conn)
    opened = await aliases.open_counts(conn)
    out: dict[str, dict[str, Any]] = {}
    for name, s in per.items():
        c = s["counts"]
        out[name] = {
            "last_received_at": _iso(s["last_received_at"]),
            "accepted": int(c.get("processed", 0)),
            "body_errors": int(c.get("invalid", 0)) + int(c.get("too_large", 0)),
            "template_errors": int(c.get("template_error", 0)),
            "dead_deliveries": dead.get(name, 0),
            "open_aliases": opened.get(name, 0),
        }
    return out


async def listing(db: Database) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        rows = await integrations.listing(conn)
        stats = await _stats(conn)
    return [public(r, stats.get(r["name"])) for r in rows]


async def _row(conn: Connection, name: str, *, for_update: bool = False) -> dict[str, Any]:
    row = await integrations.get(conn, name, for_update=for_update)
    if row is None:
        raise NotFound(f"no integration named {name!r}")
    return row


async def detail(db: Database, name: str) -> dict[str, Any]:
    async with db.connection() as conn:
        row = await _row(conn, name)
        stats = await _stats(conn)
        tokens = await integration_tokens.listing(conn, name)
    out = public(row, stats.get(name))
    out["tokens"] = [
        {"id": t["id"], "label": t["label"], "created_at": _iso(t["created_at"]), "created_by": t["created_by"]}
        for t in tokens
    ]
    if row["managed_by"] == ManagedBy.FILE:
        out["tokens_note"] = f"{row['settings'].get('tokens', 0)} token(s) in the config file"
    return out


def _console_only(row: dict[str, Any], what: str) -> None:
    if row["managed_by"] != ManagedBy.CONSOLE:
        raise Conflict(f"integration {row['name']!r} is managed by the config file: change its {what} there")


# --- checks of what an admin submits --------------------------------------------------------------------


def _text(data: dict[str, Any], key: str, *, max_length: int = 200) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise Invalid(f"'{key}' must be a string of at most {max_length} characters")
    return value.strip() or None


def _target(data: dict[str, Any]) -> tuple[str, str | None]:
    region = _text(data, "region")
    base_url = _text(data, "base_url", max_length=500)
    if region and base_url:
        raise Invalid("give either 'region' or 'base_url', not both")
    if region:
        if region not in REGION_BASE_URLS:
            raise Invalid(f"'region' must be one of {', '.join(REGION_BASE_URLS)}")
        return REGION_BASE_URLS[region], region
    if not base_url:
        raise Invalid(f"a target is required: 'region' ({', '.join(REGION_BASE_URLS)}) or 'base_url'")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query:
        raise Invalid("'base_url' must be an http:// or https:// URL without credentials or query")
    return base_url.rstrip("/"), None


def _api_key(data: dict[str, Any], box: SecretBox | None) -> str | None:
    key = _text(data, "api_key", max_length=500)
    if key is None:
        return None
    if box is None:
        raise Invalid(NO_KEY)
    if any(c.isspace() for c in key) or not key.isprintable():
        raise Invalid("'api_key' must be printable without spaces (it is sent in an HTTP header)")
    return box.encrypt(key)


def _header(data: dict[str, Any]) -> str | None:
    header = _text(data, "token_header", max_length=100)
    if header and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", header):
        raise Invalid("'token_header' must be an HTTP header name")
    return header.lower() if header else None


def _priority(data: dict[str, Any]) -> str | None:
    priority = _text(data, "default_priority")
    if priority and priority.upper() not in PRIORITIES:
        raise Invalid("'default_priority' must be one of P1..P5")
    return priority.upper() if priority else None


# --- changes --------------------------------------------------------------------------------------------


async def create(db: Database, actor: Actor, box: SecretBox | None, data: dict[str, Any]) -> dict[str, Any]:
    """A console-managed integration from a built-in template. Returns it, with its first token (shown once)."""
    actor.require_admin()
    name = _text(data, "name", max_length=63) or ""
    if not re.fullmatch(NAME_PATTERN, name):
        raise Invalid(
            "'name' must be lowercase letters, digits, '_' and '-' (at most 63, starting with a letter/digit)"
        )
    start = _text(data, "template") or "generic"
    if start not in builtin_template_names():
        raise Invalid(f"'template' must be a built-in template: {', '.join(builtin_template_names())}")
    auth = _text(data, "auth_mode") or "token"
    if auth not in ("token", "none"):
        raise Invalid("'auth_mode' must be 'token' or 'none' (signed sources are configured in the config file)")
    base_url, region = _target(data)
    encrypted = _api_key(data, box)
    try:
        _, source = load_template_source(start)
        compiled = compile_template(source, name)
    except TemplateError as exc:  # a built-in template always compiles; this is a guard
        raise Invalid(str(exc)) from None
    row = integrations.ConsoleIntegration(
        name=name,
        template=start,
        template_sha256=compiled.sha256,
        target_base_url=base_url,
        target_region=region,
        api_key_encrypted=encrypted,
        auth_mode=auth,
        token_header=_header(data),
        default_team=_text(data, "default_team"),
        default_priority=_priority(data),
        default_source=_text(data, "default_source", max_length=100),
        scope_aliases=data.get("scope_aliases", True) is not False,
    )
    token = WEBHOOK_TOKEN_PREFIX + new_secret() if auth == "token" else None
    async with db.transaction() as conn:
        if not await integrations.create(conn, row):
            raise Conflict(f"an integration named {name!r} exists already")
        version = await versions.insert(
            conn,
            name,
            source=source,
            sha256=compiled.sha256,
            author=actor.label,
            comment=f"created from the built-in template {start!r}",
        )
        await integrations.activate(conn, name, version["id"], compiled.sha256)
        if token is not None:
            await integration_tokens.add(conn, name, label="first token", sha256=digest(token), created_by=actor.label)
        after = {k: v for k, v in row.__dict__.items() if k != "api_key_encrypted"}
        after["api_key"] = "set" if encrypted else None
        await audit.record(
            conn, actor=actor.label, action="integration.create", target=f"integration:{name}", after=after
        )
        await config_state.bump(conn)
    out = await detail(db, name)
    out["token"] = token
    return out


async def add_token(db: Database, actor: Actor, name: str, label: str | None) -> tuple[dict[str, Any], str]:
    """A rotation: a new token (returned once); the old ones stay valid until removed."""
    actor.require_admin()
    label = (label or "").strip()[:100] or "rotated token"
    token = WEBHOOK_TOKEN_PREFIX + new_secret()
    async with db.transaction() as conn:
        row = await _row(conn, name, for_update=True)
        _console_only(row, "tokens")
        created = await integration_tokens.add(conn, name, label=label, sha256=digest(token), created_by=actor.label)
        await audit.record(
            conn,
            actor=actor.label,
            action="integration.token.add",
            target=f"integration:{name}",
            after={"token_id": created["id"], "label": label},
        )
        await config_state.bump(conn)
    return {"id": created["id"], "label": label, "created_at": _iso(created["created_at"])}, token


async def remove_token(db: Database, actor: Actor, name: str, token_id: int) -> None:
    actor.require_admin()
    async with db.transaction() as conn:
        row = await _row(conn, name, for_update=True)
        _console_only(row, "tokens")
        removed = await integration_tokens.remove(conn, name, token_id)
        if removed is None:
            raise NotFound(f"integration {name!r} has no token {token_id}")
        await audit.record(
            conn,
            actor=actor.label,
            action="integration.token.remove",
            target=f"integration:{name}",
            before={"token_id": token_id, "label": removed["label"]},
        )
        await config_state.bump(conn)


async def set_enabled(db: Database, actor: Actor, name: str, enabled: bool) -> None:
    actor.require_admin()
    async with db.transaction() as conn:
        row = await _row(conn, name, for_update=True)
        _console_only(row, "'enabled' setting")
        if row["enabled"] == enabled:
            return
        await integrations.update(conn, name, enabled=enabled)
        await audit.record(
            conn,
            actor=actor.label,
            action="integration.enable" if enabled else "integration.disable",
            target=f"integration:{name}",
            before={"enabled": row["enabled"]},
            after={"enabled": enabled},
        )
        await config_state.bump(conn)


async def set_target(db: Database, actor: Actor, box: SecretBox | None, name: str, data: dict[str, Any]) -> None:
    """A new target and/or API key (the key stored only encrypted; an empty key keeps the stored one)."""
    actor.require_admin()
    async with db.transaction() as conn:
        row = await _row(conn, name, for_update=True)
        _console_only(row, "target")
        values: dict[str, Any] = {}
        if data.get("region") or data.get("base_url"):
            values["target_base_url"], values["target_region"] = _target(data)
        encrypted = _api_key(data, box)
        if encrypted is not None:
            values["api_key_encrypted"] = encrypted
        for key in ("default_team", "default_source"):
            if key in data:
                values[key] = _text(data, key)
        if "default_priority" in data:
            values["default_priority"] = _priority(data)
        if not values:
            raise Invalid("nothing to change")
        await integrations.update(conn, name, **values)
        show = {k: v for k, v in values.items() if k != "api_key_encrypted"}
        before = {k: row.get(k) for k in show}
        if encrypted is not None:
            show["api_key"] = "changed"
        await audit.record(
            conn,
            actor=actor.label,
            action="integration.target",
            target=f"integration:{name}",
            before=before,
            after=show,
        )
        await config_state.bump(conn)
