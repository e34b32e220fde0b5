"""Retention: remove what is older than `[retention]` allows, in bounded batches, never a long lock.

The running bridge sweeps every `interval_seconds` (one process at a time across replicas: a session advisory lock
decides who); `alertbridge prune [--dry-run]` does the same on demand. Open aliases and their current generation
are never pruned (app/store/retention.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from alertbridge.config import RetentionConfig
from alertbridge.core.retention import Cutoffs, cutoffs
from alertbridge.db import Connection, Database, is_unavailable
from alertbridge.store import retention as sql

log = logging.getLogger("alertbridge.retention")

#: The advisory lock key that makes one sweeper at a time (any constant outside the alias-lock hash space works:
#: alias locks use hashtextextended(), which can collide with anything; collision only delays one sweep).
SWEEPER_LOCK = 0x616C6272_00000001

#: After each batch, sleep this many times as long as the batch took (3.0: prune works a quarter of the time).
PACE = 3.0

Progress = Callable[[str, int, int | None], None]  # step name, rows done, rows in all (None: unknown)


def _cut(c: Cutoffs, step: sql.Step) -> datetime | None:
    return {"raw_bodies": c.raw_bodies, "events": c.events, "refused": c.refused}[step.cutoff]


def current_cutoffs(config: RetentionConfig, now: datetime | None = None) -> Cutoffs:
    return cutoffs(
        now or datetime.now(UTC),
        raw_bodies_days=config.raw_bodies_days,
        events_days=config.events_days,
        refused_days=config.refused_days,
    )


async def prune(
    db: Database,
    config: RetentionConfig,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    pace: float = PACE,
) -> dict[str, int]:
    """Rows removed (or, with ``dry_run``, that would be) per step. Each batch is its own short transaction, and after
    each one prune sleeps ``pace`` times as long as the batch took, so it leaves the database (and, on a small
    machine, the CPU) to ingest most of the time; 0 runs flat out. A dry run does the same work in one transaction
    that is rolled back, so its counts are exact (later steps depend on earlier ones)."""
    c = current_cutoffs(config, now)
    if dry_run:
        async with db.connection() as conn, conn.transaction(force_rollback=True):
            return {
                step.name: await _step(step, _cut(c, step), config, progress, 0.0, conn=conn) for step in _active(c)
            }
    return {step.name: await _step(step, _cut(c, step), config, progress, pace, db=db) for step in _active(c)}


def _active(c: Cutoffs) -> list[sql.Step]:
    return [step for step in sql.STEPS if _cut(c, step) is not None]


async def _step(
    step: sql.Step,
    cut: datetime | None,
    config: RetentionConfig,
    progress: Progress | None,
    pace: float,
    *,
    db: Database | None = None,
    conn: Connection | None = None,
) -> int:
    total: int | None = None
    if progress is not None:
        async with _use(db, conn) as c:
            total = await sql.count(c, step, cut)
    removed = 0
    while True:
        started = time.monotonic()
        async with _use(db, conn, transaction=True) as c:
            n = await sql.batch(c, step, cut, config.batch_size)
        removed += n
        if progress is not None:
            progress(step.name, removed, total)
        if n < config.batch_size:
            return removed
        if pace:
            await asyncio.sleep(pace * (time.monotonic() - started))


@contextlib.asynccontextmanager
async def _use(db: Database | None, conn: Connection | None, *, transaction: bool = False) -> AsyncIterator[Connection]:
    """The given connection (a dry run's one transaction), or a pooled one (in its own transaction)."""
    if conn is not None:
        yield conn
    elif transaction:
        assert db is not None
        async with db.transaction() as c:
            yield c
    else:
        assert db is not None
        async with db.connection() as c:
            yield c


async def sweep_once(db: Database, config: RetentionConfig) -> dict[str, int] | None:
    """One sweep if no other process is sweeping (None: another one is)."""
    async with db.connection() as lock_conn:
        cur = await lock_conn.execute("SELECT pg_try_advisory_lock(%(k)s) AS got", {"k": SWEEPER_LOCK})
        row = await cur.fetchone()
        if not row or not row["got"]:
            return None
        try:
            return await prune(db, config)
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock(%(k)s)", {"k": SWEEPER_LOCK})


async def run_sweeper(db: Database, config: RetentionConfig) -> None:
    """Sweep every ``interval_seconds`` until cancelled."""
    while True:
        await asyncio.sleep(config.interval_seconds)
        try:
            result = await sweep_once(db, config)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("retention sweep skipped: database unavailable")
            else:
                log.exception("retention sweep failed")
            continue
        if result and any(result.values()):
            log.info("retention: removed %s", ", ".join(f"{n} {name}" for name, n in result.items() if n))
