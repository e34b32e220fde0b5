"""``login_failures``: failed console logins. The rate limit counts them per name and per address over a
window, in Postgres, so it holds across every serve process."""

from __future__ import annotations

from alertbridge.db import Connection


async def record(conn: Connection, name: str, remote_addr: str | None) -> None:
    await conn.execute(
        "INSERT INTO login_failures (name, remote_addr) VALUES (%(n)s, %(a)s)", {"n": name[:200], "a": remote_addr}
    )
    await conn.execute(
        "DELETE FROM login_failures WHERE id IN "
        "(SELECT id FROM login_failures WHERE at < now() - interval '1 day' LIMIT 100)"
    )


async def recent(conn: Connection, name: str, remote_addr: str | None, window_seconds: float) -> tuple[int, int]:
    """Failures in the window: (for this name, from this address)."""
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE name = %(n)s) AS by_name, "
        "count(*) FILTER (WHERE remote_addr IS NOT DISTINCT FROM %(a)s) AS by_addr "
        "FROM login_failures WHERE at > now() - make_interval(secs => %(w)s)",
        {"n": name[:200], "a": remote_addr, "w": window_seconds},
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["by_name"]), int(row["by_addr"])


async def clear(conn: Connection, name: str) -> None:
    await conn.execute("DELETE FROM login_failures WHERE name = %(n)s", {"n": name[:200]})
