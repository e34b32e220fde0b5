"""``inbound_events`` and ``inbound_replays``: every webhook that passed authentication, and every replay of it."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.db import Connection, json_rows


@dataclass(frozen=True)
class NewInbound:
    integration: str
    remote_addr: str | None
    content_type: str | None
    headers: dict[str, str]  # already redacted
    query: dict[str, str]  # already redacted
    body: bytes | None  # None: not kept (too large)
    body_size: int
    status: str  # an InboundStatus value
    error: dict[str, Any] | None
    template_sha256: str | None
    events_count: int
    traceparent: str | None
    template_version_id: int | None = None


_INSERT = """
INSERT INTO inbound_events (integration, remote_addr, content_type, headers, query, body, body_size, status,
                            current_status, error, template_sha256, events_count, traceparent, processed_at,
                            template_version_id)
VALUES (%(integration)s, %(remote_addr)s, %(content_type)s, %(headers)s, %(query)s, %(body)s, %(body_size)s,
        %(status)s, %(status)s, %(error)s, %(template_sha256)s, %(events_count)s, %(traceparent)s, now(),
        %(template_version_id)s)
RETURNING id
"""


async def insert(conn: Connection, row: NewInbound) -> int:
    cur = await conn.execute(
        _INSERT,
        {
            **row.__dict__,
            "headers": Jsonb(row.headers),
            "query": Jsonb(row.query),
            "error": Jsonb(row.error) if row.error is not None else None,
        },
    )
    found = await cur.fetchone()
    assert found is not None
    return int(found["id"])


_GET = """
SELECT id, integration, received_at, status, current_status, body, content_type, headers, query, remote_addr,
       traceparent, error, replay_count
FROM inbound_events WHERE id = %(id)s
"""


async def get(conn: Connection, inbound_id: int) -> dict[str, Any] | None:
    cur = await conn.execute(_GET, {"id": inbound_id})
    return await cur.fetchone()


_INSERT_REPLAY = """
WITH r AS (
    INSERT INTO inbound_replays (inbound_id, actor, status, error, template_sha256, events_count, template_version_id)
    VALUES (%(inbound_id)s, %(actor)s, %(status)s, %(error)s, %(sha)s, %(n)s, %(vid)s)
    RETURNING id, inbound_id, status
), u AS (
    UPDATE inbound_events i SET current_status = r.status, replay_count = replay_count + 1, processed_at = now()
    FROM r WHERE i.id = r.inbound_id
)
SELECT id FROM r
"""


async def record_replay(
    conn: Connection,
    inbound_id: int,
    *,
    actor: str,
    status: str,
    error: dict[str, Any] | None,
    template_sha256: str | None,
    events_count: int,
    template_version_id: int | None = None,
) -> int:
    """A replay is a row of its own; the webhook's original status and error stay as they were."""
    cur = await conn.execute(
        _INSERT_REPLAY,
        {
            "inbound_id": inbound_id,
            "actor": actor,
            "status": status,
            "error": Jsonb(error) if error is not None else None,
            "sha": template_sha256,
            "n": events_count,
            "vid": template_version_id,
        },
    )
    found = await cur.fetchone()
    assert found is not None
    return int(found["id"])


# --- for the console and the admin API (read only) ---------------------------------------------------------

_LIST_COLUMNS = """
id, integration, received_at, status, current_status, error, body_size, content_type, events_count,
template_version_id, replay_count
"""


