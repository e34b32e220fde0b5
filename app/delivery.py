"""The delivery worker: claim due outbox rows -> send to OpsGenie -> record the outcome.

Runs inside ``serve`` (default) or alone (``alertbridge worker``); any number of workers may share one
Postgres. Wakes on LISTEN/NOTIFY, polls as a fallback. On shutdown it stops claiming, lets in-flight sends
finish for a grace period, and gives the rest back to the queue; after a ``kill -9`` the lease expires and
another worker retries the row (OpsGenie's alias dedup makes a repeated create harmless).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import psycopg

from alertbridge import logs, metrics
from alertbridge.core.retry import RetryPolicy, next_retry
from alertbridge.db import Database, is_unavailable
from alertbridge.opsgenie import (
    Client,
    Outcome,
    Request,
    Response,
    build_request,
    build_status_request,
    classify,
    classify_exception,
    parse_request_status,
)
from alertbridge.store import aliases, attempts, outbox

log = logging.getLogger("alertbridge.delivery")

SNIPPET = 2000


@dataclass(frozen=True)
class Target:
    base_url: str
    api_key: str  # revealed secret; never logged


@dataclass(frozen=True)
class WorkerOptions:
    max_in_flight: int = 16
    poll_interval: float = 1.0
    lease_seconds: float = 60.0
    shutdown_grace: float = 10.0
    confirm_creates: bool = True
    retry: RetryPolicy = RetryPolicy()


def _snippet(body: bytes) -> str | None:
    if not body:
        return None
    return body[:SNIPPET].decode("utf-8", "replace").replace("\x00", "")


class Worker:
    def __init__(
        self,
        db: Database,
        client: Client,
        targets: Mapping[str, Target],
        options: WorkerOptions = WorkerOptions(),
        *,
        listen_url: str | None = None,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.client = client
        self.targets = dict(targets)
        self.options = options
        self.listen_url = listen_url  # libpq URL for LISTEN; None: poll only
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFF:04x}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}

    # --- one row ----------------------------------------------------------------------------------------

    async def _call(
        self, kind: str, request: Request, api_key: str, *, action: str, request_id: str | None = None
    ) -> tuple[Response | None, Outcome, attempts.Attempt]:
        """One HTTP call to OpsGenie, classified, as the attempt row it becomes."""
        started, t0 = datetime.now(UTC), time.perf_counter()
        response: Response | None = None
        try:
            response = await self.client.send(request, api_key)
            outcome = classify(response.status, response.headers, response.body, action)
        except Exception as exc:
            outcome = classify_exception(exc, self.client.timeout)
        attempt = attempts.Attempt(
            kind=kind,
            method=request.method,
            url=request.url,
            started_at=started,
            latency_ms=(time.perf_counter() - t0) * 1000,
            http_status=response.status if response else None,
            outcome=outcome.kind,
            reason=outcome.reason,
            request_id=request_id or outcome.request_id,
            response_snippet=_snippet(response.body) if response else None,
        )
        return response, outcome, attempt

    async def _create_processed(self, row: outbox.Claimed, target: Target) -> bool:
        """Before an ack/close/note: has OpsGenie processed this alias's create? (OpsGenie processes requests
        asynchronously, so an action sent too early fails with "Alert does not exist".) False means wait; any
        answer other than "not processed yet" — including an error — means go ahead."""
        async with self.db.connection() as conn:
            request_id = await aliases.create_to_confirm(conn, row.integration, row.alias, row.generation)
        if request_id is None:
            return True
        request = build_status_request(target.base_url, request_id)
        response, _, attempt = await self._call(
            "status_check", request, target.api_key, action="status", request_id=request_id
        )
        status = parse_request_status(response.status, response.headers, response.body) if response else None
        waiting = status is not None and status.state == "pending"
        detail = f"create request {status.state}" + (f": {status.status}" if status.status else "") if status else ""
        attempt = replace(attempt, outcome="waiting" if waiting else "confirmed", reason=detail or attempt.reason)
        delay = next_retry("waiting", row.attempts + 1, row.age, self.options.retry) if waiting else None
        async with self.db.transaction() as conn:
            await attempts.record(conn, row.id, row.attempts, self.name, attempt)
            metrics.attempt_recorded(row.integration, row.action, attempt)
            if waiting and delay is not None:
                error = "waiting for OpsGenie to process the alias's create"
                await outbox.mark_retry(
                    conn, row.id, delay=delay, outcome="waiting", error=error, attempts=row.attempts
                )
                return False
            alert_id = status.alert_id if status else None
            await aliases.confirm_create(conn, row.integration, row.alias, row.generation, alert_id)
        return True  # processed, unknown, or waited as long as max_age allows: send

    async def process(self, row: outbox.Claimed) -> None:
        target = self.targets.get(row.integration)
        if target is None:
            outcome = Outcome("config_error", f"integration {row.integration!r} is not configured in this worker")
            await self._record(row, outcome, None)
            return
        if self.options.confirm_creates and row.action in ("acknowledge", "close", "note"):
            if not await self._create_processed(row, target):
                return
        request = build_request(
            target.base_url, row.action, row.opsgenie_alias, row.payload, traceparent=row.traceparent
        )
        _, outcome, attempt = await self._call("send", request, target.api_key, action=row.action)
        await self._record(row, outcome, attempt)

    async def _record(self, row: outbox.Claimed, outcome: Outcome, attempt: attempts.Attempt | None) -> None:
        n = row.attempts + 1
        async with self.db.transaction() as conn:
            if attempt is not None:
                await attempts.record(conn, row.id, n, self.name, attempt)
                metrics.attempt_recorded(row.integration, row.action, attempt)
            if outcome.kind == "delivered":
                await outbox.mark_delivered(conn, row.id, outcome.request_id, n)
                await aliases.after_delivery(
                    conn, row.integration, row.alias, row.generation, action=row.action, request_id=outcome.request_id
                )
                metrics.delivered(row)
                return
            delay = next_retry(outcome.kind, n, row.age, self.options.retry, retry_after=outcome.retry_after)
            if delay is None:
                error = (
                    outcome.reason
                    if outcome.kind == "rejected"
                    else (f"gave up after {n} attempts over {row.age:.0f}s: {outcome.reason}")
                )
                await outbox.mark_dead(conn, row.id, outcome=outcome.kind, error=error, attempts=n)
                log.warning("outbox %s (%s %s) dead: %s", row.id, row.action, row.alias, error)
            else:
                await outbox.mark_retry(
                    conn, row.id, delay=delay, outcome=outcome.kind, error=outcome.reason, attempts=n
                )
                log.info("outbox %s (%s %s) retry in %.1fs: %s", row.id, row.action, row.alias, delay, outcome.reason)

    # --- the loop ---------------------------------------------------------------------------------------

    async def _guarded(self, row: outbox.Claimed) -> None:
        logs.bind(integration=row.integration, outbox_id=row.id, alias=row.alias, traceparent=row.traceparent)
        try:
            await self.process(row)
        except Exception as exc:  # a database failure while recording: the lease brings the row back
            if is_unavailable(exc):
                log.warning("outbox %s: database unavailable while recording; lease will retry it", row.id)
            else:
                log.exception("outbox %s: unexpected error; lease will retry it", row.id)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _listen(self) -> None:
        """Set the wake event on every NOTIFY; reconnect with backoff when the connection drops."""
        assert self.listen_url is not None
        delay = 0.5
        while not self._stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(self.listen_url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
                    delay = 0.5
                    self._wake.set()  # catch up on anything queued while we were not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("LISTEN connection lost (%s); polling until it is back", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def run_forever(self) -> None:
        """Deliver until ``stop()``; then finish or release what is in flight."""
        listener = asyncio.create_task(self._listen()) if self.listen_url else None
        db_backoff = 0.5
        try:
            while not self._stopping.is_set():
                metrics.worker_heartbeat(self.name)
                free = self.options.max_in_flight - len(self._in_flight)
                claimed = 0
                if free > 0:
                    try:
                        async with self.db.transaction() as conn:
                            rows = await outbox.claim(
                                conn, worker=self.name, limit=free, lease_seconds=self.options.lease_seconds
                            )
                        db_backoff = 0.5
                    except Exception as exc:
                        if not is_unavailable(exc):
                            log.exception("claim failed")
                        else:
                            log.warning("database unavailable; retrying in %.1fs", db_backoff)
                        await asyncio.sleep(db_backoff)
                        db_backoff = min(db_backoff * 2, 10.0)
                        continue
                    for row in rows:
                        task = asyncio.create_task(self._guarded(row))
                        self._in_flight[row.id] = task
                        task.add_done_callback(lambda _t, rid=row.id: self._done(rid))
                    claimed = len(rows)
                if claimed and claimed == free:
                    # Probably more is due: claim again as soon as a slot frees up.
                    await self._wait(self.options.poll_interval)
                    continue
                if claimed:
                    continue  # rows finishing may unblock the next row of their alias; check again
                await self._wait(self.options.poll_interval)
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            await asyncio.shield(self._shutdown())

    def _done(self, row_id: int) -> None:
        self._in_flight.pop(row_id, None)
        self._wake.set()

    async def _wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _shutdown(self) -> None:
        tasks = list(self._in_flight.values())
        if tasks:
            log.info("waiting up to %.0fs for %d in-flight deliveries", self.options.shutdown_grace, len(tasks))
            await asyncio.wait(tasks, timeout=self.options.shutdown_grace)
        leftover = [rid for rid, t in self._in_flight.items() if not t.done()]
        for rid in leftover:
            self._in_flight[rid].cancel()
        if leftover:
            try:
                async with self.db.transaction() as conn:
                    await outbox.release(conn, leftover)
                log.info("released %d unfinished deliveries back to the queue", len(leftover))
            except Exception:
                log.warning("could not release %d rows; their lease will expire", len(leftover))
