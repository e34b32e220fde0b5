"""``inbound_events`` and ``inbound_replays``: every webhook that passed authentication, and every replay of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.db import Connection


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
