"""``integration_tokens``: webhook tokens of console-managed integrations, as SHA-256 hex digests (the token
itself is shown once, when it is made). Several tokens may be valid at once: a rotation adds one, and the old
one works until it is removed."""

from __future__ import annotations

from typing import Any

from alertbridge.db import Connection


async def add(conn: Connection, integration: str, *, label: str, sha256: str, created_by: str) -> dict[str, Any]:
    cur = await conn.execute(
        "INSERT INTO integration_tokens (integration, label, sha256, created_by) "
        "VALUES (%(i)s, %(label)s, %(sha)s, %(by)s) RETURNING id, integration, label, created_at, created_by",
        {"i": integration, "label": label, "sha": sha256, "by": created_by},
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def listing(conn: Connection, integration: str) -> list[dict[str, Any]]:
    """The tokens of an integration, without their hashes."""
    cur = await conn.execute(
        "SELECT id, label, created_at, created_by FROM integration_tokens WHERE integration = %(i)s ORDER BY id",
        {"i": integration},
    )
    return await cur.fetchall()


async def remove(conn: Connection, integration: str, token_id: int) -> dict[str, Any] | None:
    cur = await conn.execute(
        "DELETE FROM integration_tokens WHERE integration = %(i)s AND id = %(id)s "
        "RETURNING id, label, created_at, created_by",
        {"i": integration, "id": token_id},
    )
    return await cur.fetchone()
