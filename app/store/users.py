"""``console_users``: who may log in to the console (argon2 password hashes, never a password)."""

from __future__ import annotations

from typing import Any

from alertbridge.db import Connection


async def upsert(conn: Connection, name: str, password_hash: str, role: str) -> dict[str, Any]:
    """Create the user, or set a new password and role (``admin create-user`` on an existing name)."""
    cur = await conn.execute(
        "INSERT INTO console_users (name, password_hash, role) VALUES (%(n)s, %(h)s, %(r)s) "
        "ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role, "
        "disabled = false RETURNING id, name, role, (xmax = 0) AS created",
        {"n": name, "h": password_hash, "r": role},
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def by_name(conn: Connection, name: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT id, name, password_hash, role, disabled FROM console_users WHERE name = %(n)s", {"n": name}
    )
    return await cur.fetchone()


async def set_password_hash(conn: Connection, user_id: int, password_hash: str) -> None:
    await conn.execute(
        "UPDATE console_users SET password_hash = %(h)s WHERE id = %(id)s", {"h": password_hash, "id": user_id}
    )


async def logged_in(conn: Connection, user_id: int) -> None:
    await conn.execute("UPDATE console_users SET last_login_at = now() WHERE id = %(id)s", {"id": user_id})


async def listing(conn: Connection) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT id, name, role, created_at, last_login_at, disabled FROM console_users ORDER BY name"
    )
    return await cur.fetchall()
