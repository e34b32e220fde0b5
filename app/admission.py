"""Admission of webhooks into their database work, so that load never looks like an outage and delivery keeps its
share of the process.

* At most ``limit`` webhooks do their database work at once; the others wait in a FIFO queue for up to
  ``wait_seconds`` (then ``Overloaded``: the sender gets a 503 that says "busy", not "database unavailable").
  Waiting here is cheap, and it keeps the pool's own queue short.
* ``serve`` runs the delivery worker in the same process and event loop. The worker reports how long its rows
  waited in the queue (``report_lag``); while that exceeds ``lag_target`` the limit halves (at most once a
  second, down to 1), and it grows back by one per report while deliveries keep up (AIMD). Accepting slows down
  instead of deliveries falling behind without bound: accept→delivered stays bounded under any ingest load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator


class Overloaded(Exception):
    """No slot within the wait budget."""


def next_limit(limit: int, lag: float, *, lag_target: float, lowest: int, highest: int, may_cut: bool) -> int:
    """The admission limit after one lag report (pure): halve when deliveries lag, grow by one when they keep up."""
    if lag > lag_target:
        return max(lowest, limit // 2) if may_cut else limit
    if lag < lag_target / 2:
        return min(highest, limit + 1)
    return limit


class IngestGate:
    def __init__(self, limit: int = 8, wait_seconds: float = 10.0, lag_target: float = 2.0) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.highest = limit
        self.limit = limit
        self.wait_seconds = wait_seconds
        self.lag_target = lag_target
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._last_cut = 0.0

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    async def acquire(self) -> None:
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, self.wait_seconds)
        except BaseException as exc:  # timed out, or the request was cancelled (client gone)
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was granted just as we gave up
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            if isinstance(exc, TimeoutError):
                raise Overloaded(
                    f"no capacity within {self.wait_seconds:g}s ({self.active} webhooks in progress)"
                ) from None
            raise

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.active < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.active += 1
                fut.set_result(None)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def report_lag(self, lag: float) -> None:
        """How long the rows the worker just claimed waited for it (0 when nothing was waiting)."""
        now = time.monotonic()
        may_cut = now - self._last_cut >= 1.0
        new = next_limit(self.limit, lag, lag_target=self.lag_target, lowest=1, highest=self.highest, may_cut=may_cut)
        if new < self.limit:
            self._last_cut = now
        self.limit = new
        self._wake()
