#!/usr/bin/env python3
"""Webhook throughput / latency baseline for ``alertbridge serve`` (see bench/README.md).

    .venv/bin/python bench/run_webhooks.py [--duration 15] [--connections 8,32,128]

Starts, on 127.0.0.1 and in a fresh temporary directory:
  * the OpsGenie emulator (``alertbridge emulator``), a separate process;
  * ``alertbridge serve`` with a generated config (one integration "alertmanager", built-in template
    "alertmanager", delivering to the emulator, [delivery] defaults) on the embedded PostgreSQL
    (ALERTBRIDGE_DATA_DIR = the temp dir; ALERTBRIDGE_DATABASE_URL / DATABASE_URL removed from its env).

Then, per connection count, posts Alertmanager webhooks (bench/alertmanager_webhook.json, one firing alert,
"__ID__" replaced by a unique id, so every webhook is a new alert) for --duration seconds with wrk
(bench/webhooks.lua; a multi-process httpx generator if wrk is missing), waits until the outbox is drained,
and joins the database with the emulator's request log to get accept -> emulator receipt per alert.

Writes bench/results/<UTC timestamp>.json and prints a markdown table. Every process it starts is stopped
(SIGTERM, wait, SIGKILL as a last resort) on success, error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ALERTBRIDGE = ROOT / ".venv" / "bin" / "alertbridge"
BODY_TEMPLATE = BENCH / "alertmanager_webhook.json"
LUA = BENCH / "webhooks.lua"
RESULTS = BENCH / "results"
TOKEN = "bench-token-0123456789"
API_KEY = "bench-genie-key"
INTEGRATION = "alertmanager"
WRK_INSTALL = "apt-get update && apt-get install -y wrk"


class BenchError(Exception):
    pass


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Procs:
    """Every child process, stopped in reverse start order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[bytes], float]] = []
        self.exits: dict[str, int | None] = {}  # name -> exit status (negative: killed by that signal)

    def start(
        self, name: str, argv: list[str], log: Path, env: dict[str, str], stop_timeout: float = 30.0
    ) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            # Own session: a Ctrl-C in the terminal reaches only this script, which stops the children in order.
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
            )
        self.started.append((name, proc, stop_timeout))
        return proc

    def stop_all(self) -> None:
        for name, proc, timeout in reversed(self.started):
            if proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"  {name} (pid {proc.pid}) did not stop in {timeout:.0f}s; SIGKILL", file=sys.stderr)
                proc.kill()
                proc.wait()
            self.exits[name] = proc.returncode
        self.started.clear()


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} during start-up; its log:\n{tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise BenchError(f"{what} not ready at {url} after {timeout:.0f}s; its log:\n{tail(log)}")


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_embedded_postgres(pgdata: Path) -> bool:
    """serve should stop the embedded server when it exits; if it did not, fast-shutdown it ourselves.
    Returns True when we had to (the server was left running by serve)."""
    pid = postmaster_pid(pgdata)
    if pid is None:
        return False
    for _ in range(50):
        if not alive(pid):
            return False
        time.sleep(0.1)
    print(f"  embedded postgres (pid {pid}) still running; SIGINT (fast shutdown)", file=sys.stderr)
    os.kill(pid, signal.SIGINT)
    for _ in range(100):
        if not alive(pid):
            return True
        time.sleep(0.1)
    print(f"  embedded postgres (pid {pid}) did not stop; leaving it", file=sys.stderr)
    return True


def cpu_seconds(pids: list[int], *, reaped_children: bool = False) -> float:
    """utime + stime of the given processes (Linux /proc), in seconds; with ``reaped_children`` also their
    exited children's (cutime + cstime: a Postgres backend's CPU lands on the postmaster when it exits)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            if reaped_children:
                total += int(fields[13]) + int(fields[14])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def machine_cpu() -> dict[str, float]:
    """Machine-wide CPU seconds so far (/proc/stat, all cores): "task" = user + nice + system (what processes'
    utime/stime add up to), "irq" = irq + softirq (loopback networking mostly), "steal" (the hypervisor)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    f += [0] * (8 - len(f))
    tick = os.sysconf("SC_CLK_TCK")
    return {"task": (f[0] + f[1] + f[2]) / tick, "irq": (f[5] + f[6]) / tick, "steal": f[7] / tick}


def other_load(seconds: float = 3.0) -> float:
    """Cores busy with processes while this bench runs nothing: other users of the machine."""
    a = machine_cpu()["task"] - cpu_seconds([os.getpid()])
    time.sleep(seconds)
    return (machine_cpu()["task"] - cpu_seconds([os.getpid()]) - a) / seconds


def children_cpu() -> float:
    """CPU seconds of this script's reaped children (wrk, alertbridge db-url)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def postgres_cpu(master: int | None) -> float:
    """CPU seconds of the embedded Postgres: the postmaster (+ its reaped backends) and its live children."""
    if master is None:
        return 0.0
    return cpu_seconds([master], reaped_children=True) + cpu_seconds(postgres_pids(master)[1:])


def postgres_pids(master: int | None) -> list[int]:
    if master is None:
        return []
    pids = [master]
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == master:
                pids.append(int(d.name))
    return pids


# --- load generators -------------------------------------------------------------------------------------


def run_wrk(url: str, connections: int, threads: int, duration: float, tag: str) -> dict[str, Any]:
    argv = [
        "wrk",
        "-t",
        str(max(1, min(threads, connections))),
        "-c",
        str(connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
        "--",
        str(BODY_TEMPLATE),
        tag,
        TOKEN,
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=duration + 60)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    text_out = out.decode(errors="replace")
    line = next((ln for ln in text_out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (status {proc.returncode}):\n{text_out}\n{err.decode(errors='replace')}")
    data = json.loads(line[len("BENCH_JSON ") :])
    ok = sum(n for code, n in data["status"].items() if code.startswith("2"))
    lat = data["latency_us"]
    return {
        "generator": "wrk",
        "argv": argv,
        "duration_s": data["duration_us"] / 1e6,
        "responses": data["requests"],
        "responses_2xx": ok,
        "started": data["started"],
        "status": data["status"],
        "errors": data["errors"],
        "latency_ms": {k: v / 1000 for k, v in lat.items()},
        "wrk_text": text_out,
    }


async def _py_load(url: str, connections: int, duration: float, tag: str, body: str) -> dict[str, Any]:
    latencies: list[float] = []
    status: dict[str, int] = {}
    errors = 0
    n = 0
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def loop(worker: int) -> None:
            nonlocal errors, n
            i = 0
            while time.monotonic() < deadline:
                i += 1
                n += 1
                content = body.replace("__ID__", f"{tag}-{worker}-{i}").encode()
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, content=content, headers=headers)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                status[str(r.status_code)] = status.get(str(r.status_code), 0) + 1

        await asyncio.gather(*(loop(w) for w in range(connections)))
    return {"latencies": latencies, "status": status, "errors": errors, "started": n}


def _py_worker(args: tuple[str, int, float, str, str]) -> dict[str, Any]:
    return asyncio.run(_py_load(*args))


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def run_python(url: str, connections: int, processes: int, duration: float, tag: str) -> dict[str, Any]:
    body = BODY_TEMPLATE.read_text()
    procs = max(1, min(processes, connections))
    shares = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
    t0 = time.monotonic()
    with ProcessPoolExecutor(procs) as pool:
        parts = list(pool.map(_py_worker, [(url, c, duration, f"{tag}-p{i}", body) for i, c in enumerate(shares)]))
    elapsed = time.monotonic() - t0
    lat = [x for p in parts for x in p["latencies"]]
    status: dict[str, int] = {}
    for p in parts:
        for code, k in p["status"].items():
            status[code] = status.get(code, 0) + k
    return {
        "generator": f"python-httpx x{procs} processes",
        "duration_s": elapsed,
        "responses": len(lat),
        "responses_2xx": sum(k for code, k in status.items() if code.startswith("2")),
        "started": sum(p["started"] for p in parts),
        "status": status,
        "errors": {"client": sum(p["errors"] for p in parts)},
        "latency_ms": {
            "min": min(lat, default=None),
            "mean": sum(lat) / len(lat) if lat else None,
            "max": max(lat, default=None),
            "p50": percentile(lat, 50),
            "p90": percentile(lat, 90),
            "p99": percentile(lat, 99),
            "p99.9": percentile(lat, 99.9),
        },
    }


# --- measurement -----------------------------------------------------------------------------------------


def backlog(db: psycopg.Connection) -> dict[str, int]:
    rows = db.execute(
        "SELECT status, count(*) FROM outbox WHERE status IN ('pending', 'in_flight') GROUP BY status"
    ).fetchall()
    counts = {"pending": 0, "in_flight": 0, **{s: int(n) for s, n in rows}}
    counts["total"] = counts["pending"] + counts["in_flight"]
    return counts


def pg_sessions(db: psycopg.Connection) -> int:
    """Sessions (connections) ever established to the database (pg_stat_database.sessions, PostgreSQL 14+)."""
    db.execute("SELECT pg_stat_clear_snapshot()")
    row = db.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def wait_drained(db: psycopg.Connection, since: float, timeout: float) -> tuple[float | None, int]:
    """Poll the outbox every 0.1 s until no row is pending/in flight, confirmed again 1 s later (webhooks
    abandoned by the load generator at the deadline may still be committing). Returns (seconds from
    ``since`` to the first empty poll of the final empty stretch, or None on timeout; polls made)."""
    deadline = time.monotonic() + timeout
    polls = 0
    first_empty: float | None = None
    while time.monotonic() < deadline:
        polls += 1
        if backlog(db)["total"] == 0:
            now = time.monotonic()
            if first_empty is None:
                first_empty = now
            elif now - first_empty >= 1.0:
                return first_empty - since, polls
        else:
            first_empty = None
        time.sleep(0.1)
    return None, polls


def parse_at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def stats(values: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values, default=None),
    }


def measure_delivery(db: psycopg.Connection, emulator: str, tag: str) -> dict[str, Any]:
    """Join the stage's outbox rows (alias = the webhook's fingerprint, prefixed with ``tag``) with the
    emulator's request log: accept = inbound_events.received_at, receipt = the emulator's ``at`` of the
    first POST /v2/alerts whose body alias is that row's opsgenie_alias."""
    rows = db.execute(
        """
        SELECT o.opsgenie_alias, o.status, o.attempts, i.received_at, o.delivered_at
        FROM outbox o JOIN inbound_events i ON i.id = o.inbound_id
        WHERE o.integration = %s AND o.alias LIKE %s
        """,
        (INTEGRATION, tag + "-%"),
    ).fetchall()
    requests = httpx.get(f"{emulator}/_control/requests", timeout=120).json()["requests"]
    prefix = f"{INTEGRATION}:{tag}-"
    receipt: dict[str, datetime] = {}
    creates = 0
    for r in requests:
        body = r.get("json")
        if r["method"] != "POST" or r["path"] != "/v2/alerts" or not isinstance(body, dict):
            continue
        alias = body.get("alias") or ""
        if not alias.startswith(prefix):
            continue
        creates += 1
        at = parse_at(r["at"])
        if alias not in receipt or at < receipt[alias]:
            receipt[alias] = at
    accept_to_receipt: list[float] = []
    accept_to_delivered: list[float] = []
    by_status: dict[str, int] = {}
    missing = 0
    for og_alias, status, _attempts, received_at, delivered_at in rows:
        by_status[status] = by_status.get(status, 0) + 1
        if og_alias in receipt:
            accept_to_receipt.append((receipt[og_alias] - received_at).total_seconds() * 1000)
        else:
            missing += 1
        if delivered_at is not None:
            accept_to_delivered.append((delivered_at - received_at).total_seconds() * 1000)
    times = sorted(receipt.values())
    received = [r[3] for r in rows]
    return {
        "webhooks_stored": len(rows),
        "outbox_status": by_status,
        "emulator_creates": creates,
        "emulator_unique_aliases": len(receipt),
        "missing_at_emulator": missing,
        "accept_to_emulator_ms": stats(accept_to_receipt),
        "accept_to_delivered_at_ms": stats(accept_to_delivered),
        "first_accept": min(received).isoformat() if received else None,
        "last_accept": max(received).isoformat() if received else None,
        "first_receipt": times[0].isoformat() if times else None,
        "last_receipt": times[-1].isoformat() if times else None,
        "delivery_rate_per_s": (len(times) - 1) / (times[-1] - times[0]).total_seconds()
        if len(times) > 1 and times[-1] > times[0]
        else None,
    }


