"""Counting refused webhooks without letting a flood of bad requests turn into a flood of database writes: counts
are kept in memory per (minute, integration, remote address, reason) and flushed every few seconds by the running
bridge (a ``kill -9`` loses at most the last few seconds of counts)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime

from alertbridge.db import Database, is_unavailable
from alertbridge.store import refused

log = logging.getLogger("alertbridge.refused")

REASONS = ("unauthorized", "bad_signature", "unknown_integration")
MAX_KEYS = 10_000  # distinct keys kept between flushes; beyond that, new keys are folded into one "other" row
MAX_NAME = 100


class RefusedCounter:
    def __init__(self) -> None:
        self._counts: Counter[refused.Key] = Counter()

    def add(self, integration: str, remote_addr: str | None, reason: str, now: datetime | None = None) -> None:
        minute = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
        key = (minute, integration[:MAX_NAME], (remote_addr or "-")[:MAX_NAME], reason)
        if key not in self._counts and len(self._counts) >= MAX_KEYS:
            key = (minute, "(other)", "(other)", reason)
        self._counts[key] += 1

    async def flush(self, db: Database) -> None:
        counts, self._counts = self._counts, Counter()
        try:
            async with db.transaction() as conn:
                await refused.add(conn, counts)
        except Exception as exc:
            self._counts.update(counts)  # try again at the next flush
            if not is_unavailable(exc):
                raise
            log.warning("could not record refused-webhook counts (database unavailable); will retry")

    async def run(self, db: Database, interval: float = 5.0) -> None:
        """Flush every ``interval`` seconds until cancelled; flush once more on the way out."""
        try:
            while True:
                await asyncio.sleep(interval)
                await self.flush(db)
        finally:
            await asyncio.shield(self.flush(db))
