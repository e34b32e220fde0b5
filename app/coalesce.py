"""Coalescing: calls that arrive while one is in flight run together as the next one (one statement for many rows).

``Coalescer(run)`` turns ``run(items) -> results`` (one result per item, in order) into ``await coalescer(item)``.
Nobody waits for a batch to fill: a call that finds nothing in flight runs alone at once; calls that arrive while
``concurrency`` runs are in flight wait and go together (up to ``max_batch``) as soon as one finishes. If ``run``
raises, every item of that run gets the exception. A run is a task of its own: a caller that is cancelled (a
shutdown) does not cancel the run its item is part of.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _retrieve(fut: asyncio.Future[object]) -> None:
    if not fut.cancelled():
        fut.exception()


class Coalescer(Generic[T, R]):
    def __init__(
        self, run: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_batch: int = 256, concurrency: int = 1
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self.concurrency = concurrency
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.runs = 0
        self.items = 0

    async def __call__(self, item: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        self._queue.append((item, fut))
        self._start()
        return await asyncio.shield(fut)

    def _start(self) -> None:
        while self._queue and self._running < self.concurrency:
            n = min(self.max_batch, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            self._running += 1
            task = asyncio.create_task(self._go(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _go(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.runs += 1
        self.items += len(batch)
        try:
            results = await self._run([item for item, _ in batch])
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(f"cancelled: {exc!r}"))
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
        finally:
            self._running -= 1
            self._start()

    async def aclose(self) -> None:
        """Wait for the runs under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
