"""``delivery_attempts``: every HTTP call made to OpsGenie for an outbox row, and what it answered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from alertbridge.db import Connection


@dataclass(frozen=True)
class Attempt:
    kind: str  # send | status_check
    method: str
    url: str
    started_at: datetime
    latency_ms: float | None
    http_status: int | None
    outcome: str
    reason: str
    request_id: str | None
    response_snippet: str | None


_INSERT = """
INSERT INTO delivery_attempts (outbox_id, attempt, kind, worker, method, url, started_at, latency_ms,
                               http_status, outcome, reason, request_id, response_snippet)
VALUES (%(o)s, %(n)s, %(kind)s, %(worker)s, %(method)s, %(url)s, %(started_at)s, %(latency_ms)s, %(http_status)s,
        %(outcome)s, %(reason)s, %(request_id)s, %(response_snippet)s)
"""


async def record(conn: Connection, outbox_id: int, attempt_no: int, worker: str, a: Attempt) -> None:
    await conn.execute(_INSERT, {"o": outbox_id, "n": attempt_no, "worker": worker, **a.__dict__})


async def for_outbox(conn: Connection, outbox_ids: list[int]) -> list[dict[str, object]]:
    """Every call made for these outbox rows, oldest first (the alias timeline)."""
    cur = await conn.execute(
        "SELECT id, outbox_id, attempt, kind, method, url, started_at, latency_ms, http_status, outcome, reason, "
        "request_id, response_snippet FROM delivery_attempts WHERE outbox_id = ANY(%(ids)s::bigint[]) ORDER BY id",
        {"ids": outbox_ids},
    )
    return await cur.fetchall()