async def recent(
    conn: Connection, integration: str, *, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The last ``limit`` stored webhooks of an integration (template errors first, then newest first)."""
    cur = await conn.execute(
        f"SELECT {_LIST_COLUMNS} FROM (SELECT * FROM inbound_events WHERE integration = %(i)s "
        "AND (%(s)s::text IS NULL OR status = %(s)s OR current_status = %(s)s) "
        "ORDER BY received_at DESC, id DESC LIMIT %(n)s) AS r "
        "ORDER BY (current_status = 'template_error') DESC, received_at DESC, id DESC",
        {"i": integration, "s": status, "n": limit},
    )
    return await cur.fetchall()


async def recent_bodies(conn: Connection, integration: str, limit: int = 200) -> list[dict[str, Any]]:
    """The last ``limit`` webhooks with a body (what "test against recent traffic" renders)."""
    cur = await conn.execute(
        "SELECT id, received_at, status, body, content_type, headers, query FROM inbound_events "
        "WHERE integration = %(i)s AND body IS NOT NULL AND status <> 'handshake' "
        "ORDER BY received_at DESC, id DESC LIMIT %(n)s",
        {"i": integration, "n": limit},
    )
    return await cur.fetchall()


async def failed(conn: Connection, integration: str | None, *, limit: int = 100) -> list[dict[str, Any]]:
    """Webhooks whose first outcome was a body or template error, newest first (fixed ones included: their
    replays show the fix)."""
    cur = await conn.execute(
        f"SELECT {_LIST_COLUMNS} FROM inbound_events WHERE status IN ('template_error', 'invalid') "
        "AND (%(i)s::text IS NULL OR integration = %(i)s) ORDER BY id DESC LIMIT %(n)s",
        {"i": integration, "n": limit},
    )
    return await cur.fetchall()


async def replays_of(conn: Connection, inbound_ids: list[int]) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT r.id, r.inbound_id, r.at, r.actor, r.status, r.error, r.events_count, r.template_version_id, "
        "v.version FROM inbound_replays r LEFT JOIN template_versions v ON v.id = r.template_version_id "
        "WHERE r.inbound_id = ANY(%(ids)s::bigint[]) ORDER BY r.id",
        {"ids": inbound_ids},
    )
    return await cur.fetchall()


async def failing_since(conn: Connection, integration: str, since: Any, *, limit: int = 1000) -> list[int]:
    """Ids of webhooks of an integration that still fail with a template error, received since ``since``."""
    cur = await conn.execute(
        "SELECT id FROM inbound_events WHERE integration = %(i)s AND current_status = 'template_error' "
        "AND received_at >= %(since)s ORDER BY id LIMIT %(n)s",
        {"i": integration, "since": since, "n": limit},
    )
    return [int(r["id"]) for r in await cur.fetchall()]


async def stats(conn: Connection, hours: float = 24.0) -> dict[str, dict[str, Any]]:
    """Per integration: webhooks by status over the last ``hours``, and when the last one came."""
    cur = await conn.execute(
        "SELECT i.name, (SELECT max(received_at) FROM inbound_events e WHERE e.integration = i.name) AS last, "
        "(SELECT jsonb_object_agg(s.status, s.n) FROM (SELECT status, count(*) AS n FROM inbound_events e "
        " WHERE e.integration = i.name AND e.received_at > now() - make_interval(secs => %(s)s) "
        " GROUP BY status) s) AS counts FROM integrations i",
        {"s": hours * 3600},
    )
    return {r["name"]: {"last_received_at": r["last"], "counts": r["counts"] or {}} for r in await cur.fetchall()}


async def by_ids(conn: Connection, ids: list[int]) -> list[dict[str, Any]]:
    cur = await conn.execute(
        f"SELECT {_LIST_COLUMNS}, traceparent FROM inbound_events WHERE id = ANY(%(ids)s::bigint[])", {"ids": ids}
    )
    return await cur.fetchall()


async def last_received(conn: Connection, integration: str) -> datetime | None:
    """When the integration's newest webhook came (any outcome but refused: a source that speaks is alive)."""
    cur = await conn.execute(
        "SELECT max(received_at) AS at FROM inbound_events WHERE integration = %(i)s", {"i": integration}
    )
    row = await cur.fetchone()
    return row["at"] if row else None


# --- group commit (app/ingest.py ``commit``): many webhooks, one statement -------------------------------------

_INSERT_MANY = """
INSERT INTO inbound_events (integration, remote_addr, content_type, headers, query, body, body_size, status,
                            current_status, error, template_sha256, events_count, traceparent, processed_at,
                            template_version_id)
SELECT u.integration, u.remote_addr, u.content_type, u.headers, u.query, decode(u.body, 'base64'), u.body_size,
       u.status, u.status, u.error, u.sha, u.n, u.traceparent, now(), u.vid
FROM json_to_recordset(%(rows)s::json)
     AS u(k int, integration text, remote_addr text, content_type text, headers jsonb, query jsonb, body text,
          body_size int, status text, error jsonb, sha text, n int, traceparent text, vid bigint)
ORDER BY u.k
RETURNING id
"""


async def insert_many(conn: Connection, rows: Sequence[NewInbound]) -> Callable[[], Awaitable[list[int]]]:
    """Insert the webhooks of one batch in one statement. Sends it (in a pipeline, nothing waits); the returned
    function reads their ids, in the order of ``rows``."""
    cur = await conn.execute(
        _INSERT_MANY,
        {
            "rows": json_rows(
                [
                    {
                        "k": k,
                        "integration": r.integration,
                        "remote_addr": r.remote_addr,
                        "content_type": r.content_type,
                        "headers": r.headers,
                        "query": r.query,
                        "body": base64.b64encode(r.body).decode() if r.body is not None else None,
                        "body_size": r.body_size,
                        "status": r.status,
                        "error": r.error,
                        "sha": r.template_sha256,
                        "n": r.events_count,
                        "traceparent": r.traceparent,
                        "vid": r.template_version_id,
                    }
                    for k, r in enumerate(rows)
                ]
            )
        },
    )

    async def ids() -> list[int]:
        # Identity values follow the insertion order (ORDER BY u.k), so sorted ids are the rows' ids in order.
        return sorted(int(r["id"]) for r in await cur.fetchall())

    return ids
