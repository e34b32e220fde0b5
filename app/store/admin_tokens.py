"""``admin_tokens``: admin API tokens, as SHA-256 hex digests (the token is printed once, when made)."""

from __future__ import annotations

from typing import Any

from alertbridge.db import Connection


async def insert(conn: Connection, name: str, sha256: str, role: str) -> dict[str, Any]:
    cur = await conn.execute(
        "INSERT INTO admin_tokens (name, token_sha256, role) VALUES (%(n)s, %(s)s, %(r)s) "
        "RETURNING id, name, role, created_at",
        {"n": name, "s": sha256, "r": role},
    )
    row = await cur.fetchone()
    assert row is not None
    return row


_USE = """
UPDATE admin_tokens SET last_used_at = now()
WHERE token_sha256 = %(s)s AND revoked_at IS NULL
  AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')
"""


async def find(conn: Connection, sha256: str) -> dict[str, Any] | None:
    """A valid (not revoked) token by its digest; notes when it was last used (at most once a minute)."""
    cur = await conn.execute(
        "SELECT id, name, role FROM admin_tokens WHERE token_sha256 = %(s)s AND revoked_at IS NULL", {"s": sha256}
    )
    row = await cur.fetchone()
    if row is not None:
        await conn.execute(_USE, {"s": sha256})
    return row


async def revoke(conn: Connection, token_id: int) -> dict[str, Any] | None:
    cur = await conn.execute(
        "UPDATE admin_tokens SET revoked_at = now() WHERE id = %(id)s AND revoked_at IS NULL RETURNING id, name, role",
        {"id": token_id},
    )
    return await cur.fetchone()


async def listing(conn: Connection) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT id, name, role, created_at, last_used_at, revoked_at FROM admin_tokens ORDER BY id"
    )
    return await cur.fetchall()
