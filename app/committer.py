"""Group commit: webhooks that arrive together share one transaction.

A webhook is parsed and rendered on its own (``ingest.prepare_async``: a slow template holds the others for at most
``ingest.INLINE_BUDGET``, then goes on in a thread), then queued here. Up to ``concurrency`` transactions run at
once; each takes every webhook queued when it starts (up to ``max_batch``), in arrival order, and commits them with
set-based statements (``ingest.commit``). Nobody waits for a batch to fill: at low load a webhook goes alone at
once; under load the queue that builds while a transaction is in flight becomes the next batch, so batches grow
exactly when database round trips would otherwise be the limit.

Every webhook is answered only after its transaction committed (202), or with the transaction's error (503: nothing
of the batch was stored). A batch that fails for a reason other than the database being away or busy (a row
Postgres refuses) is retried one webhook at a time, so one bad webhook cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from alertbridge import metrics
from alertbridge.admission import Overloaded
from alertbridge.db import Database, is_busy, is_unavailable
from alertbridge.ingest import Inbound, Result, Route, Webhook, commit, prepare_async

log = logging.getLogger("alertbridge.ingest")


@dataclass
class _Waiting:
    webhook: Webhook
    answer: asyncio.Future[Result]


def _retrieve(answer: asyncio.Future[Result]) -> None:
    if not answer.cancelled():
        answer.exception()


class Committer:
    def __init__(
        self, db: Database, *, max_batch: int = 64, concurrency: int = 2, wait_seconds: float | None = None
    ) -> None:
        if max_batch < 1 or concurrency < 1:
            raise ValueError("max_batch and concurrency must be >= 1")
        self.db = db
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.wait_seconds = wait_seconds  # longest wait for a transaction to take the webhook (then Overloaded)
        self._queue: deque[_Waiting] = deque()
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # transactions committed or failed (for tests and the bench)
        self.largest = 0

    @property
    def queued(self) -> int:
        """Webhooks rendered and waiting for a transaction."""
        return len(self._queue)

    @property
    def running(self) -> int:
        """Transactions in progress."""
        return self._running

    async def ingest(self, route: Route, msg: Inbound) -> Result:
        """Render (``ingest.prepare_async``), then store with whatever else is waiting. Raises what the
        transaction raised."""
        prepared = await prepare_async(route, msg)
        return await self.submit(Webhook(route, msg, prepared))

    async def submit(self, webhook: Webhook) -> Result:
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        answer.add_done_callback(_retrieve)  # a sender that went away never reads its failure: no warning about it
        waiting = _Waiting(webhook, answer)
        self._queue.append(waiting)
        self._start()
        try:
            # Shielded: a sender that goes away does not take its webhook out of a transaction under way.
            return await asyncio.wait_for(asyncio.shield(answer), self.wait_seconds)
        except (TimeoutError, asyncio.CancelledError) as exc:
            try:
                self._queue.remove(waiting)  # not taken by a transaction yet: it never will be
            except ValueError:
                if isinstance(exc, TimeoutError):  # in a transaction under way: its outcome is the answer
                    return await asyncio.shield(answer)
                raise
            if isinstance(exc, TimeoutError):
                raise Overloaded(
                    f"no transaction took the webhook within {self.wait_seconds:g}s "
                    f"({self._running} in progress, {len(self._queue)} waiting)"
                ) from None
            raise

    def _start(self) -> None:
        while self._queue and self._running < self.concurrency:
            n = min(self.max_batch, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            self._running += 1
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Waiting]) -> None:
        try:
            self.batches += 1
            self.largest = max(self.largest, len(batch))
            metrics.ingest_batch(len(batch))
            await self._commit(batch)
        finally:
            self._running -= 1
            self._start()

    async def _commit(self, batch: list[_Waiting]) -> None:
        try:
            results = await commit(self.db, [w.webhook for w in batch])
        except Exception as exc:
            if len(batch) > 1 and not (is_unavailable(exc) or is_busy(exc)):
                log.warning("a batch of %d webhooks failed (%s); storing them one by one", len(batch), exc)
                for w in batch:
                    await self._commit([w])
                return
            for w in batch:
                if not w.answer.done():
                    w.answer.set_exception(exc)
            return
        for w, result in zip(batch, results, strict=True):
            if not w.answer.done():
                w.answer.set_result(result)

    async def aclose(self) -> None:
        """Wait for the transactions under way (their webhooks are answered)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
