"""An open-loop constant-rate HTTP load generator (what wrk2 does; wrk2 is not in Debian).

Request i is due at ``start + i / rate`` whatever happened to the requests before it: a slow server does not slow
the offered load down (wrk's closed loop does, and then hides the latency of the requests it never sent). Latency is
measured from the moment a request was *due* to its complete response, so queueing in the generator counts
(no coordinated omission). Requests go over kept-alive connections (``alertbridge.http1``, responses parsed by
httptools), at most ``max_connections`` of them; a request due while all are busy waits for one, and that wait is
part of its latency. Bounded: ``duration`` seconds of sending, then at most ``drain`` seconds for the answers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alertbridge.http1 import Http1Client


@dataclass
class OpenLoopResult:
    rate: float
    duration: float
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)  # of 2xx answers
    late_starts: int = 0  # requests that left more than 10 ms after they were due (the generator fell behind)
    unanswered: int = 0

    def percentile(self, p: float) -> float | None:
        if not self.latencies_ms:
            return None
        values = sorted(self.latencies_ms)
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "offered_per_s": self.rate,
            "duration_s": self.duration,
            "sent": self.sent,
            "statuses": dict(self.statuses),
            "answered_2xx": len(self.latencies_ms),
            "p50_ms": self.percentile(50),
            "p99_ms": self.percentile(99),
            "p999_ms": self.percentile(99.9),
            "max_ms": max(self.latencies_ms) if self.latencies_ms else None,
            "late_starts": self.late_starts,
            "unanswered": self.unanswered,
        }


async def open_loop(
    url: str,
    body: Callable[[int], bytes],
    *,
    rate: float,
    duration: float,
    headers: dict[str, str],
    max_connections: int = 256,
    drain: float = 30.0,
    on_tick: Callable[[float], None] | None = None,
    on_answer: Callable[[int, int], object] | None = None,
) -> OpenLoopResult:
    """POST ``body(i)`` to ``url`` at ``rate`` per second for ``duration`` seconds. ``on_tick(elapsed)`` is called
    about once a second (e.g. to sample the backlog); ``on_answer(i, status)`` when request i is answered."""
    result = OpenLoopResult(rate, duration)
    client = Http1Client(limit=max_connections, max_body=65536, connect_timeout=10.0)
    tasks: set[asyncio.Task[None]] = set()
    hdrs = {"Content-Type": "application/json", **headers}

    async def one(i: int, due: float) -> None:
        try:
            answer = await client.request("POST", url, hdrs, body(i))
        except Exception as exc:  # noqa: BLE001 - counted
            result.statuses[type(exc).__name__] += 1
            return
        result.statuses[str(answer.status)] += 1
        if on_answer is not None:
            on_answer(i, answer.status)
        if 200 <= answer.status < 300:
            result.latencies_ms.append((time.monotonic() - due) * 1000)

    start = time.monotonic()
    next_tick = 1.0
    i = 0
    total = int(rate * duration)
    try:
        while i < total:
            now = time.monotonic()
            due_n = min(total, int((now - start) * rate) + 1)
            while i < due_n:
                due = start + i / rate
                if now - due > 0.010:
                    result.late_starts += 1
                task = asyncio.create_task(one(i, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            result.sent = i
            if on_tick is not None and now - start >= next_tick:
                on_tick(now - start)
                next_tick += 1.0
            await asyncio.sleep(max(0.0, min(0.002, start + i / rate - time.monotonic())))
        if tasks:
            done, pending = await asyncio.wait(set(tasks), timeout=drain)
            result.unanswered = len(pending)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
    finally:
        client.close()
    return result
