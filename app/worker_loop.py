"""The delivery worker's loop: claim due rows (and, when one is due, the probe of a down target), run one task per
row, wake on LISTEN/NOTIFY (poll as a fallback), and on shutdown let sends finish for a grace period, wait for answers
being recorded, and give the rest back to the queue. What happens to one row is ``delivery.Worker``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from alertbridge import metrics, pacing
from alertbridge.db import Database, is_busy, is_unavailable
from alertbridge.store import attempts, outbox, targets

log = logging.getLogger("alertbridge.delivery")


def transient(exc: BaseException) -> bool:
    """The database is away or all our connections are busy: worth retrying."""
    return is_unavailable(exc) or is_busy(exc)


class WorkerLoop:
    """Mixed into ``delivery.Worker``, which sets these attributes and implements ``_guarded``."""

    db: Database
    targets: dict[str, Any]  # integration -> delivery.Target
    options: Any  # delivery.WorkerOptions
    name: str
    listen_url: str | None
    on_lag: Callable[[float], None] | None
    _wake: asyncio.Event
    _stopping: asyncio.Event
    _in_flight: dict[int, asyncio.Task[None]]
    _recording: dict[int, asyncio.Task[object]]
    _next_probe_check: float
    _pace_wait: float | None = None  # a paced target has its next token in this many seconds
    _guarded: Callable[[outbox.Claimed], Awaitable[None]]  # one row, start to end (delivery.Worker)

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

    async def _claim(self, free: int) -> list[outbox.Claimed]:
        """Up to ``free`` due rows; first, when a down target's probe is due, its one probe row."""
        target_of = {name: t.key for name, t in self.targets.items()}
        lease = self.options.lease_seconds
        check_probe = time.monotonic() >= self._next_probe_check
        if check_probe:
            self._next_probe_check = time.monotonic() + min(0.5, self.options.circuit.probe_base / 2)
        # The claim alone is one statement (autocommit); taking a probe is a transaction.
        async with self.db.transaction() if check_probe else self.db.connection() as conn:
            rows: list[outbox.Claimed] = []
            key = await targets.probe_due(conn, sorted(set(target_of.values()))) if check_probe else None
            if key is not None:
                integrations = [n for n, k in target_of.items() if k == key]
                probe = await outbox.claim_probe(conn, worker=self.name, integrations=integrations, lease_seconds=lease)
                if probe is not None:
                    await targets.take_probe(conn, key, probe.id, self.name, lease)
                    rows.append(probe)
            paced = [n for n, t in self.targets.items() if t.bucket is not None]
            if free - len(rows) > 0:
                rows += await outbox.claim(
                    conn,
                    worker=self.name,
                    limit=free - len(rows),
                    lease_seconds=lease,
                    target_of=target_of,
                    paced=paced,
                )
            reclaimed = [r.id for r in rows if r.reclaimed]
            if reclaimed:
                n = await attempts.abandon(
                    conn, reclaimed, "abandoned: the worker stopped before recording OpsGenie's answer (lease expired)"
                )
                log.warning("took back %d rows whose lease expired (%d unfinished calls marked)", len(reclaimed), n)
        self._pace_wait = None
        if paced and free - len(rows) > 0:  # paced targets: as many rows as their token buckets allow
            got = await pacing.claim(
                self.db, worker=self.name, targets_of=self.targets, free=free - len(rows), lease_seconds=lease
            )
            rows += got.rows
            self._pace_wait = got.wait
        return rows

    async def run_forever(self) -> None:
        """Deliver until ``stop()``; then finish or release what is in flight."""
        listener = asyncio.create_task(self._listen()) if self.listen_url else None
        follower = self._start_follower()
        db_backoff = 0.5
        try:
            while not self._stopping.is_set():
                metrics.worker_heartbeat(self.name)
                free = self.options.max_in_flight - len(self._in_flight)
                claimed = 0
                if free > 0:
                    try:
                        rows = await self._claim(free)
                        db_backoff = 0.5
                    except Exception as exc:
                        if not transient(exc):
                            log.exception("claim failed")
                        else:
                            log.warning("database unavailable; retrying in %.1fs", db_backoff)
                        await asyncio.sleep(db_backoff)
                        db_backoff = min(db_backoff * 2, 10.0)
                        continue
                    if self.on_lag is not None:
                        waited = [r.age for r in rows if r.attempts == 0 and not r.reclaimed and not r.probe]
                        self.on_lag(max(waited, default=0.0))
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
                # A paced target's next token may come before the next poll.
                await self._wait(min(self.options.poll_interval, max(self._pace_wait or 1e9, 0.005)))
        finally:
            for task in (listener, follower):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await asyncio.shield(self._shutdown())

    def _start_follower(self) -> asyncio.Task[None] | None:
        """What OpsGenie finally did with our requests (app/followup.py), when the options ask for it."""
        return None

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
        leftover = {rid: t for rid, t in self._in_flight.items() if not t.done()}
        for task in leftover.values():
            task.cancel()  # a task recording an answer only loses its waiter: the recording itself is shielded
        if leftover:
            await asyncio.wait(list(leftover.values()), timeout=5)
        recording = list(self._recording.values())
        if recording:
            log.info("waiting for %d answers to be recorded", len(recording))
            await asyncio.wait(recording, timeout=self.options.record_retry + 5)
        if leftover:
            ids = list(leftover)
            try:
                async with self.db.transaction() as conn:
                    # Only rows still in flight: the ones whose answer was recorded are delivered / pending / dead.
                    await outbox.release(conn, ids)
                    await attempts.abandon(
                        conn, ids, "abandoned: shutdown stopped waiting for OpsGenie's answer; it may have acted on it"
                    )
                log.info("released %d unfinished deliveries back to the queue", len(ids))
            except Exception:
                log.warning("could not release %d rows; their lease will expire", len(ids))
