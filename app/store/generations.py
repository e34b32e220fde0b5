"""``generations``: one row per OpsGenie alert an alias opened. Webhooks (through the plan) write the lifecycle,
callbacks write what OpsGenie users did, delivery writes the alertId/tinyId OpsGenie returned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from alertbridge.core.plan import GenerationWrite
from alertbridge.db import Connection, json_rows

_WRITE = """
INSERT INTO generations AS g (integration, alias, generation, opsgenie_alias, state, priority, message,
                              source_started_at, opened_at, first_acknowledged_at, first_acknowledged_by,
                              acknowledged_at, acknowledged_by, closed_at, closed_by, closed_in_opsgenie, occurrences,
                              updated_at)
SELECT %(i)s, u.alias, u.gen, u.og, u.state, u.priority, u.message, u.started, u.opened, u.acked, u.acked_by, u.acked,
       u.acked_by, u.closed, u.closed_by, u.closed_og, u.count, %(now)s
FROM unnest(%(alias)s::text[], %(gen)s::int[], %(og)s::text[], %(state)s::text[], %(priority)s::text[],
            %(message)s::text[], %(started)s::timestamptz[], %(opened)s::timestamptz[], %(acked)s::timestamptz[],
            %(acked_by)s::text[], %(closed)s::timestamptz[], %(closed_by)s::text[], %(closed_og)s::bool[],
            %(count)s::int[])
     AS u(alias, gen, og, state, priority, message, started, opened, acked, acked_by, closed, closed_by, closed_og,
          count)
ON CONFLICT (integration, alias, generation) DO UPDATE SET
    opsgenie_alias = EXCLUDED.opsgenie_alias,
    state = EXCLUDED.state,
    priority = COALESCE(EXCLUDED.priority, g.priority),
    message = COALESCE(EXCLUDED.message, g.message),
    source_started_at = COALESCE(g.source_started_at, EXCLUDED.source_started_at),
    first_acknowledged_at = COALESCE(g.first_acknowledged_at, EXCLUDED.acknowledged_at),
    first_acknowledged_by = CASE WHEN g.first_acknowledged_at IS NULL THEN EXCLUDED.acknowledged_by
                                 ELSE g.first_acknowledged_by END,
    acknowledged_at = EXCLUDED.acknowledged_at,
    acknowledged_by = EXCLUDED.acknowledged_by,
    closed_at = EXCLUDED.closed_at,
    closed_by = EXCLUDED.closed_by,
    closed_in_opsgenie = EXCLUDED.closed_in_opsgenie,
    occurrences = EXCLUDED.occurrences,
    updated_at = EXCLUDED.updated_at
"""


async def write(conn: Connection, integration: str, writes: Sequence[GenerationWrite], now: datetime) -> None:
    """Persist the generations a plan touched (the caller holds the aliases' locks)."""
    if not writes:
        return
    r = [w.record for w in writes]
    opening = [w.opening for w in writes]
    await conn.execute(
        _WRITE,
        {
            "i": integration,
            "now": now,
            "alias": [w.alias for w in writes],
            "gen": [w.generation for w in writes],
            "og": [w.opsgenie_alias for w in writes],
            "state": [x.state for x in r],
            "priority": [(e.fields.get("priority") if e else None) for e in opening],
            "message": [(e.fields.get("message") if e else None) for e in opening],
            "started": [(e.started_at if e else None) for e in opening],
            "opened": [x.opened_at or now for x in r],
            "acked": [x.acknowledged_at for x in r],
            "acked_by": [x.acknowledged_by for x in r],
            "closed": [x.closed_at for x in r],
            "closed_by": [x.closed_by for x in r],
            "closed_og": [x.closed_in_opsgenie for x in r],
            "count": [x.count for x in r],
        },
    )


_WRITE_MANY = (
    _WRITE[: _WRITE.index("SELECT %(i)s")]
    + """SELECT u.integration, u.alias, u.gen, u.og, u.state, u.priority, u.message, u.started, u.opened, u.acked,
       u.acked_by, u.acked, u.acked_by, u.closed, u.closed_by, u.closed_og, u.count, %(now)s
FROM json_to_recordset(%(rows)s::json)
     AS u(integration text, alias text, gen int, og text, state text, priority text, message text,
          started timestamptz, opened timestamptz, acked timestamptz, acked_by text, closed timestamptz,
          closed_by text, closed_og bool, count int)
ORDER BY u.integration, u.alias, u.gen
"""
    + _WRITE[_WRITE.index("ON CONFLICT") :]
)


async def write_many(conn: Connection, writes: Sequence[tuple[str, GenerationWrite]], now: datetime) -> None:
    """``write`` for a batch: (integration, write), one per generation (the caller merges the writes of several
    webhooks to the same generation, keeping the last record and the create that opened it)."""
    if not writes:
        return
    rows = []
    for integration, w in writes:
        x, e = w.record, w.opening
        rows.append(
            {
                "integration": integration,
                "alias": w.alias,
                "gen": w.generation,
                "og": w.opsgenie_alias,
                "state": x.state,
                "priority": e.fields.get("priority") if e else None,
                "message": e.fields.get("message") if e else None,
                "started": e.started_at if e else None,
                "opened": x.opened_at or now,
                "acked": x.acknowledged_at,
                "acked_by": x.acknowledged_by,
                "closed": x.closed_at,
                "closed_by": x.closed_by,
                "closed_og": x.closed_in_opsgenie,
                "count": x.count,
            }
        )
    await conn.execute(_WRITE_MANY, {"now": now, "rows": json_rows(rows)})


async def get(conn: Connection, integration: str, alias: str, generation: int) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT * FROM generations WHERE integration = %(i)s AND alias = %(a)s AND generation = %(g)s",
        {"i": integration, "a": alias, "g": generation},
    )
    return await cur.fetchone()


async def by_alert_id(conn: Connection, alert_id: str) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM generations WHERE alert_id = %(id)s", {"id": alert_id})
    return await cur.fetchall()
