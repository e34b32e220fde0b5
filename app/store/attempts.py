"""``delivery_attempts``: every HTTP call made to OpsGenie for an outbox row, and what it answered.

The row is written *before* the call (``start``: outcome ``started``, no ``finished_at``) and completed after it
(``finish``), so a request OpsGenie may have acted on is in the audit even when the worker is killed or the
database drops mid-call. A started row whose worker went away is marked ``abandoned`` when its outbox row is taken
back (lease expiry, shutdown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from alertbridge.db import Connection, json_rows
from alertbridge.store import targets

STARTED = "started"
ABANDONED = "abandoned"


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
    id: int | None = None  # the row written by ``start``


_START = f"""
INSERT INTO delivery_attempts (outbox_id, attempt, kind, worker, method, url, started_at, outcome, reason, request_id)
SELECT %(outbox_id)s, %(n)s, %(kind)s, %(worker)s, %(method)s, %(url)s, %(started_at)s, '{STARTED}',
       'request sent; no answer recorded yet', %(request_id)s
WHERE {targets.SEND_ALLOWED}
RETURNING id
"""


async def start(
    conn: Connection,
    outbox_id: int,
    attempt_no: int,
    worker: str,
    *,
    target: str,
    kind: str,
    method: str,
    url: str,
    started_at: datetime,
    request_id: str | None = None,
) -> int | None:
    """Record the intent to call; None (nothing written) when the target takes no request now (429 pause, or down
    and this row is not its probe): the caller must not send."""
    cur = await conn.execute(
        _START,
        {
            "outbox_id": outbox_id,
            "n": attempt_no,
            "kind": kind,
            "worker": worker,
            "method": method,
            "url": url,
            "started_at": started_at,
            "request_id": request_id,
            "target": target,
        },
    )
    row = await cur.fetchone()
    return int(row["id"]) if row else None


@dataclass(frozen=True)
class Intent:
    """One call about to be made (``start`` for many rows at once: ``start_many``)."""

    outbox_id: int
    attempt_no: int
    target: str
    kind: str
    method: str
    url: str
    started_at: datetime
    request_id: str | None = None


_START_MANY = f"""
INSERT INTO delivery_attempts (outbox_id, attempt, kind, worker, method, url, started_at, outcome, reason, request_id)
SELECT u.outbox_id, u.n, u.kind, %(worker)s, u.method, u.url, u.started_at, '{STARTED}',
       'request sent; no answer recorded yet', u.request_id
FROM json_to_recordset(%(rows)s::json)
     AS u(k int, outbox_id bigint, n int, kind text, method text, url text, started_at timestamptz, request_id text,
          target text)
WHERE {targets.SEND_ALLOWED.replace("%(target)s", "u.target").replace("%(outbox_id)s", "u.outbox_id")}
ORDER BY u.k
RETURNING id, outbox_id
"""


async def start_many(conn: Connection, worker: str, intents: Sequence[Intent]) -> list[int | None]:
    """``start`` for several calls in one statement (calls about to be made by several rows at once; one intent
    per outbox row). One attempt id per intent, in order; None where its target takes no request now."""
    if not intents:
        return []
    rows = [
        {
            "k": k,
            "outbox_id": i.outbox_id,
            "n": i.attempt_no,
            "kind": i.kind,
            "method": i.method,
            "url": i.url,
            "started_at": i.started_at,
            "request_id": i.request_id,
            "target": i.target,
        }
        for k, i in enumerate(intents)
    ]
    cur = await conn.execute(_START_MANY, {"worker": worker, "rows": json_rows(rows)})
    ids = {int(r["outbox_id"]): int(r["id"]) for r in await cur.fetchall()}
    return [ids.get(i.outbox_id) for i in intents]


_FINISH = """
UPDATE delivery_attempts SET latency_ms = %(latency_ms)s, http_status = %(http_status)s, outcome = %(outcome)s,
       reason = %(reason)s, request_id = %(request_id)s, response_snippet = %(response_snippet)s,
       finished_at = now()
WHERE id = %(id)s
"""


async def finish(conn: Connection, a: Attempt) -> None:
    assert a.id is not None, "finish() needs the row start() wrote"
    await conn.execute(_FINISH, a.__dict__)


async def abandon(conn: Connection, outbox_ids: Sequence[int], reason: str) -> int:
    """Started attempts of these rows that will never be completed: OpsGenie may or may not have acted on them."""
    if not outbox_ids:
        return 0
    cur = await conn.execute(
        f"UPDATE delivery_attempts SET outcome = '{ABANDONED}', reason = %(reason)s, finished_at = now() "
        f"WHERE outbox_id = ANY(%(ids)s::bigint[]) AND outcome = '{STARTED}'",
        {"ids": list(outbox_ids), "reason": reason},
    )
    return cur.rowcount


async def for_outbox(conn: Connection, outbox_ids: list[int]) -> list[dict[str, object]]:
    """Every call made for these outbox rows, oldest first (the alias timeline)."""
    cur = await conn.execute(
        "SELECT id, outbox_id, attempt, kind, method, url, started_at, latency_ms, http_status, outcome, reason, "
        "request_id, response_snippet FROM delivery_attempts WHERE outbox_id = ANY(%(ids)s::bigint[]) ORDER BY id",
        {"ids": outbox_ids},
    )
    return await cur.fetchall()
