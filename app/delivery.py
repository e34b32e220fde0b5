"""The delivery worker: claim due outbox rows -> send to OpsGenie -> record the outcome.

Runs inside ``serve`` (default) or alone (``alertbridge worker``); any number of workers may share one
Postgres. Wakes on LISTEN/NOTIFY, polls as a fallback.

* Every HTTP call is a ``delivery_attempts`` row written *before* the call and completed after it; the intent row
  is only written while the target takes requests (not paused by a 429, not down — or this row is its probe).
* Outcomes are recorded in one transaction, retried for a few seconds when the database blinks
  (``record_retry``), and shielded from cancellation: a shutdown never throws away a 2xx.
* A target (base URL + API key) pauses after a 429 and goes down after repeated failures, for every worker
  (``core/circuit.py``, ``store/targets.py``); what a dead row means for its alias is ``core/delivery_rules.py``.

The loop (claiming, waking, shutdown) is ``worker_loop.WorkerLoop``. On shutdown it stops claiming, lets in-flight
sends finish for a grace period, waits for outcomes being recorded, and gives the rest back to the queue; after a
``kill -9`` the lease expires and another worker retries the row (OpsGenie's alias dedup makes a repeated create
harmless).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from alertbridge import logs, metrics, pacing
from alertbridge.coalesce import Coalescer
from alertbridge.core.circuit import CircuitPolicy, Signal, after_response, signal, target_key
from alertbridge.core.delivery_rules import ACTIONS_NEEDING_AN_ALERT, Precheck, before_send
from alertbridge.core.policies import Bucket
from alertbridge.core.retry import RetryPolicy, next_retry
from alertbridge.db import Connection, Database
from alertbridge.followup import FollowOptions
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
from alertbridge.store import aliases, attempts, outbox, targets
from alertbridge.worker_loop import WorkerLoop, transient

log = logging.getLogger("alertbridge.delivery")

SNIPPET = 2000
T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    base_url: str
    api_key: str  # revealed secret; never logged
    bucket: Bucket | None = None  # paced: the account's rate limit (core/policies.py; app/pacing.py)

    @property
    def key(self) -> str:
        """What identifies the target in Postgres (a hash: the API key is never stored)."""
        return target_key(self.base_url, self.api_key)


@dataclass(frozen=True)
class WorkerOptions:
    max_in_flight: int = 16
    poll_interval: float = 1.0
    lease_seconds: float = 60.0
    shutdown_grace: float = 10.0
    confirm_creates: bool = True
    retry: RetryPolicy = RetryPolicy()
    circuit: CircuitPolicy = CircuitPolicy()
    record_retry: float = 10.0  # how long to retry recording an outcome while the database is away
    follow_request_status: bool = True  # ask OpsGenie what it did with requests no callback confirmed
    follow: FollowOptions = FollowOptions()


def _snippet(body: bytes) -> str | None:
    if not body:
        return None
    return body[:SNIPPET].decode("utf-8", "replace").replace("\x00", "")


class Worker(WorkerLoop):
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
        self._recording: dict[int, asyncio.Task[object]] = {}
        self._next_probe_check = 0.0
        # Told how long the rows just claimed waited (serve: the ingest gate, so delivery keeps its share).
        self.on_lag: Callable[[float], None] | None = None
        # Intent rows and delivered outcomes of rows in flight together are written together (one statement each).
        self._intents: Coalescer[attempts.Intent, int | None] = Coalescer(self._start_intents)
        self._delivered: Coalescer[outbox.Delivered, None] = Coalescer(self._record_delivered)

    # --- the database, durably ----------------------------------------------------------------------------

    async def _durably(
        self, what: str, fn: Callable[[Connection], Awaitable[T]], *, transaction: bool = True, pipeline: bool = False
    ) -> T:
        """Run ``fn`` in one transaction (``pipeline``: in pipeline mode; or in autocommit: a single statement, or
        reads); when the database blinks, retry for up to ``record_retry`` seconds (every step is safe to repeat)
        instead of leaving the row to its lease."""
        deadline = time.monotonic() + self.options.record_retry
        delay = 0.05
        while True:
            try:
                if pipeline:
                    async with self.db.pipeline() as conn:
                        return await fn(conn)
                if not transaction:
                    async with self.db.connection() as conn:
                        return await fn(conn)
                async with self.db.transaction() as conn:
                    return await fn(conn)
            except Exception as exc:
                if not transient(exc) or time.monotonic() + delay > deadline:
                    raise
                log.info("%s: database unavailable (%s); retrying in %.2fs", what, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _commit(
        self,
        row_id: int,
        what: str,
        fn: Callable[[Connection], Awaitable[T]],
        *,
        transaction: bool = True,
        pipeline: bool = False,
    ) -> T:
        """``_durably``, shielded from cancellation: once an answer is being recorded, a shutdown waits for it."""
        return await self._shielded(row_id, self._durably(what, fn, transaction=transaction, pipeline=pipeline))

    async def _shielded(self, row_id: int, work: Awaitable[T]) -> T:
        task: asyncio.Task[T] = asyncio.ensure_future(work)
        self._recording[row_id] = task  # type: ignore[assignment]

        def done(t: asyncio.Task[T]) -> None:
            if self._recording.get(row_id) is t:
                del self._recording[row_id]
            if not t.cancelled():
                t.exception()  # retrieved here too: the waiter may have been cancelled (shutdown)

        task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _start_intents(self, intents: list[attempts.Intent]) -> list[int | None]:
        async def write(conn: Connection) -> list[int | None]:
            return await attempts.start_many(conn, self.name, intents)

        return await self._durably(f"{len(intents)} intents", write, transaction=False)

    async def _record_delivered(self, items: list[outbox.Delivered]) -> list[None]:
        async def write(conn: Connection) -> None:
            await outbox.record_delivered_many(conn, self.name, items)

        await self._durably(f"{len(items)} delivered", write, transaction=False)
        return [None] * len(items)

    # --- one row ----------------------------------------------------------------------------------------

    async def _call(
        self,
        row: outbox.Claimed,
        kind: str,
        request: Request,
        target: Target,
        *,
        action: str,
        attempt_no: int,
        request_id: str | None = None,
    ) -> tuple[Response | None, Outcome, attempts.Attempt] | None:
        """One HTTP call to OpsGenie, classified, as the attempt row it becomes. The intent is recorded first;
        None (no call made) when the target takes no request now — the row has been put back in the queue."""
        started = datetime.now(UTC)

        attempt_id = await self._intents(
            attempts.Intent(row.id, attempt_no, target.key, kind, request.method, request.url, started, request_id)
        )
        if attempt_id is None:
            await self._held(row, target)
            return None
        t0 = time.perf_counter()
        response: Response | None = None
        try:
            response = await self.client.send(request, target.api_key)
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
            id=attempt_id,
        )
        return response, outcome, attempt

    async def _held(self, row: outbox.Claimed, target: Target) -> None:
        """The target is paused or down (another worker found out after this row was claimed): back to the queue,
        no attempt counted, no request made."""

        async def tx(conn: Connection) -> None:
            hold = await targets.hold(conn, target.key)
            await outbox.defer(conn, row.id, worker=self.name, until=hold.paused_until if hold else None)
            if row.probe:
                await targets.release_probe(conn, target.key, row.id)

        await self._commit(row.id, f"outbox {row.id}: defer", tx)
        if row.probe:
            self._next_probe_check = 0.0  # another row may probe right away

    async def _target_after(
        self, conn: Connection, row: outbox.Claimed, target: Target, attempt: attempts.Attempt, outcome: Outcome
    ) -> None:
        """Feed one answer (or its absence) to the target's pause / circuit breaker; resume its rows when it is
        back. Part of the transaction that records the answer."""
        sig = signal(attempt.http_status)
        integrations = [n for n, t in self.targets.items() if t.key == target.key]
        if sig == Signal.OK:
            # Only when the claim saw failures to reset (or a down target): no write on the common path. A failure
            # another worker records after our claim may then count one success short: the breaker trips a bit early.
            resumed = await targets.record_ok(conn, target.key) if row.target_dirty or row.probe else False
        else:
            before, now = await targets.load_for_update(conn, target.key, target.base_url)
            t = after_response(
                before,
                sig,
                now=now,
                policy=self.options.circuit,
                retry_after=outcome.retry_after,
                probe=row.probe,
                error=outcome.reason,
            )
            await targets.save(conn, target.key, t.after, end_probe=row.probe)
            resumed = t.resumed
            if t.went_down:
                log.warning(
                    "target %s is down after %d failures (%s): probing one request at a time",
                    target.base_url,
                    t.after.failures,
                    outcome.reason,
                )
            if sig == Signal.RATE_LIMITED:
                log.warning("target %s rate limited until %s", target.base_url, t.after.paused_until)
                if target.bucket is not None:  # paced and still a 429: slow down until it grows back
                    scale = await targets.record_throttle(conn, target.key, outcome.retry_after)
                    log.warning("target %s: pacing at %.0f%% of its rate after a 429", target.base_url, scale * 100)
            if t.after.state == "down" and row.probe:
                await outbox.expire(conn, integrations, max_age=self.options.retry.max_age)
        if resumed:
            n = await outbox.resume(conn, integrations)
            await outbox.notify(conn)
            log.warning("target %s is back: %d waiting deliveries are due now", target.base_url, n)

    async def _create_processed(self, row: outbox.Claimed, target: Target, request_id: str) -> bool:
        """Before an ack/close/note: has OpsGenie processed this alias's create? (OpsGenie processes requests
        asynchronously, so an action sent too early fails with "Alert does not exist".) False means wait (or the
        target took no request); any answer other than "not processed yet" — including an error — means go."""
        request = build_status_request(target.base_url, request_id)
        called = await self._call(
            row, "status_check", request, target, action="status", attempt_no=row.attempts, request_id=request_id
        )
        if called is None:
            return False
        response, outcome, attempt = called
        status = parse_request_status(response.status, response.headers, response.body) if response else None
        waiting = status is not None and status.state == "pending"
        detail = f"create request {status.state}" + (f": {status.status}" if status.status else "") if status else ""
        attempt = replace(attempt, outcome="waiting" if waiting else "confirmed", reason=detail or attempt.reason)
        delay = next_retry("waiting", row.attempts + 1, row.age, self.options.retry) if waiting else None

        async def tx(conn: Connection) -> bool:
            await attempts.finish(conn, attempt)
            await self._target_after(conn, row, target, attempt, outcome)
            if waiting and delay is not None:
                error = "waiting for OpsGenie to process the alias's create"
                await outbox.mark_retry(
                    conn, row.id, delay=delay, outcome="waiting", error=error, attempts=row.attempts, worker=self.name
                )
                return False
            alert_id = status.alert_id if status else None
            await aliases.confirm_create(conn, row.integration, row.alias, row.generation, alert_id)
            if status is not None and status.state == "processed":
                await outbox.record_create_result(
                    conn,
                    row.integration,
                    row.alias,
                    row.generation,
                    success=bool(status.is_success),
                    status=status.status,
                    at=datetime.now(UTC),
                )
            return True  # processed, unknown, or waited as long as max_age allows: send

        # In pipeline mode: its statements (finish the attempt, confirm the create) go in one round trip.
        go_ahead = await self._commit(row.id, f"outbox {row.id}: status check", tx, pipeline=True)
        metrics.attempt_recorded(row.integration, row.action, attempt)
        return go_ahead

    async def _precheck(self, row: outbox.Claimed) -> tuple[Precheck, str | None]:
        """Whether the row may go (``core.delivery_rules.before_send``), and the create request id to confirm."""

        async def read(conn: Connection) -> tuple[Precheck, str | None]:
            facts, to_confirm = await outbox.create_facts(conn, row)
            check = before_send(row.action, facts)
            return check, to_confirm if check.send and self.options.confirm_creates else None

        return await self._durably(f"outbox {row.id}: precheck", read, transaction=False)

    async def process(self, row: outbox.Claimed) -> None:
        target = self.targets.get(row.integration)
        if target is None:
            outcome = Outcome("config_error", f"integration {row.integration!r} is not configured in this worker")
            await self._record(row, None, outcome, None)
            return
        if row.action in ACTIONS_NEEDING_AN_ALERT:
            check, create_request_id = await self._precheck(row)
            if not check.send:
                await self._record_blocked(row, target, check)
                return
            if create_request_id is not None:
                if not await self._create_processed(row, target, create_request_id):
                    return
                if target.bucket is not None and not await pacing.take_one(self.db, target):
                    await self._held(row, target)  # paced: the claim's token went to the status check
                    return
        request = build_request(
            target.base_url, row.action, row.opsgenie_alias, row.payload, traceparent=row.traceparent
        )
        called = await self._call(row, "send", request, target, action=row.action, attempt_no=row.attempts + 1)
        if called is None:
            return
        _, outcome, attempt = called
        await self._record(row, target, outcome, attempt)

    async def _record_blocked(self, row: outbox.Claimed, target: Target, check: Precheck) -> None:
        async def tx(conn: Connection) -> None:
            await outbox.mark_blocked(conn, row.id, error=check.reason, worker=self.name)
            if row.probe:
                await targets.release_probe(conn, target.key, row.id)

        await self._commit(row.id, f"outbox {row.id}: blocked", tx)
        if row.probe:
            self._next_probe_check = 0.0
            self.wake()
        log.warning("outbox %s (%s %s) not sent: %s", row.id, row.action, row.alias, check.reason)

    async def _record(
        self, row: outbox.Claimed, target: Target | None, outcome: Outcome, attempt: attempts.Attempt | None
    ) -> None:
        n = row.attempts + 1
        delay = None
        if outcome.kind != "delivered":
            delay = next_retry(outcome.kind, n, row.age, self.options.retry, retry_after=outcome.retry_after)

        if outcome.kind == "delivered" and attempt is not None and not (row.target_dirty or row.probe):
            # The common path: recorded with the other rows delivered meanwhile, in one statement (and no write to
            # the target: it has nothing to reset).
            item = outbox.Delivered(row, outcome.request_id, n, attempt.__dict__)
            await self._shielded(row.id, self._delivered(item))
            metrics.attempt_recorded(row.integration, row.action, attempt)
            metrics.delivered(row)
            return

        async def tx(conn: Connection) -> None:
            if attempt is not None:
                await attempts.finish(conn, attempt)
                if target is not None:
                    await self._target_after(conn, row, target, attempt, outcome)
            if outcome.kind == "delivered":
                if await outbox.mark_delivered(conn, row.id, outcome.request_id, n, worker=self.name):
                    await aliases.after_delivery(
                        conn,
                        row.integration,
                        row.alias,
                        row.generation,
                        action=row.action,
                        request_id=outcome.request_id,
                    )
                return
            if delay is None:
                error = (
                    outcome.reason
                    if outcome.kind == "rejected"
                    else (f"gave up after {n} attempts over {row.age:.0f}s: {outcome.reason}")
                )
                await outbox.mark_dead(conn, row.id, outcome=outcome.kind, error=error, attempts=n, worker=self.name)
                log.warning("outbox %s (%s %s) dead: %s", row.id, row.action, row.alias, error)
            else:
                await outbox.mark_retry(
                    conn, row.id, delay=delay, outcome=outcome.kind, error=outcome.reason, attempts=n, worker=self.name
                )
                log.info("outbox %s (%s %s) retry in %.1fs: %s", row.id, row.action, row.alias, delay, outcome.reason)

        await self._commit(row.id, f"outbox {row.id}: record", tx)
        if attempt is not None:
            metrics.attempt_recorded(row.integration, row.action, attempt)
        if outcome.kind == "delivered":
            metrics.delivered(row)

    # --- the loop ---------------------------------------------------------------------------------------

    def _start_follower(self) -> asyncio.Task[None] | None:
        if not self.options.follow_request_status:
            return None
        from alertbridge.followup import follow_requests

        return asyncio.create_task(follow_requests(self, self.options.follow))

    async def _guarded(self, row: outbox.Claimed) -> None:
        logs.bind(integration=row.integration, outbox_id=row.id, alias=row.alias, traceparent=row.traceparent)
        try:
            await self.process(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database stayed away longer than record_retry: the lease brings it back
            if transient(exc):
                log.warning("outbox %s: database unavailable while recording; lease will retry it", row.id)
            else:
                log.exception("outbox %s: unexpected error; lease will retry it", row.id)
