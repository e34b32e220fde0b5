#!/usr/bin/env python3
"""Retention under load: does pruning a large backlog hurt ingest? (issue 8 §4; numbers in bench/README.md)

    .venv/bin/python bench/prune.py [--rows 1000000] [--duration 30] [--connections 8]

On 127.0.0.1, in a fresh temporary directory: the emulator and ``alertbridge serve`` on the embedded PostgreSQL
(the background sweeper effectively off), the database seeded with ``--rows`` rows that are 500 days old (a quarter
each: webhooks, outbox rows, delivery attempts, alias history — all of closed, long-gone aliases), then:

  A. ``--duration`` seconds of Alertmanager webhooks (wrk, ``--connections``) with no pruning;
  B. the same load while ``alertbridge prune`` removes the seeded rows.

It reports the ingest rate of both phases (sampled from inbound_events every 0.25 s; in B only while prune runs),
their ratio (the target: B >= 80% of A), prune's duration and rows removed, and the POST latency of both phases.
Writes bench/results/prune-<UTC timestamp>.json. Every process it starts is stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_webhooks import (  # noqa: E402  (the shared bench plumbing)
    ALERTBRIDGE,
    API_KEY,
    RESULTS,
    ROOT,
    BenchError,
    Procs,
    config_text,
    free_port,
    machine_info,
    other_load,
    run_wrk,
    wait_http,
)

SEED = """
WITH ids AS (SELECT g FROM generate_series(1, %(n)s) g),
i AS (
    INSERT INTO inbound_events (integration, received_at, remote_addr, content_type, headers, query, body, body_size,
                                status, current_status, events_count, processed_at)
    SELECT 'alertmanager', now() - interval '500 days' + make_interval(secs => g), '10.0.0.1', 'application/json',
           '{}', '{}', convert_to(repeat('x', 600), 'UTF8'), 600, 'processed', 'processed', 1,
           now() - interval '500 days'
    FROM ids RETURNING id
),
o AS (
    INSERT INTO outbox (inbound_id, seq, integration, action, alias, opsgenie_alias, generation, payload, decision,
                        reason, status, attempts, created_at, delivered_at, queued_at)
    SELECT id, 0, 'alertmanager', 'create', 'gone-' || id, 'alertmanager:gone-' || id, 1,
           '{"message": "an old alert"}', 'send', 'new alert', 'delivered', 1, now() - interval '500 days',
           now() - interval '500 days', now() - interval '500 days'
    FROM i RETURNING id, alias
),
a AS (
    INSERT INTO delivery_attempts (outbox_id, attempt, kind, worker, method, url, started_at, latency_ms,
                                   http_status, outcome, reason)
    SELECT id, 1, 'send', 'w', 'POST', 'http://127.0.0.1/v2/alerts', now() - interval '500 days', 12, 202,
           'delivered', '202 accepted'
    FROM o RETURNING 1
)
INSERT INTO alias_history (integration, alias, generation, at, origin, action, from_state, to_state, decision,
                           reason_code, reason, outbox_id)
SELECT 'alertmanager', alias, 1, now() - interval '500 days', 'webhook', 'create', NULL, 'open', 'send',
       'new_alert', 'new alert', id
