"""``config_state``: one counter that every change to integrations or templates bumps (and announces with
NOTIFY), so every ``serve`` and ``worker`` process rebuilds its registry — at once on the NOTIFY, or at its next
poll of the counter when the LISTEN connection is down."""

from __future__ import annotations

from alertbridge.db import Connection

CHANNEL = "alertbridge_config"


async def bump(conn: Connection) -> int:
    """Announce a change (caller's transaction: the NOTIFY is delivered when it commits)."""
    cur = await conn.execute(
        "UPDATE config_state SET counter = counter + 1, changed_at = now() WHERE id = 1 RETURNING counter"
    )
    row = await cur.fetchone()
    counter = int(row["counter"]) if row else 0
    await conn.execute(f"SELECT pg_notify('{CHANNEL}', %(c)s)", {"c": str(counter)})
    return counter


async def counter(conn: Connection) -> int:
    cur = await conn.execute("SELECT counter FROM config_state WHERE id = 1")
    row = await cur.fetchone()
    return int(row["counter"]) if row else 0
