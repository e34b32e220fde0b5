"""Retention: remove what is older than `[retention]` allows, in bounded batches, never a long lock.

The running bridge sweeps every `interval_seconds` (one process at a time across replicas: a session advisory lock
decides who); `alertbridge prune [--dry-run]` does the same on demand. Open aliases and their current generation
are never pruned (app/store/retention.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from alertbridge.config import RetentionConfig
from alertbridge.core.retention import Cutoffs, cutoffs
from alertbridge.db import Database, is_unavailable
from alertbridge.store import retention as sql

log = logging.getLogger("alertbridge.retention")

#: The advisory lock key that makes one sweeper at a time (any constant outside the alias-lock hash space works:
#: alias locks use hashtextextended(), which can collide with anything; collision only delays one sweep).
SWEEPER_LOCK = 0x616C6272_00000001

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
    pause: float = 0.0,
) -> dict[str, int]:
    """Rows removed (or, with ``dry_run``, that would be) per step. ``pause``: seconds between batches (the sweeper
    yields to ingest this way)."""
    c = current_cutoffs(config, now)
    done: dict[str, int] = {}
    for step in sql.STEPS:
        cut = _cut(c, step)
        if cut is None:
            continue
        async with db.connection() as conn:
            total = await sql.count(conn, step, cut)
        if dry_run or total == 0:
            done[step.name] = total
            continue
        removed = 0
        while True:
            async with db.transaction() as conn:
                n = await sql.batch(conn, step, cut, config.batch_size)
            removed += n
            if progress is not None:
                progress(step.name, removed, total)
            if n < config.batch_size:
                break
            if pause:
                await asyncio.sleep(pause)
        done[step.name] = removed
    return done


async def sweep_once(db: Database, config: RetentionConfig) -> dict[str, int] | None:
    """One sweep if no other process is sweeping (None: another one is)."""
    async with db.connection() as lock_conn:
        cur = await lock_conn.execute("SELECT pg_try_advisory_lock(%(k)s) AS got", {"k": SWEEPER_LOCK})
        row = await cur.fetchone()
        if not row or not row["got"]:
            return None
        try:
            return await prune(db, config, pause=0.01)
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
