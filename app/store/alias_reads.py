"""Reading alias state for sources and status pages (the read API): the current generation of each alias."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alertbridge.db import Connection

COLUMNS = """a.integration, a.alias, a.state, a.generation, a.count AS occurrences, a.opened_at, a.acknowledged_at,
       a.acknowledged_by, a.closed_at, a.closed_by, a.closed_in_opsgenie, a.alert_id, a.tiny_id, a.last_seen_at"""


async def one(conn: Connection, integration: str, alias: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM aliases a WHERE a.integration = %(i)s AND a.alias = %(a)s",
        {"i": integration, "a": alias},
    )
    return await cur.fetchone()


async def page(
    conn: Connection,
    *,
    integrations: list[str] | None,
    state: str | None,
    since: datetime | None,
    after: tuple[str, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Aliases in (integration, alias) order after the cursor ``after``; ``since``: seen (last webhook) since."""
    cur = await conn.execute(
        f"""
        SELECT {COLUMNS} FROM aliases a
        WHERE (%(integrations)s::text[] IS NULL OR a.integration = ANY(%(integrations)s::text[]))
          AND (%(state)s::text IS NULL OR a.state = %(state)s::text)
          AND (%(since)s::timestamptz IS NULL OR a.last_seen_at >= %(since)s::timestamptz)
          AND (%(ai)s::text IS NULL OR (a.integration, a.alias) > (%(ai)s::text, %(aa)s::text))
        ORDER BY a.integration, a.alias
        LIMIT %(limit)s
        """,
        {
            "integrations": integrations,
            "state": state,
            "since": since,
            "ai": after[0] if after else None,
            "aa": after[1] if after else None,
            "limit": limit,
        },
    )
    return await cur.fetchall()
