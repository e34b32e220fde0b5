"""The sweeper: the one loop that runs the lifecycle policies' background work, in ``serve`` and in ``alertbridge
worker``, safe with any number of replicas — every ``[sweeper] interval_seconds`` each job runs in whichever process
takes its session advisory lock first (the others skip it), and records the run in ``sweeper_jobs``:

* ``expire`` — open aliases with no webhook for ``expire_after`` are closed, noted or re-sent;
* ``release`` — alerts a silence withheld are sent once no silence matches them any more (if they still fire);
* ``source_heartbeats`` — an integration silent for ``expect_every`` gets an alert (closed when it sends again);
* ``heartbeat`` — the bridge pings its own OpsGenie heartbeat while it is healthy (the database answers and this
  process's delivery worker turns its loop), at most once per ``[heartbeat] interval_seconds`` across replicas, so
  OpsGenie pages someone when the bridge itself is down. Only processes that run a worker ping.

What each job did is in the alias history (origin ``policy``), ``sweeper_jobs`` and the metrics
(``alertbridge_sweeper_runs_total``, ``alertbridge_policy_decisions_total``, ``alertbridge_heartbeat_pings_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from alertbridge import metrics, policy_jobs
from alertbridge.config import Config
from alertbridge.db import Connection, Database, is_unavailable
from alertbridge.opsgenie import Client, build_heartbeat_ping, classify_exception
from alertbridge.registry import Registry
from alertbridge.store import sweeper_jobs

log = logging.getLogger("alertbridge.sweeper")

#: One session advisory lock per job (outside the alias-lock hash space, like retention's SWEEPER_LOCK).
LOCKS = {
    "expire": 0x616C6272_00000011,
    "release": 0x616C6272_00000012,
    "source_heartbeats": 0x616C6272_00000013,
    "heartbeat": 0x616C6272_00000014,
}


class Sweeper:
    def __init__(
        self,
        db: Database,
        registry: Registry,
        config: Config,
        *,
        worker: Any = None,  # this process's delivery.Worker (None: no worker here, so no heartbeat pings)
        stuck_after: float = 60.0,
        client: Client | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.config = config
        self.worker = worker
        self.stuck_after = stuck_after
        self.client = client
        self._own_client = client is None

    @property
    def interval(self) -> float:
        return self.registry.config.sweeper.interval_seconds

    async def run_forever(self) -> None:
        """Sweep every interval until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_unavailable(exc):
                    log.warning("sweep skipped: database unavailable")
                else:
                    log.exception("sweep failed")

    async def run_once(self, now: datetime | None = None) -> dict[str, dict[str, Any] | None]:
        """Each job once, if its lock is free (None: another process has it, or it does not run here)."""
        jobs: dict[str, Callable[[datetime], Awaitable[dict[str, Any]]]] = {
            "expire": self._expire,
            "release": self._release,
            "source_heartbeats": self._source_heartbeats,
        }
        if self.worker is not None and self.registry.config.heartbeat.name:
            jobs["heartbeat"] = self._heartbeat
        out: dict[str, dict[str, Any] | None] = {}
        for job, run in jobs.items():
            out[job] = await self._locked(job, run, now)
        return out

    async def _locked(
        self, job: str, run: Callable[[datetime], Awaitable[dict[str, Any]]], now: datetime | None
    ) -> dict[str, Any] | None:
        async with self._lock(job) as got:
            if not got:
                return None
            try:
                result = await run(now or datetime.now(UTC))
            except Exception:
                metrics.sweep(job, "error")
                raise
            metrics.sweep(job, "ok")
            return result

    @contextlib.asynccontextmanager
    async def _lock(self, job: str) -> AsyncIterator[bool]:
        async with self.db.connection() as lock_conn:
            cur = await lock_conn.execute("SELECT pg_try_advisory_lock(%(k)s) AS got", {"k": LOCKS[job]})
            row = await cur.fetchone()
            got = bool(row and row["got"])
            try:
                yield got
            finally:
                if got:
                    await lock_conn.execute("SELECT pg_advisory_unlock(%(k)s)", {"k": LOCKS[job]})

    async def _record(self, job: str, result: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        async with self.db.connection() as conn:
            await sweeper_jobs.record_run(conn, job, result, state)

    def _routes(self) -> list[Any]:
        return list(self.registry.current.routes.values())

    # --- the jobs ----------------------------------------------------------------------------------------

    async def _expire(self, now: datetime) -> dict[str, Any]:
        done = policy_jobs.Done({})
        for route in self._routes():
            await policy_jobs.expire(self.db, route, now, done)
        await self._record("expire", done.counts)
        return done.counts

    async def _release(self, now: datetime) -> dict[str, Any]:
        done = policy_jobs.Done({})
        for route in self._routes():
            await policy_jobs.release(self.db, route, now, done)
        await self._record("release", done.counts)
        return done.counts

    async def _source_heartbeats(self, now: datetime) -> dict[str, Any]:
        done = policy_jobs.Done({})
        async with self.db.connection() as conn:
            row = await sweeper_jobs.get(conn, "source_heartbeats")
        watching: dict[str, str] = dict((row or {}).get("state") or {})
        for route in self._routes():
            await policy_jobs.source_heartbeat(self.db, route, now, watching, done)
        served = set(self.registry.current.routes)
        watching = {k: v for k, v in watching.items() if k in served}
        await self._record("source_heartbeats", done.counts, watching)
        return done.counts

    async def _heartbeat(self, now: datetime) -> dict[str, Any]:
        hb = self.registry.config.heartbeat
        async with self.db.connection() as conn:
            row = await sweeper_jobs.get(conn, "heartbeat")
            last = (row or {}).get("state", {}).get("last_ping_at")
            if last is not None and (now - datetime.fromisoformat(last)).total_seconds() < hb.interval_seconds:
                return {"skipped": "pinged less than interval_seconds ago"}
            healthy, why = await self._healthy(conn)
        if not healthy:
            metrics.heartbeat_ping("unhealthy")
            log.warning("heartbeat %s not pinged: %s", hb.name, why)
            result = {"pinged": False, "why": why}
            await self._record("heartbeat", result)
            return result
        assert hb.api_key is not None
        if self.client is None:
            self.client = Client(timeout=10.0, max_in_flight=2)
        request = build_heartbeat_ping(hb.url, hb.name)
        t0 = time.perf_counter()
        try:
            response = await self.client.send(request, hb.api_key)
            ok, detail = 200 <= response.status < 300, f"HTTP {response.status}"
        except Exception as exc:
            ok, detail = False, classify_exception(exc, self.client.timeout).reason
        metrics.heartbeat_ping("ok" if ok else "failed")
        result = {"pinged": ok, "answer": detail, "ms": round((time.perf_counter() - t0) * 1000, 1)}
        if not ok:
            log.warning("heartbeat %s: ping failed (%s)", hb.name, detail)
        await self._record("heartbeat", result, {"last_ping_at": now.isoformat()} if ok else None)
        return result

    async def _healthy(self, conn: Connection) -> tuple[bool, str]:
        """The database answers (we just read from it) and this process's delivery worker turns its loop."""
        await conn.execute("SELECT 1")
        age = metrics.loop_age(self.worker.name)
        if age is None or age > self.stuck_after:
            return False, "the delivery worker " + ("has not started" if age is None else f"is stuck ({age:.0f}s)")
        return True, ""

    async def aclose(self) -> None:
        if self.client is not None and self._own_client:
            await self.client.aclose()
