#!/usr/bin/env python3
"""The dead-create scenario of issue 9 §1, at full size (see bench/README.md):

OpsGenie answers 503 for --outage s (120) with max_age_seconds = --max-age (60); --alerts alerts (1,400) arrive over
the first --arrive s (70), half of them resolve 10-60 s after their create. Then OpsGenie is back, the queue
settles, an operator runs `alertbridge replay --dead`, the queue settles again. Measured: creates and closes that
died, closes OpsGenie could not apply ("Alert does not exist"), and — after the replay — whether OpsGenie's state
equals the `aliases` table.

    .venv/bin/python bench/fault_dead_create.py [--outage 120 --max-age 60 --alerts 1400 --arrive 70]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time

from faultlib import Stack, consistency, incidents, log, machine, queue_left, wait_until, write_result


def dead_by_action(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {
        f"{a} {o}": n
        for a, o, n in db.execute(
            "SELECT action, last_outcome, count(*) FROM outbox WHERE status = 'dead' GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--outage", type=float, default=120.0)
    p.add_argument("--max-age", type=float, default=60.0)
    p.add_argument("--alerts", type=int, default=1400)
    p.add_argument("--arrive", type=float, default=70.0)
    args = p.parse_args()
    stack = Stack(delivery=f"max_age_seconds = {args.max_age}")
    result: dict = {"machine": machine(), "args": vars(args)}
    try:
        stack.start()
        db = stack.db()
        stack.fault(status=503, count=10**9, methods=["POST", "GET"])
        t0 = time.monotonic()

        def recover() -> None:
            stack.clear_faults()
            log(f"OpsGenie is back after {time.monotonic() - t0:.0f}s")

        timer = threading.Timer(args.outage, recover)
        timer.start()
        log(f"OpsGenie answers 503 for {args.outage:.0f}s; {args.alerts} alerts arrive over {args.arrive:.0f}s")
        load = asyncio.run(
            incidents(
                stack.base,
                rate=args.alerts / args.arrive,
                duration=args.arrive,
                pool=args.alerts,
                close_after=(10.0, 60.0),
                resolve_share=0.5,
            )
        )
        timer.join()
        log("all alerts sent; waiting for the queue to settle")
        settle = wait_until(lambda: queue_left(db) == 0, timeout=900)
        before = stack.summary()
        result["load"] = {"sent": load.sent, "accepted": load.accepted, "statuses": load.statuses}
        result["before_replay"] = {
            "settle_s": settle,
            "dead": dead_by_action(db),
            "consistency": consistency(db, before),
        }
        log(f"before replay: {json.dumps(result['before_replay'])}")
        done = subprocess.run(
            [sys.executable, "-m", "alertbridge.cli", "replay", "--dead", "--no-migrate"]
            + ["--config", str(stack.tmp / "bench.toml")],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        requeued = json.loads(done.stdout)["requeued"] if done.returncode == 0 else done.stderr[-500:]
        settle2 = wait_until(lambda: queue_left(db) == 0, timeout=900)
        after = stack.summary()
        superseded = db.execute("SELECT count(*) FROM outbox WHERE last_outcome = 'superseded'").fetchone()[0]  # type: ignore[index]
        result["after_replay"] = {
            "requeued": len(requeued) if isinstance(requeued, list) else requeued,
            "superseded": superseded,
            "settle_s": settle2,
            "consistency": consistency(db, after),
        }
        result["other_load_cores"] = round(stack.other_load(), 2)
        log(f"after replay: {json.dumps(result['after_replay'])}")
    finally:
        stack.stop()
    path = write_result("dead_create", result)
    print(json.dumps(result, indent=2))
    log(f"wrote {path}")
    c = result["after_replay"]["consistency"]
    return 0 if c["end_state_mismatches"] == 0 and c["opsgenie_failed_actions"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
