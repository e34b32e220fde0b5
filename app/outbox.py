"""The outbox: one row per rendered event. Rows in ``pending``/``in_flight`` are the delivery queue; the
rest are history. Retry state lives on the row (``attempts``, ``next_attempt_at``), so a restart or a
``kill -9`` loses nothing.

Claiming follows procrastinate: ``FOR UPDATE SKIP LOCKED`` so several workers can share one Postgres, plus a
``NOT EXISTS`` clause that skips a row while an older row of the same alias is unfinished — so OpsGenie sees
create -> acknowledge -> close in order for every alias, across retries and workers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

NOTIFY_CHANNEL = "alertbridge_outbox"


# --- retry policy (pure) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    max_age: float = 86400.0
    config_error_retry: float = 60.0
    config_error_max_age: float = 604800.0


def backoff(attempt: int, policy: RetryPolicy, rand: float) -> float:
    """Exponential backoff with jitter for the ``attempt``-th failure (1-based); ``rand`` in [0, 1).

    "Equal jitter": half the exponential delay is fixed, half random, so retries spread out but never
    come back immediately.
    """
    exp = min(policy.backoff_max, policy.backoff_base * (2 ** max(0, attempt - 1)))
    return exp / 2 + (exp / 2) * rand


def next_retry(
    kind: str,
    attempt: int,
    age: float,
    policy: RetryPolicy,
    *,
    retry_after: float | None = None,
    rand: float | None = None,
) -> float | None:
    """Seconds until the next attempt after an outcome of ``kind``, or None when the row is dead.

    ``age``: seconds since the row was queued. ``retry_after``: what the response asked for (429).
    """
    if kind == "retry":
        delay = (
            retry_after
            if retry_after is not None
            else backoff(attempt, policy, random.random() if rand is None else rand)
        )
        delay = min(max(delay, 0.0), max(policy.backoff_max, retry_after or 0.0))
        return delay if age + delay <= policy.max_age else None
    if kind == "config_error":
        return policy.config_error_retry if age + policy.config_error_retry <= policy.config_error_max_age else None
    if kind == "waiting":  # the alias's create is not processed by OpsGenie yet
        delay = min(0.25 * attempt, 5.0) if attempt > 0 else 0.25
        return delay if age + delay <= policy.max_age else None
    return None  # delivered / rejected: no retry


# --- queries --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewRow:
    inbound_id: int
    seq: int
    integration: str
    action: str
    alias: str
    opsgenie_alias: str
    generation: int
    payload: dict[str, Any]
    cuts: list[dict[str, Any]]
    decision: str
    reason: str
    traceparent: str | None
    status: str  # pending | skipped


_INSERT_SQL = text(
    """
    INSERT INTO outbox (inbound_id, seq, integration, action, alias, opsgenie_alias, generation,
                        payload, cuts, decision, reason, traceparent, status)
    VALUES (:inbound_id, :seq, :integration, :action, :alias, :opsgenie_alias, :generation,
            CAST(:payload AS jsonb), CAST(:cuts AS jsonb), :decision, :reason, :traceparent, :status)
    RETURNING id
    """
)


async def insert(conn: AsyncConnection, row: NewRow) -> int:
    result = await conn.execute(
        _INSERT_SQL,
        {**row.__dict__, "payload": json.dumps(row.payload), "cuts": json.dumps(row.cuts)},
    )
    return int(result.scalar_one())


_NOTIFY_SQL = text(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')")


async def notify(conn: AsyncConnection) -> None:
    """Wake workers; Postgres delivers the notification when the transaction commits."""
    await conn.execute(_NOTIFY_SQL)


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


CLAIM_SQL = text(
    """
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
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE outbox o SET status = 'in_flight', claimed_by = :worker,
                        lease_until = now() + make_interval(secs => :lease)
    FROM due WHERE o.id = due.id
    RETURNING o.id, o.integration, o.action, o.alias, o.opsgenie_alias, o.generation, o.payload,
              o.traceparent, o.attempts, extract(epoch FROM now() - o.queued_at)::float8 AS age
    """
)


async def claim(conn: AsyncConnection, *, worker: str, limit: int, lease_seconds: float) -> list[Claimed]:
    rows = (await conn.execute(CLAIM_SQL, {"limit": limit, "worker": worker, "lease": lease_seconds})).mappings()
    claimed = [Claimed(**dict(r)) for r in rows]
    claimed.sort(key=lambda c: c.id)
    return claimed


@dataclass(frozen=True)
class Attempt:
    kind: str  # send | status_check
    method: str
    url: str
    started_at: Any  # datetime
    latency_ms: float | None
    http_status: int | None
    outcome: str
    reason: str
    request_id: str | None
    response_snippet: str | None


_RECORD_ATTEMPT_SQL = text(
    """
    INSERT INTO delivery_attempts (outbox_id, attempt, kind, worker, method, url, started_at, latency_ms,
                                   http_status, outcome, reason, request_id, response_snippet)
    VALUES (:o, :n, :kind, :worker, :method, :url, :started_at, :latency_ms, :http_status, :outcome,
            :reason, :request_id, :response_snippet)
    """
)


async def record_attempt(conn: AsyncConnection, outbox_id: int, attempt_no: int, worker: str, a: Attempt) -> None:
    await conn.execute(
        _RECORD_ATTEMPT_SQL,
        {"o": outbox_id, "n": attempt_no, "worker": worker, **a.__dict__},
    )


_MARK_DELIVERED_SQL = text(
    """
    UPDATE outbox SET status = 'delivered', delivered_at = now(), request_id = :rid, attempts = :n,
                      last_outcome = 'delivered', last_error = NULL, lease_until = NULL
    WHERE id = :id
    """
)


_ALIAS_AFTER_DELIVERY_SQL = text(
    """
    UPDATE aliases SET last_request_id = :rid,
           create_request_id = CASE WHEN :is_create THEN :rid ELSE create_request_id END,
           create_confirmed = CASE WHEN :is_create THEN false ELSE create_confirmed END
    WHERE integration = :i AND alias = :a AND generation = :g
    """
)


async def mark_delivered(conn: AsyncConnection, row: Claimed, request_id: str | None, attempts: int) -> None:
    await conn.execute(
        _MARK_DELIVERED_SQL,
        {"id": row.id, "rid": request_id, "n": attempts},
    )
    await conn.execute(
        _ALIAS_AFTER_DELIVERY_SQL,
        {
            "rid": request_id,
            "is_create": row.action == "create",
            "i": row.integration,
            "a": row.alias,
            "g": row.generation,
        },
    )


_MARK_RETRY_SQL = text(
    """
    UPDATE outbox SET status = 'pending', next_attempt_at = now() + make_interval(secs => :delay),
                      attempts = :n, last_outcome = :outcome, last_error = :error,
                      lease_until = NULL, claimed_by = NULL
    WHERE id = :id
    """
)


async def mark_retry(
    conn: AsyncConnection, row: Claimed, *, delay: float, outcome: str, error: str, attempts: int
) -> None:
    await conn.execute(
        _MARK_RETRY_SQL,
        {"id": row.id, "delay": delay, "n": attempts, "outcome": outcome, "error": error},
    )


_MARK_DEAD_SQL = text(
    """
    UPDATE outbox SET status = 'dead', attempts = :n, last_outcome = :outcome, last_error = :error,
                      lease_until = NULL
    WHERE id = :id
    """
)


async def mark_dead(conn: AsyncConnection, row: Claimed, *, outcome: str, error: str, attempts: int) -> None:
    await conn.execute(
        _MARK_DEAD_SQL,
        {"id": row.id, "n": attempts, "outcome": outcome, "error": error},
    )


async def release(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Give claimed rows back to the queue untouched (graceful shutdown)."""
    if ids:
        await conn.execute(
            text(
                "UPDATE outbox SET status = 'pending', lease_until = NULL, claimed_by = NULL "
                "WHERE id = ANY(:ids) AND status = 'in_flight'"
            ),
            {"ids": list(ids)},
        )


