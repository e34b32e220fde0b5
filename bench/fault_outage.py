#!/usr/bin/env python3
"""An OpsGenie outage of --outage s (600) while --rate alerts/s (10) keep arriving, half of them resolving 20-120 s
later; arrivals go on for --after s (60) after OpsGenie is back. `serve` runs with [delivery] defaults (circuit
breaker: 5 failures, probes up to 5 s apart). Measured: requests that reached OpsGenie during the outage, and the
drain time — from OpsGenie's return until no event queued before it is left (target: <= 30 s). Then the usual
checks: nothing lost, no duplicate alert, per-alias order, OpsGenie's end state = Postgres.

    .venv/bin/python bench/fault_outage.py [--outage 600 --rate 10 --after 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from datetime import UTC, datetime

from faultlib import Stack, consistency, incidents, log, machine, queue_left, wait_until, write_result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--outage", type=float, default=600.0)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--after", type=float, default=60.0)
    args = p.parse_args()
    stack = Stack()
    result: dict = {"machine": machine(), "args": vars(args)}
    back: dict[str, float] = {}
    peak = {"backlog": 0}
    try:
        stack.start()
        db = stack.db()
        stack.fault(status=503, count=10**9, methods=["POST", "GET"])
        fault_from = time.time()

        def recover() -> None:
            stack.clear_faults()
            back["wall"] = time.time()
            back["mono"] = time.monotonic()
            log("OpsGenie is back")

        def watch() -> None:
            with stack.db() as wdb:
                while "drained" not in back:
                    n = queue_left(wdb)
                    peak["backlog"] = max(peak["backlog"], n)
                    if "wall" in back:
                        since = datetime.fromtimestamp(back["wall"], UTC)
                        (left,) = wdb.execute(
                            "SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight') AND created_at < %s",
                            (since,),
                        ).fetchone()  # type: ignore[misc]
                        if left == 0:
                            back["drained"] = time.monotonic() - back["mono"]
                            log(f"everything queued before the return was delivered after {back['drained']:.1f}s")
                    time.sleep(0.25)

        timer = threading.Timer(args.outage, recover)
        timer.start()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        log(f"outage of {args.outage:.0f}s with {args.rate}/s arriving, then {args.after:.0f}s more")
        load = asyncio.run(
            incidents(
                stack.base,
                rate=args.rate,
                duration=args.outage + args.after,
                pool=int(args.rate * 400),
                close_after=(20.0, 120.0),
                resolve_share=0.5,
            )
        )
        timer.join()
        watcher.join(900)
        final = wait_until(lambda: queue_left(db) == 0, timeout=900)
        summary = stack.summary()
        during = [r for r in summary["requests"] if fault_from <= r[0] < back["wall"]]
        result.update(
            load={"sent": load.sent, "accepted": load.accepted, "statuses": load.statuses},
            requests_during_outage=len(during),
            requests_total=len(summary["requests"]),
            backlog_peak=peak["backlog"],
            drain_s=back.get("drained"),
            final_settle_s=final,
            target=db.execute("SELECT state, failures, probe_failures FROM delivery_targets").fetchall(),
            dead=db.execute("SELECT count(*) FROM outbox WHERE status = 'dead'").fetchone()[0],  # type: ignore[index]
            consistency=consistency(db, summary),
            other_load_cores=round(stack.other_load(), 2),
        )
    finally:
        stack.stop()
    path = write_result("outage", result)
    print(json.dumps(result, indent=2, default=str))
    log(f"wrote {path}")
    return 0 if (result.get("drain_s") or 1e9) <= 30 else 1


if __name__ == "__main__":
    sys.exit(main())
