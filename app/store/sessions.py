"""``admin_sessions``: console sessions, server side. The cookie holds a random id; this table its SHA-256,
the user and the expiry. Logout deletes the row."""

from __future__ import annotations

from typing import Any

from alertbridge.db import Connection


async def create(conn: Connection, id_sha256: str, user_id: int, ttl_seconds: float, remote_addr: str | None) -> None:
    await conn.execute(
        "INSERT INTO admin_sessions (id_sha256, user_id, expires_at, remote_addr) "
        "VALUES (%(s)s, %(u)s, now() + make_interval(secs => %(ttl)s), %(addr)s)",
        {"s": id_sha256, "u": user_id, "ttl": ttl_seconds, "addr": remote_addr},
    )
    # Expired sessions of anyone go at the same time (bounded work).
    await conn.execute(
        "DELETE FROM admin_sessions WHERE id_sha256 IN "
        "(SELECT id_sha256 FROM admin_sessions WHERE expires_at < now() LIMIT 100)"
    )


_FIND = """
WITH s AS (
    UPDATE admin_sessions SET last_seen_at = now(),
           expires_at = greatest(expires_at, now() + make_interval(secs => %(ttl)s))
    WHERE id_sha256 = %(s)s AND expires_at > now()
    RETURNING user_id
)
SELECT u.id, u.name, u.role FROM s JOIN console_users u ON u.id = s.user_id WHERE NOT u.disabled
"""


async def find(conn: Connection, id_sha256: str, ttl_seconds: float) -> dict[str, Any] | None:
    """The session's user while it has not expired (each use extends it to ``ttl_seconds`` from now)."""
    cur = await conn.execute(_FIND, {"s": id_sha256, "ttl": ttl_seconds})
    return await cur.fetchone()


async def delete(conn: Connection, id_sha256: str) -> None:
    await conn.execute("DELETE FROM admin_sessions WHERE id_sha256 = %(s)s", {"s": id_sha256})