_ALIAS_CREATE_STATUS_SQL = text(
    """
    SELECT create_request_id FROM aliases
    WHERE integration = :i AND alias = :a AND generation = :g
      AND create_request_id IS NOT NULL AND NOT create_confirmed
    """
)


async def alias_create_status(conn: AsyncConnection, row: Claimed) -> dict[str, Any] | None:
    """The create request of the alias generation ``row`` belongs to, if it still needs confirming."""
    found = (
        (
            await conn.execute(
                _ALIAS_CREATE_STATUS_SQL,
                {"i": row.integration, "a": row.alias, "g": row.generation},
            )
        )
        .mappings()
        .first()
    )
    return dict(found) if found else None


_CONFIRM_CREATE_SQL = text(
    """
    UPDATE aliases SET create_confirmed = true, alert_id = COALESCE(:alert_id, alert_id)
    WHERE integration = :i AND alias = :a AND generation = :g
    """
)


async def confirm_create(conn: AsyncConnection, row: Claimed, alert_id: str | None) -> None:
    await conn.execute(
        _CONFIRM_CREATE_SQL,
        {"alert_id": alert_id, "i": row.integration, "a": row.alias, "g": row.generation},
    )


_REQUEUE_DEAD_SQL = text(
    """
    UPDATE outbox SET status = 'pending', next_attempt_at = now(), queued_at = now(),
                      lease_until = NULL, claimed_by = NULL
    WHERE status = 'dead'
      AND (CAST(:ids AS bigint[]) IS NULL OR id = ANY(CAST(:ids AS bigint[])))
      AND (CAST(:integration AS text) IS NULL OR integration = :integration)
    RETURNING id
    """
)


async def requeue_dead(
    conn: AsyncConnection, *, ids: Iterable[int] | None = None, integration: str | None = None
) -> list[int]:
    """``alertbridge replay --dead``: dead rows go back to pending with a fresh retry age."""
    id_list = list(ids) if ids is not None else None
    result = await conn.execute(
        _REQUEUE_DEAD_SQL,
        {"ids": id_list, "integration": integration},
    )
    requeued = sorted(int(r) for r in result.scalars())
    if requeued:
        await notify(conn)
    return requeued
