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
    alias: str | None = None,
    text: str | None = None,
) -> list[dict[str, Any]]:
    """Aliases in (integration, alias) order after the cursor ``after``; ``since``: seen (last webhook) since;
    ``alias``: a part of the alias (any case); ``text``: a text of their alerts (what was sent to OpsGenie)."""
    cur = await conn.execute(
        f"""
        SELECT {COLUMNS} FROM aliases a
        WHERE (%(integrations)s::text[] IS NULL OR a.integration = ANY(%(integrations)s::text[]))
          AND (%(state)s::text IS NULL OR a.state = %(state)s::text)
          AND (%(since)s::timestamptz IS NULL OR a.last_seen_at >= %(since)s::timestamptz)
          AND (%(ai)s::text IS NULL OR (a.integration, a.alias) > (%(ai)s::text, %(aa)s::text))
          AND (%(part)s::text IS NULL OR strpos(lower(a.alias), lower(%(part)s::text)) > 0)
          AND (%(text)s::text IS NULL OR EXISTS (
                SELECT 1 FROM outbox o WHERE o.integration = a.integration AND o.alias = a.alias
                  AND strpos(lower(o.payload::text), lower(%(text)s::text)) > 0))
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
            "part": alias or None,
            "text": text or None,
        },
    )
    return await cur.fetchall()
