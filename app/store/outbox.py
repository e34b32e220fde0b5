"""``outbox``: one row per rendered event. Rows in ``pending``/``in_flight`` are the delivery queue; the rest are
history. Retry state lives on the row (``attempts``, ``next_attempt_at``), so a restart or a ``kill -9`` loses
nothing.

Claiming follows procrastinate: ``FOR UPDATE SKIP LOCKED`` so several workers can share one Postgres, plus a
``NOT EXISTS`` clause that skips a row while an older row of the same alias is unfinished — so OpsGenie sees
create -> acknowledge -> close in order for every alias, across retries and workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.db import Connection

NOTIFY_CHANNEL = "alertbridge_outbox"


@dataclass(frozen=True)
class NewRow:
    seq: int
    action: str
    alias: str
    opsgenie_alias: str
    generation: int
    payload: dict[str, Any]
    cuts: list[dict[str, Any]]
    decision: str
    reason: str
    reason_code: str | None
    status: str  # pending | skipped


_INSERT = """
INSERT INTO outbox (inbound_id, replay_id, seq, integration, action, alias, opsgenie_alias, generation, payload,
                    cuts, decision, reason, reason_code, traceparent, status)
SELECT %(inbound_id)s, %(replay_id)s, u.seq, %(integration)s, u.action, u.alias, u.og, u.gen, u.payload, u.cuts,
       u.decision, u.reason, u.code, %(traceparent)s, u.status
FROM unnest(%(seq)s::smallint[], %(action)s::text[], %(alias)s::text[], %(og)s::text[], %(gen)s::int[],
            %(payload)s::jsonb[], %(cuts)s::jsonb[], %(decision)s::text[], %(reason)s::text[], %(code)s::text[],
            %(status)s::text[])
     AS u(seq, action, alias, og, gen, payload, cuts, decision, reason, code, status)