# --- the run ---------------------------------------------------------------------------------------------


def config_text(emulator_url: str) -> str:
    """Like tests/harness.py's config_text: one integration, [delivery] left at its defaults."""
    return f"""
[[integrations]]
name = "{INTEGRATION}"
template = "alertmanager"
tokens = ["{TOKEN}"]

[integrations.target]
base_url = "{emulator_url}"
api_key = "{API_KEY}"
default_source = "alertbridge-bench"
"""


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            "",
        )
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True) if shutil.which("wrk") else None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git_commit": commit.stdout.strip() or None,
        "git_dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None,
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if wrk else None,
    }


def smoke(url: str, emulator: str, tag: str, count: int = 5, timeout: float = 30.0) -> None:
    """A few sequential webhooks must be answered 202 and reach the emulator, before any load."""
    body = BODY_TEMPLATE.read_text()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for i in range(count):
        r = httpx.post(url, content=body.replace("__ID__", f"{tag}-{i}").encode(), headers=headers, timeout=30)
        if r.status_code != 202:
            raise BenchError(f"smoke webhook answered {r.status_code}: {r.text[:500]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reqs = httpx.get(f"{emulator}/_control/requests", timeout=10).json()["requests"]
        got = {(r.get("json") or {}).get("alias") for r in reqs if r["path"] == "/v2/alerts"}
        if all(f"{INTEGRATION}:{tag}-{i}" in got for i in range(count)):
            return
        time.sleep(0.2)
    raise BenchError(f"smoke webhooks did not reach the emulator within {timeout:.0f}s")


def fmt(v: float | int | None, digits: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(stages: list[dict[str, Any]]) -> str:
    head = (
        "| connections | webhooks/s (2xx) | POST p50 ms | POST p99 ms | non-2xx / errors "
        "| accept→emulator p50 ms | accept→emulator p99 ms | backlog at end | drain s | delivered "
        "| other load (cores) |"
    )
    lines = [head, "|" + "|".join(["---:"] * (head.count("|") - 1)) + "|"]
    for s in stages:
        load, d = s["load"], s["delivery"]
        bad = (load["responses"] - load["responses_2xx"]) + sum(load["errors"].values())
        lines.append(
            f"| {s['connections']} | {fmt(s['webhooks_per_s'])} | {fmt(load['latency_ms']['p50'])} "
            f"| {fmt(load['latency_ms']['p99'])} | {bad} | {fmt(d['accept_to_emulator_ms']['p50'], 0)} "
            f"| {fmt(d['accept_to_emulator_ms']['p99'], 0)} | {s['backlog_at_end']['total']} "
            f"| {fmt(s['drain_s'])} | {d['emulator_unique_aliases']}/{d['webhooks_stored']} "
            f"| {s['cpu_s_load']['other_processes'] / s['load_wall_s']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of load per stage (default 15)")
    ap.add_argument("--connections", default="8,32,128", help="comma-separated connection counts (default 8,32,128)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads / Python generator processes (default 1)")
    ap.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk if installed, else the Python generator",
    )
    ap.add_argument("--drain-timeout", type=float, default=600.0, help="longest wait for the outbox to drain")
    ap.add_argument("--log-level", default="INFO", help="ALERTBRIDGE_LOG_LEVEL of serve and emulator (default INFO)")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for other processes to use < 0.15 cores before starting (default 0)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (config, logs, pgdata)")
    args = ap.parse_args()
    conns = [int(c) for c in args.connections.split(",") if c.strip()]

    generator = args.generator
    if generator in ("auto", "wrk") and not shutil.which("wrk"):
        msg = f"wrk is not installed; install it with:  {WRK_INSTALL}"
        if generator == "wrk":
            print(msg, file=sys.stderr)
            return 2
        print(
            msg + "\nfalling back to the Python (httpx) generator, which is much slower at many connections",
            file=sys.stderr,
        )
        generator = "python"
    elif generator == "auto":
        generator = "wrk"
    if generator == "python" and args.threads < 2:
        args.threads = 2

    signal.signal(signal.SIGTERM, _raise_interrupt)
    busy = other_load()
    quiet_deadline = time.monotonic() + args.wait_quiet
    while busy >= 0.15 and time.monotonic() < quiet_deadline:
        print(f"waiting for a quiet machine: other processes use {busy:.2f} cores", file=sys.stderr)
        busy = other_load(5.0)
    if busy > 0.2:
        print(
            f"warning: other processes keep {busy:.2f} of {os.cpu_count()} cores busy; the numbers will be lower "
            "and noisier than on a quiet machine",
            file=sys.stderr,
        )
    tmp = Path(tempfile.mkdtemp(prefix="alertbridge-bench-"))
    procs = Procs()
    run_id = uuid.uuid4().hex[:6]
    started_at = datetime.now(UTC)
    result: dict[str, Any] = {
        "started_at": started_at.isoformat(),
        "machine": machine_info(),
        "args": vars(args),
        "generator": generator,
        "other_load_before_cores": round(busy, 3),
        "stages": [],
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ALERTBRIDGE_DATABASE_URL", "DATABASE_URL", "ALERTBRIDGE_CONFIG")
    }
    env.update(ALERTBRIDGE_DATA_DIR=str(tmp / "data"), ALERTBRIDGE_LOG_LEVEL=args.log_level.upper())
    pgdata = tmp / "data" / "pgdata"
    db: psycopg.Connection | None = None
    try:
        eport, sport = free_port(), free_port()
        emulator = f"http://127.0.0.1:{eport}"
        bridge = f"http://127.0.0.1:{sport}"
        cfg = tmp / "bench.toml"
        cfg.write_text(config_text(emulator))
        result["config"] = cfg.read_text()
        print(f"temp dir {tmp}; emulator {emulator}; bridge {bridge}; generator {generator}", file=sys.stderr)

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
        url_out = subprocess.run(
            [str(ALERTBRIDGE), "db-url", "--config", str(cfg)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if url_out.returncode != 0:
            raise BenchError(f"alertbridge db-url failed: {url_out.stderr}")
        db = psycopg.connect(url_out.stdout.strip(), autocommit=True)
        result["machine"]["postgres"] = db.execute("SHOW server_version").fetchone()[0]
        webhook_url = f"{bridge}/webhooks/{INTEGRATION}"
        smoke(webhook_url, emulator, f"r{run_id}smoke")
        httpx.post(f"{emulator}/_control/reset", timeout=10)
        pm = postmaster_pid(pgdata)

        def cpu_now() -> dict[str, float]:
            """CPU seconds so far; "other_processes" = process time on the machine not spent by serve, emulator,
            Postgres, wrk or this script: other users of the machine (near 0 for a clean run)."""
            own = {
                "serve": cpu_seconds([sv.pid]),
                "emulator": cpu_seconds([em.pid]),
                "postgres": postgres_cpu(pm),
                "wrk": children_cpu(),
                "bench": cpu_seconds([os.getpid()]),
            }
            m = machine_cpu()
            return {**own, "other_processes": m["task"] - sum(own.values()), "irq": m["irq"], "steal": m["steal"]}

        for c in conns:
            tag = f"r{run_id}c{c}"
            print(f"stage: {c} connections for {args.duration:g}s ...", file=sys.stderr)
            cpu0 = cpu_now()
            sessions0 = pg_sessions(db)
            t_start = time.monotonic()
            if generator == "wrk":
                load = run_wrk(webhook_url, c, args.threads, args.duration, tag)
            else:
                load = run_python(webhook_url, c, args.threads, args.duration, tag)
            t_end = time.monotonic()
            at_end = backlog(db)
            cpu1 = cpu_now()
            sessions1 = pg_sessions(db)
            print(
                f"  {load['responses_2xx']} webhooks answered 2xx; backlog {at_end['total']}; draining ...",
                file=sys.stderr,
            )
            drain_s, _ = wait_drained(db, t_end, args.drain_timeout)
            t_drained = time.monotonic()
            cpu2 = cpu_now()
            time.sleep(0.5)  # let the emulator log the last requests
            delivery = measure_delivery(db, emulator, tag)
            stage = {
                "connections": c,
                "tag": tag,
                "load": load,
                "webhooks_per_s": load["responses_2xx"] / load["duration_s"],
                "backlog_at_end": at_end,
                "drain_s": drain_s,
                "drain_timed_out": drain_s is None,
                "delivery": delivery,
                "cpu_s_load": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu0},
                "cpu_s_drain": {k: round(cpu2[k] - cpu1[k], 2) for k in cpu0},
                "pg_sessions_opened_during_load": sessions1 - sessions0,
                "drain_rate_per_s": at_end["total"] / drain_s if drain_s else None,
                "load_wall_s": round(t_end - t_start, 2),
                "drain_wall_s": round(t_drained - t_end, 2),
            }
            result["stages"].append(stage)
            a2e = delivery["accept_to_emulator_ms"]
            print(
                f"  {stage['webhooks_per_s']:.1f} webhooks/s, POST p50 {load['latency_ms']['p50']:.1f} ms "
                f"p99 {load['latency_ms']['p99']:.1f} ms; accept->emulator p50 {fmt(a2e['p50'], 0)} ms "
                f"p99 {fmt(a2e['p99'], 0)} ms; drained in {fmt(drain_s)} s",
                file=sys.stderr,
            )
            httpx.post(f"{emulator}/_control/reset", timeout=30)  # keep the emulator's alias scan small
            time.sleep(2)
    except KeyboardInterrupt:
        print("interrupted; stopping processes", file=sys.stderr)
        result["interrupted"] = True
        return 130
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        result["error"] = str(exc)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish cleaning up even on a second Ctrl-C
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if db is not None:
            db.close()
        procs.stop_all()
        result["exit_status"] = procs.exits
        result["embedded_postgres_left_running"] = stop_embedded_postgres(pgdata)
        if result["stages"]:
            RESULTS.mkdir(exist_ok=True)
            out = RESULTS / f"{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
            out.write_text(json.dumps(result, indent=2, default=str) + "\n")
            print(f"\nresults: {out.relative_to(ROOT)}\n", file=sys.stderr)
            print(table(result["stages"]))
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