FROM o
"""


def sampler(url: str, stop: threading.Event, out: list[tuple[float, int]]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            (top,) = conn.execute("SELECT COALESCE(max(id), 0) FROM inbound_events").fetchone()  # type: ignore[misc]
            out.append((time.monotonic(), int(top)))
            stop.wait(0.25)


def rate(samples: list[tuple[float, int]], start: float, end: float, base: int) -> float:
    """Webhooks stored per second between start and end (ids above ``base`` are this run's)."""
    inside = [(t, n) for t, n in samples if start <= t <= end]
    if len(inside) < 2:
        return 0.0
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="old rows to seed (default 1,000,000)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load per phase (default 30)")
    ap.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    ap.add_argument("--batch-size", type=int, default=5000, help="[retention] batch_size (default 5000)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    busy = other_load(3.0)
    tmp = Path(tempfile.mkdtemp(prefix="alertbridge-prune-"))
    procs = Procs()
    env = {k: v for k, v in os.environ.items() if k not in ("ALERTBRIDGE_DATABASE_URL", "DATABASE_URL")}
    env.update(ALERTBRIDGE_DATA_DIR=str(tmp / "data"), ALERTBRIDGE_LOG_LEVEL="WARNING")
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        "args": vars(args),
        "other_load_before_cores": round(busy, 3),
    }
    try:
        eport, sport = free_port(), free_port()
        emulator, bridge = f"http://127.0.0.1:{eport}", f"http://127.0.0.1:{sport}"
        cfg = tmp / "bench.toml"
        cfg.write_text(
            config_text(emulator) + f"\n[retention]\ninterval_seconds = 86400\nbatch_size = {args.batch_size}\n"
        )
        em = procs.start(
            "emulator",
            [str(ALERTBRIDGE), "emulator", "--host", "127.0.0.1", "--port", str(eport), "--api-key", API_KEY],
            tmp / "emulator.log",
            env,
        )
        wait_http(f"{emulator}/_control", em, tmp / "emulator.log", "emulator", 30)
        sv = procs.start(
            "serve",
            [str(ALERTBRIDGE), "serve", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(sport)],
            tmp / "serve.log",
            env,
            stop_timeout=40,
        )
        wait_http(f"{bridge}/readyz", sv, tmp / "serve.log", "alertbridge serve", 180)
        url = subprocess.run(
            [str(ALERTBRIDGE), "db-url", "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=60
        ).stdout.strip()
        if not url:
            raise BenchError("alertbridge db-url printed nothing")
        with psycopg.connect(url, autocommit=True) as db:
            t = time.monotonic()
            print(f"seeding {args.rows} rows ...", file=sys.stderr)
            db.execute(SEED, {"n": args.rows // 4})
            db.execute("VACUUM ANALYZE")
            result["seed_seconds"] = round(time.monotonic() - t, 1)
            base = int(db.execute("SELECT COALESCE(max(id), 0) FROM inbound_events").fetchone()[0])  # type: ignore[index]
        run = uuid.uuid4().hex[:6]
        webhook_url = f"{bridge}/webhooks/alertmanager"
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        watcher = threading.Thread(target=sampler, args=(url, stop, samples), daemon=True)
        watcher.start()
        try:
            print(f"phase A: {args.duration:g}s of load, no pruning ...", file=sys.stderr)
            a0 = time.monotonic()
            load_a = run_wrk(webhook_url, args.connections, 1, args.duration, f"a{run}")
            a1 = time.monotonic()
            time.sleep(3)
            print(f"phase B: {args.duration:g}s of load while prune runs ...", file=sys.stderr)
            prune_env = {**env, "ALERTBRIDGE_DATABASE_URL": url}
            b0 = time.monotonic()
            pruner = subprocess.Popen(
                [str(ALERTBRIDGE), "prune", "--config", str(cfg), "--no-migrate"],
                env=prune_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            ended: list[float] = []

            def wait_prune() -> None:
                pruner.wait()
                ended.append(time.monotonic())

            waiter = threading.Thread(target=wait_prune, daemon=True)
            waiter.start()
            load_b = run_wrk(webhook_url, args.connections, 1, args.duration, f"b{run}")
            b1 = time.monotonic()
            waiter.join(timeout=600)
            out = pruner.stdout.read().decode() if pruner.stdout else ""
            if pruner.returncode != 0:
                raise BenchError(f"prune failed ({pruner.returncode}): {out}")
            prune_end = ended[0] if ended else b1
        finally:
            stop.set()
            watcher.join(5)
        removed = json.loads(out)["rows"]
        rate_a = rate(samples, a0 + 2, a1 - 1, base)
        window_end = min(prune_end, b1) - 0.5
        rate_b = rate(samples, b0 + 2, window_end, base)
        result.update(
            prune_seconds=round(prune_end - b0, 1),
            prune_overlapped_load_seconds=round(min(prune_end, b1) - b0, 1),
            rows_removed=removed,
            rows_removed_total=sum(removed.values()),
            phase_a={
                "webhooks_per_s": round(rate_a, 1),
                "latency_ms": load_a["latency_ms"],
                "status": load_a["status"],
            },
            phase_b={
                "webhooks_per_s": round(rate_b, 1),
                "latency_ms": load_b["latency_ms"],
                "status": load_b["status"],
            },
            ratio=round(rate_b / rate_a, 3) if rate_a else None,
            other_load_after_cores=round(other_load(3.0), 3),
        )
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"prune-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(json.dumps(result, indent=2, default=str))
        print(
            json.dumps(
                {k: result[k] for k in ("prune_seconds", "rows_removed_total", "phase_a", "phase_b", "ratio")},
                indent=2,
                default=str,
            )
        )
        print(f"written to {path.relative_to(ROOT)}", file=sys.stderr)
        return 0
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
