"""What OpsGenie finally did with each request. OpsGenie answers 202 and processes a request later; its request-status
API tells whether an ack, close or note (or a create) was applied ("Closed alert") or not ("Alert does not exist").

A callback that echoes our request confirms it first (app/callbacks.py). For a delivered request that nothing has
confirmed after ``after`` seconds, the worker asks the request-status API, once per request (a pending answer is
asked again at the next pass, until ``within`` seconds have passed). One process at a time does this (a session
advisory lock), in small batches, only while the worker has room; every GET is a ``status_check`` row in
``delivery_attempts``. The outcome lands in ``outbox.opsgenie_success``, ``opsgenie_status`` and
``opsgenie_processed_at`` (and so in ``audit.deliveries``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from alertbridge import metrics
from alertbridge.db import Connection, is_unavailable
from alertbridge.opsgenie import build_status_request, classify_exception, parse_request_status
from alertbridge.pacing import take_one
from alertbridge.store import attempts, outbox

if TYPE_CHECKING:
    from alertbridge.delivery import Worker

log = logging.getLogger("alertbridge.followup")

#: The session advisory lock that makes one follower at a time across processes.
FOLLOWER_LOCK = 0x616C6272_00000002


@dataclass(frozen=True)
class FollowOptions:
    interval: float = 2.0  # seconds between passes
    after: float = 5.0  # leave a request this long to a callback before asking
    within: float = 600.0  # stop asking about a request this old
    batch: int = 20  # requests per pass


async def follow_requests(worker: Worker, options: FollowOptions) -> None:
    """Run until cancelled: a pass every ``interval`` seconds while the worker has room."""
    while True:
        await asyncio.sleep(options.interval)
        if len(worker._in_flight) > worker.options.max_in_flight // 2:
            continue  # deliveries first
        try:
            await follow_once(worker, options)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("request-status follow-up failed")


async def follow_once(worker: Worker, options: FollowOptions) -> int:
    """One pass; returns how many requests got a final answer (0 when another process holds the lock)."""
    async with worker.db.connection() as lock_conn:
        cur = await lock_conn.execute("SELECT pg_try_advisory_lock(%(k)s) AS got", {"k": FOLLOWER_LOCK})
        row = await cur.fetchone()
        if not row or not row["got"]:
            return 0
        try:
            async with worker.db.connection() as conn:
                rows = await outbox.unconfirmed(conn, after=options.after, within=options.within, limit=options.batch)
            done = 0
            for r in rows:
                done += await _check(worker, r)
            return done
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock(%(k)s)", {"k": FOLLOWER_LOCK})


async def _check(worker: Worker, row: outbox.Unconfirmed) -> int:
    target = worker.targets.get(row.integration)
    if target is None:
        return 0
    request = build_status_request(target.base_url, row.request_id)
    if target.bucket is not None and not await take_one(worker.db, target):
        return 0  # the target's rate is used up by deliveries: ask at a later pass
    started = datetime.now(UTC)

    async def intent(conn: Connection) -> int | None:
        return await attempts.start(
            conn,
            row.id,
            row.attempts,
            worker.name,
            target=target.key,
            kind="status_check",
            method=request.method,
            url=request.url,
            started_at=started,
            request_id=row.request_id,
        )

    attempt_id = await worker._durably(f"outbox {row.id}: status intent", intent, transaction=False)
    if attempt_id is None:  # the target is paused or down: ask again at a later pass
        return 0
    t0 = time.perf_counter()
    response = None
    try:
        response = await worker.client.send(request, target.api_key)
        reason = f"{response.status}"
    except Exception as exc:
        reason = classify_exception(exc, worker.client.timeout).reason
    status = parse_request_status(response.status, response.headers, response.body) if response else None
    final = status is not None and status.state == "processed"
    if status is not None:
        reason = f"{row.action} request {status.state}" + (f": {status.status}" if status.status else "")
    attempt = attempts.Attempt(
        kind="status_check",
        method=request.method,
        url=request.url,
        started_at=started,
        latency_ms=(time.perf_counter() - t0) * 1000,
        http_status=response.status if response else None,
        outcome="confirmed" if final else "waiting",
        reason=reason,
        request_id=row.request_id,
        response_snippet=response.body[:2000].decode("utf-8", "replace") if response and response.body else None,
        id=attempt_id,
    )

    async def record(conn: Connection) -> None:
        await attempts.finish(conn, attempt)
        if final and status is not None:
            await outbox.record_opsgenie_result(
                conn, row.id, success=bool(status.is_success), status=status.status, at=datetime.now(UTC)
            )

    await worker._durably(f"outbox {row.id}: request status", record)
    metrics.attempt_recorded(row.integration, row.action, attempt)
    return 1 if final else 0
