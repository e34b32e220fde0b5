"""Template versions: the active one, the list, one version, a diff of two, save, restore.

A version that does not compile is refused (422) and so can never become active. A file-managed integration
with ``locked = true`` refuses saves and restores (409). Every save is an ``admin_audit`` row and bumps the
change counter (with a NOTIFY), which every ``serve`` and ``worker`` process follows.
"""

from __future__ import annotations

import difflib
from typing import Any

from alertbridge.admin.actor import Actor
from alertbridge.admin.errors import Conflict, Invalid, NotFound
from alertbridge.db import Connection, Database
from alertbridge.rendering import TemplateError, compile_template
from alertbridge.store import audit, config_state, integrations, versions

MAX_SOURCE = 262_144  # characters; a template is code, not data
MAX_COMMENT = 1000


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A version as the API shows it."""
    out = {
        "version": row["version"],
        "sha256": row["sha256"],
        "author": row["author"],
        "comment": row["comment"],
        "created_at": row["created_at"].isoformat(),
        "restored_from": row["restored_from"],
    }
    if "source" in row:
        out["source"] = row["source"]
    return out


async def integration(conn: Connection, name: str, *, for_update: bool = False) -> dict[str, Any]:
    row = await integrations.get(conn, name, for_update=for_update)
    if row is None:
        raise NotFound(f"no integration named {name!r}")
    return row


async def active(db: Database, name: str) -> dict[str, Any]:
    async with db.connection() as conn:
        row = await integration(conn, name)
        if row["active_version_id"] is None:
            raise NotFound(f"integration {name!r} has no template version yet")
        version = await versions.by_id(conn, row["active_version_id"])
    assert version is not None
    return version


async def listing(db: Database, name: str) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        await integration(conn, name)
        return await versions.listing(conn, name)


async def get(db: Database, name: str, number: int) -> dict[str, Any]:
    async with db.connection() as conn:
        await integration(conn, name)
        row = await versions.get(conn, name, number)
    if row is None:
        raise NotFound(f"integration {name!r} has no template version {number}")
    return row


def check_source(source: Any, name: str) -> str:
    """The source, compiled once to prove it can become active; Invalid (422) with the line if not."""
    if not isinstance(source, str):
        raise Invalid("'source' must be a string (the template text)")
    if len(source) > MAX_SOURCE:
        raise Invalid(f"the template is longer than {MAX_SOURCE} characters")
    try:
        compile_template(source, name)
    except TemplateError as exc:
        raise Invalid(
            f"the template does not compile: {exc.message}" + (f" (line {exc.line})" if exc.line else ""),
            template_error=exc.to_dict(),
        ) from None
    return source


def _writable(row: dict[str, Any]) -> None:
    if row["locked"]:
        raise Conflict(
            f"integration {row['name']!r} is managed by the config file with locked = true: change its template "
            "in the file (and its git history), not here"
        )


async def save(
    db: Database,
    actor: Actor,
    name: str,
    source: Any,
    comment: Any = "",
    *,
    restored_from: int | None = None,
) -> dict[str, Any]:
    """A new version, active at once in this and (within about a second) every other process."""
    actor.require_admin()
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise Invalid("'comment' must be a string")
    comment = comment.strip()[:MAX_COMMENT]
    async with db.transaction() as conn:
        row = await integration(conn, name, for_update=True)
        _writable(row)
        source = check_source(source, name)
        compiled = compile_template(source, name)
        version = await versions.insert(
            conn,
            name,
            source=source,
            sha256=compiled.sha256,
            author=actor.label,
            comment=comment,
            restored_from=restored_from,
        )
        await integrations.activate(conn, name, version["id"], compiled.sha256)
        await audit.record(
            conn,
            actor=actor.label,
            action="template.restore" if restored_from is not None else "template.save",
            target=f"integration:{name}",
            before={"version": row["active_version"], "sha256": row["template_sha256"]},
            after={
                "version": version["version"],
                "sha256": compiled.sha256,
                "comment": comment,
                **({"restored_from": restored_from} if restored_from is not None else {}),
            },
        )
        await config_state.bump(conn)
    return version


async def restore(db: Database, actor: Actor, name: str, number: int, comment: Any = "") -> dict[str, Any]:
    """A restore is a new version with the old one's source and ``restored_from`` = its number."""
    actor.require_admin()
    old = await get(db, name, number)
    text = comment.strip() if isinstance(comment, str) else ""
    return await save(db, actor, name, old["source"], text or f"restore version {number}", restored_from=number)


def diff(old: dict[str, Any], new: dict[str, Any], context: int = 3) -> dict[str, Any]:
    """A unified diff of two versions, as text and as typed lines (for the console to escape and colour)."""
    a = old["source"].splitlines()
    b = new["source"].splitlines()
    lines: list[dict[str, Any]] = []
    text = list(
        difflib.unified_diff(a, b, f"version {old['version']}", f"version {new['version']}", n=context, lineterm="")
    )
    for line in text[2:]:
        if line.startswith("@@"):
            lines.append({"kind": "hunk", "text": line})
        elif line.startswith("+"):
            lines.append({"kind": "add", "text": line[1:]})
        elif line.startswith("-"):
            lines.append({"kind": "del", "text": line[1:]})
        else:
            lines.append({"kind": "same", "text": line[1:]})
    return {
        "from": old["version"],
        "to": new["version"],
        "identical": a == b,
        "unified": "\n".join(text),
        "lines": lines,
    }
