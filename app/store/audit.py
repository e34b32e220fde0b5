"""``admin_audit``: every change made in the console or the admin API — who, when, what, before -> after.
Callers never pass a secret (API keys and tokens appear as "set" / a label, never as values)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.db import Connection


async def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO admin_audit (actor, action, target, before, after) "
        "VALUES (%(actor)s, %(action)s, %(target)s, %(before)s, %(after)s)",
        {
            "actor": actor,
            "action": action,
            "target": target,
            "before": Jsonb(before) if before is not None else None,
            "after": Jsonb(after) if after is not None else None,
        },
    )


async def listing(conn: Connection, *, target: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Newest first; ``target`` filters to one thing (``integration:NAME`` also matches its sub-targets)."""
    cur = await conn.execute(
        "SELECT id, at, actor, action, target, before, after FROM admin_audit "
        "WHERE %(t)s::text IS NULL OR target = %(t)s OR target LIKE %(t)s || '/%%' ORDER BY id DESC LIMIT %(n)s",
        {"t": target, "n": limit},
    )
    return await cur.fetchall()