ORDER BY u.seq
RETURNING id, seq
"""


async def insert(
    conn: Connection,
    *,
    integration: str,
    inbound_id: int,
    rows: Sequence[NewRow],
    traceparent: str | None,
    replay_id: int | None = None,
) -> dict[int, int]:
    """Insert the rows of one webhook; returns seq -> outbox id."""
    if not rows:
        return {}
    cur = await conn.execute(
        _INSERT,
        {
            "inbound_id": inbound_id,
            "replay_id": replay_id,
            "integration": integration,
            "traceparent": traceparent,
            "seq": [r.seq for r in rows],
            "action": [r.action for r in rows],
            "alias": [r.alias for r in rows],
            "og": [r.opsgenie_alias for r in rows],
            "gen": [r.generation for r in rows],
            "payload": [Jsonb(r.payload) for r in rows],
            "cuts": [Jsonb(r.cuts) for r in rows],
            "decision": [r.decision for r in rows],
            "reason": [r.reason for r in rows],
            "code": [r.reason_code for r in rows],
            "status": [r.status for r in rows],
        },
    )
    return {int(r["seq"]): int(r["id"]) for r in await cur.fetchall()}


async def notify(conn: Connection) -> None:
    """Wake workers; Postgres delivers the notification when the transaction commits."""
    await conn.execute(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')")


@dataclass(frozen=True)
class Claimed:
    id: int
    integration: str
    action: str
    alias: str
    opsgenie_alias: str
    generation: int
    payload: dict[str, Any]
    traceparent: str | None
    attempts: int
    age: float  # seconds since queued
    created_at: datetime | None = None  # when the webhook was accepted (accept-to-delivered time)


_CLAIM = """
WITH due AS (
    SELECT o.id FROM outbox o
    WHERE o.status IN ('pending', 'in_flight')
      AND o.next_attempt_at <= now()
      AND (o.status = 'pending' OR o.lease_until < now())
      AND NOT EXISTS (
          SELECT 1 FROM outbox p
          WHERE p.integration = o.integration AND p.alias = o.alias AND p.id < o.id
            AND p.status IN ('pending', 'in_flight'))
    ORDER BY o.next_attempt_at, o.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o SET status = 'in_flight', claimed_by = %(worker)s,
                    lease_until = now() + make_interval(secs => %(lease)s)
FROM due WHERE o.id = due.id
RETURNING o.id, o.integration, o.action, o.alias, o.opsgenie_alias, o.generation, o.payload,
          o.traceparent, o.attempts, extract(epoch FROM now() - o.queued_at)::float8 AS age, o.created_at
"""


async def claim(conn: Connection, *, worker: str, limit: int, lease_seconds: float) -> list[Claimed]:
    cur = await conn.execute(_CLAIM, {"limit": limit, "worker": worker, "lease": lease_seconds})
    claimed = [Claimed(**r) for r in await cur.fetchall()]
    claimed.sort(key=lambda c: c.id)
    return claimed


_MARK_DELIVERED = """
UPDATE outbox SET status = 'delivered', delivered_at = now(), request_id = %(rid)s, attempts = %(n)s,
                  last_outcome = 'delivered', last_error = NULL, lease_until = NULL
WHERE id = %(id)s
"""


async def mark_delivered(conn: Connection, row_id: int, request_id: str | None, attempts: int) -> None:
    await conn.execute(_MARK_DELIVERED, {"id": row_id, "rid": request_id, "n": attempts})


_MARK_RETRY = """
UPDATE outbox SET status = 'pending', next_attempt_at = now() + make_interval(secs => %(delay)s),
                  attempts = %(n)s, last_outcome = %(outcome)s, last_error = %(error)s,
                  lease_until = NULL, claimed_by = NULL
WHERE id = %(id)s
"""


async def mark_retry(conn: Connection, row_id: int, *, delay: float, outcome: str, error: str, attempts: int) -> None:
    await conn.execute(_MARK_RETRY, {"id": row_id, "delay": delay, "n": attempts, "outcome": outcome, "error": error})


_MARK_DEAD = """
UPDATE outbox SET status = 'dead', attempts = %(n)s, last_outcome = %(outcome)s, last_error = %(error)s,
                  lease_until = NULL
WHERE id = %(id)s
"""


async def mark_dead(conn: Connection, row_id: int, *, outcome: str, error: str, attempts: int) -> None:
    await conn.execute(_MARK_DEAD, {"id": row_id, "n": attempts, "outcome": outcome, "error": error})


async def release(conn: Connection, ids: Sequence[int]) -> None:
    """Give claimed rows back to the queue untouched (graceful shutdown)."""
    if ids:
        await conn.execute(
            "UPDATE outbox SET status = 'pending', lease_until = NULL, claimed_by = NULL "
            "WHERE id = ANY(%(ids)s::bigint[]) AND status = 'in_flight'",
            {"ids": list(ids)},
        )


_REQUEUE_DEAD = """
UPDATE outbox SET status = 'pending', next_attempt_at = now(), queued_at = now(),
                  lease_until = NULL, claimed_by = NULL
WHERE status = 'dead'
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
  AND (%(integration)s::text IS NULL OR integration = %(integration)s::text)
RETURNING id
"""


async def requeue_dead(
    conn: Connection, *, ids: Iterable[int] | None = None, integration: str | None = None
) -> list[int]:
    """``alertbridge replay --dead``: dead rows go back to pending with a fresh retry age."""
    cur = await conn.execute(_REQUEUE_DEAD, {"ids": list(ids) if ids is not None else None, "integration": integration})
    requeued = sorted(int(r["id"]) for r in await cur.fetchall())
    if requeued:
        await notify(conn)
    return requeued


# --- gauges (read when /metrics is scraped) ------------------------------------------------------------------


async def count_by_status(conn: Connection) -> dict[str, int]:
    """Rows per status (the caller sets a statement timeout: this reads the whole table)."""
    cur = await conn.execute("SELECT status, count(*) AS n FROM outbox GROUP BY status")
    return {str(r["status"]): int(r["n"]) for r in await cur.fetchall()}


async def oldest_pending_seconds(conn: Connection) -> float:
    """Age of the oldest row waiting for delivery (since it was queued or re-queued); 0 when none waits."""
    cur = await conn.execute(
        "SELECT coalesce(extract(epoch FROM now() - min(queued_at)), 0)::float8 AS age "
        "FROM outbox WHERE status IN ('pending', 'in_flight')"
    )
    row = await cur.fetchone()
    return float(row["age"]) if row else 0.0


# --- dead letters and the alias timeline (console and admin API) -------------------------------------------

_DEAD_COLUMNS = """
o.id, o.inbound_id, o.integration, o.action, o.alias, o.opsgenie_alias, o.status, o.attempts, o.last_outcome,
o.last_error, o.created_at, o.queued_at, o.discard_reason,
(SELECT jsonb_build_object('http_status', a.http_status, 'reason', a.reason, 'outcome', a.outcome,
                           'response', a.response_snippet, 'at', a.started_at)
 FROM delivery_attempts a WHERE a.outbox_id = o.id ORDER BY a.id DESC LIMIT 1) AS last_answer
"""


async def dead(conn: Connection, *, integration: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Dead letters (newest first), each with OpsGenie's last answer."""
    cur = await conn.execute(
        f"SELECT {_DEAD_COLUMNS} FROM outbox o WHERE o.status = 'dead' "
        "AND (%(i)s::text IS NULL OR o.integration = %(i)s) ORDER BY o.id DESC LIMIT %(n)s",
        {"i": integration, "n": limit},
    )
    return await cur.fetchall()


async def discard(conn: Connection, ids: Sequence[int], reason: str) -> list[int]:
    """Dead letters an admin gives up on: status 'discarded' with the reason (never sent, never re-queued)."""
    cur = await conn.execute(
        "UPDATE outbox SET status = 'discarded', discard_reason = %(r)s, lease_until = NULL "
        "WHERE status = 'dead' AND id = ANY(%(ids)s::bigint[]) RETURNING id",
        {"ids": list(ids), "r": reason},
    )
    return sorted(int(r["id"]) for r in await cur.fetchall())


async def dead_counts(conn: Connection, hours: float = 24.0) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT integration, count(*) AS n FROM outbox WHERE status = 'dead' "
        "AND created_at > now() - make_interval(secs => %(s)s) GROUP BY integration",
        {"s": hours * 3600},
    )
    return {r["integration"]: int(r["n"]) for r in await cur.fetchall()}


async def for_alias(conn: Connection, integration: str, alias: str, *, limit: int = 500) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT id, inbound_id, replay_id, seq, action, generation, decision, reason, status, attempts, "
        "last_outcome, last_error, request_id, created_at, delivered_at, payload, cuts, discard_reason "
        "FROM outbox WHERE integration = %(i)s AND alias = %(a)s ORDER BY id DESC LIMIT %(n)s",
        {"i": integration, "a": alias, "n": limit},
    )
    return await cur.fetchall()
