#!/usr/bin/env python3
"""Rate pacing under a storm: --alerts (10,000) creates arrive as fast as `serve` takes them, the emulator enforces
the account's limit (--rate per minute, --burst; a 429 beyond it), and the bridge is configured with the same quota
(`[integrations.target] rate_per_minute`, `burst`). Measured: 429s (target: 0), alerts delivered (target: all), and
the achieved rate at the emulator (target: within 5 % of --rate) — over the whole run and in steady state (after
the first minute, when the initial burst has gone). --workers N adds `alertbridge worker` processes sharing the one
bucket (serve then does not deliver). Request-status follow-ups are off, so what is measured is the creates (they
would share the same bucket).

    .venv/bin/python bench/pacing_storm.py [--alerts 10000 --rate 600 --burst 50 --workers 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import httpx
from faultlib import TOKEN, Stack, log, machine, queue_left, wait_until, write_result


async def storm(base: str, n: int, concurrency: int = 64) -> dict[str, int]:
    statuses: dict[str, int] = {}
    slots = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(i: int) -> None:
            body = {"action": "create", "alias": f"storm-{i}", "message": f"storm alert {i}", "priority": "P3"}
            async with slots:
                try:
                    r = await client.post(f"{base}/webhooks/generic", content=json.dumps(body), headers=headers)
                    key = str(r.status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
            statuses[key] = statuses.get(key, 0) + 1

        await asyncio.gather(*(one(i) for i in range(n)))
    return statuses


def rates(times: list[float], rate: float) -> dict[str, Any]:
    """Requests per minute over the run, and in steady state (from 60 s after the first request)."""
    times = sorted(times)
    if len(times) < 2:
        return {}
    whole = (len(times) - 1) * 60.0 / (times[-1] - times[0])
    steady_times = [t for t in times if t >= times[0] + 60.0]
    steady = (len(steady_times) - 1) * 60.0 / (steady_times[-1] - steady_times[0]) if len(steady_times) > 1 else None
    peak_window = 0
    j = 0
    for i, t in enumerate(times):  # the most requests in any 60 s window
        while times[j] < t - 60.0:
            j += 1
        peak_window = max(peak_window, i - j + 1)
    return {
        "per_minute_whole_run": round(whole, 2),
        "per_minute_steady": round(steady, 2) if steady else None,
        "deviation_steady_percent": round((steady - rate) / rate * 100, 2) if steady else None,
        "deviation_whole_percent": round((whole - rate) / rate * 100, 2),
        "most_in_any_60s": peak_window,
        "duration_seconds": round(times[-1] - times[0], 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alerts", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=600.0)
    p.add_argument("--burst", type=int, default=50)
    p.add_argument("--workers", type=int, default=0)
    args = p.parse_args()
    stack = Stack(
        delivery="follow_request_status = false\n",
        target=f"rate_per_minute = {args.rate}\nburst = {args.burst}\n",
        worker_in_serve=args.workers == 0,
    )
    result: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    try:
        stack.start()
        db = stack.db()
        r = httpx.post(f"{stack.emulator}/_control/ratelimit", json={"per_minute": args.rate, "burst": args.burst})
        r.raise_for_status()
        for i in range(args.workers):
            stack.start_worker(f"worker{i}")
        t0 = time.monotonic()
        log(f"storm of {args.alerts} alerts; the emulator enforces {args.rate:g}/min, burst {args.burst}")
        result["webhooks"] = asyncio.run(storm(stack.base, args.alerts))
        result["ingest_seconds"] = round(time.monotonic() - t0, 1)
        log(f"ingested in {result['ingest_seconds']} s: {result['webhooks']}; delivering")
        expected = args.alerts / args.rate * 60 * 1.5 + 120
        drained = wait_until(lambda: queue_left(db) == 0, timeout=expected, interval=1.0)
        result["drained_after_seconds"] = round(time.monotonic() - t0, 1) if drained is not None else None
        limit = httpx.get(f"{stack.emulator}/_control/ratelimit", timeout=30).json()["ratelimit"]
        summary = stack.summary()
        accepted = [t for t, method, kind, status in summary["requests"] if kind == "create" and status == 202]
        result["emulator"] = {
            "accepted": limit["accepted"],
            "throttled_429": limit["throttled"],
            "alerts": len(summary["alerts"]),
        }
        result["rate"] = rates(accepted, args.rate)
        (delivered,) = db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone()  # type: ignore[misc]
        (paced,) = db.execute("SELECT count(*) FROM alias_history WHERE reason_code = 'paced'").fetchone()  # type: ignore[misc]
        (attempts_429,) = db.execute("SELECT count(*) FROM delivery_attempts WHERE http_status = 429").fetchone()  # type: ignore[misc]
        result["postgres"] = {"delivered": delivered, "paced_history_rows": paced, "attempts_429": attempts_429}
        result["other_load_cores"] = round(stack.other_load(), 2)
        dev = result["rate"].get("deviation_steady_percent")
        result["ok"] = (
            limit["throttled"] == 0
            and delivered == args.alerts
            and len(summary["alerts"]) == args.alerts
            and dev is not None
            and abs(dev) <= 5.0
        )
    finally:
        stack.stop()
    path = write_result("pacing_storm", result)
    print(json.dumps(result, indent=2, default=str))
    log(f"result: {path}")
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
