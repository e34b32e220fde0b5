#!/usr/bin/env python3
"""kill -9 of the delivery worker every --kill-every s (10) for --duration s (120) while webhooks arrive at up to
--rate per second (500): `serve --no-worker` receives, `alertbridge worker` processes deliver and are killed and
restarted (lease_seconds = --lease, 20). Alerts go through create -> close on a pool of aliases, so aliases also
go through several generations. Measured: webhooks accepted, lost (accepted but not delivered), duplicate alerts
(more OpsGenie alerts than generations), per-alias order (OpsGenie processed each alias's actions in the outbox's
order), OpsGenie's end state against Postgres, drain time after the last kill, accept->delivered.

    .venv/bin/python bench/fault_kill9.py [--duration 120 --rate 500 --kill-every 10 --lease 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time

from faultlib import Stack, consistency, incidents, log, machine, queue_left, wait_until, write_result


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    s = sorted(values)
    return {
        "p50": round(s[len(s) // 2], 3),
        "p99": round(s[min(len(s) - 1, int(len(s) * 0.99))], 3),
        "max": round(s[-1], 3),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--kill-every", type=float, default=10.0)
    p.add_argument("--lease", type=float, default=20.0)
    args = p.parse_args()
    stack = Stack(worker_in_serve=False, delivery=f"lease_seconds = {args.lease}")
    result: dict = {"machine": machine(), "args": vars(args)}
    kills = {"n": 0}
    stop = threading.Event()
    try:
        stack.start()
        db = stack.db()
        stack.start_worker("worker-0")

        def killer() -> None:
            while not stop.wait(args.kill_every):
                proc = stack.procs[f"worker-{kills['n']}"]
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills["n"] += 1
                stack.start_worker(f"worker-{kills['n']}")
                log(f"kill -9 #{kills['n']}; backlog {queue_left(db)}")

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        t0 = time.monotonic()
        load = asyncio.run(
            incidents(
                stack.base,
                rate=args.rate / 2,  # every incident is two webhooks: create, close
                duration=args.duration,
                pool=int(args.rate * 15),
                close_after=(2.0, 8.0),
                concurrency=128,
            )
        )
        elapsed = time.monotonic() - t0
        stop.set()
        thread.join()
        log(f"load done in {elapsed:.0f}s; {kills['n']} kills; waiting for the drain")
        drain = wait_until(lambda: queue_left(db) == 0, timeout=args.lease * 4 + 300)
        summary = stack.summary()
        (inbound,) = db.execute("SELECT count(*) FROM inbound_events").fetchone()  # type: ignore[misc]
        latency = [
            float(x)
            for (x,) in db.execute(
                "SELECT extract(epoch FROM delivered_at - created_at) FROM outbox WHERE status = 'delivered'"
            )
        ]
        attempts = dict(db.execute("SELECT outcome, count(*) FROM delivery_attempts GROUP BY 1").fetchall())
        result.update(
            load={
                "sent": load.sent,
                "accepted": load.accepted,
                "accepted_per_s": round(load.accepted / elapsed, 1),
                "statuses": load.statuses,
                "post_latency_s": percentiles(load.latencies),
            },
            kills=kills["n"],
            inbound_rows=inbound,
            lost=load.accepted - inbound,
            drain_after_load_s=drain,
            accept_to_delivered_s=percentiles(latency),
            attempts=attempts,
            consistency=consistency(db, summary),
            other_load_cores=round(stack.other_load(), 2),
        )
    finally:
        stop.set()
        stack.stop()
    path = write_result("kill9", result)
    print(json.dumps(result, indent=2, default=str))
    log(f"wrote {path}")
    c = result["consistency"]
    ok = result["lost"] == 0 and not c["not_delivered"] and c["duplicate_alerts"] == 0 and c["order_violations"] == 0
    return 0 if ok and c["end_state_mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
