#!/usr/bin/env python3
"""The performance benchmark of issue 10, in one command: the bridge's figures (targets 1-7) next to Postgres's own
ceiling, pgbench running the bridge's transaction on the same Postgres in the same run.

    .venv/bin/python bench/run.py                 # everything (~25 min: the soak alone is 10 min)
    .venv/bin/python bench/run.py --quick         # every stage, shorter and smaller (~6 min), for a try
    .venv/bin/python bench/run.py --only pgbench,ingest,delivery

Everything runs on 127.0.0.1 in a new temporary directory: an embedded PostgreSQL owned by this script (migrated),
the OpsGenie emulator (bench/fast_emulator.py) in its own process, ``alertbridge serve`` (1 or 2 processes) and,
where a stage says so, ``alertbridge worker``. Every process is stopped however the run ends. Between stages the
tables are emptied and the emulator reset. Results: ``bench/results/run-<UTC>.json`` and a markdown table on
stdout (see bench/README.md for what each figure means).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faultlib  # noqa: E402
from faultlib import API_KEY, BENCH, TOKEN, free_port, log  # noqa: E402
from openloop import open_loop  # noqa: E402

AM_BODY = (BENCH / "alertmanager_webhook.json").read_text()
LUA = BENCH / "webhooks.lua"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
TABLES = "inbound_events, inbound_replays, outbox, aliases, generations, alias_history, delivery_attempts"


def config_text(emulator: str, server: str = "", delivery: str = "") -> str:
    targets = f"""
[integrations.target]
base_url = "{emulator}"
api_key = "{API_KEY}"
default_source = "alertbridge-bench"
"""
    return f"""
[server]
{server}
[delivery]
{delivery}
[[integrations]]
name = "alertmanager"
template = "alertmanager"
tokens = ["{TOKEN}"]
{targets}
[[integrations]]
name = "generic"
template = "generic"
tokens = ["{TOKEN}"]
{targets}
"""


# --- the stack -------------------------------------------------------------------------------------------------


@dataclass
class Bench:
    tmp: Path
    quick: bool = False
    db_url: str = ""
    emulator: str = ""
    base: str = ""
    port: int = 0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    server: str = ""
    delivery: str = ""
    profile: bool = False  # py-spy (from PyPI) records the bridge's processes during the measured part of a stage
    profiles: dict[str, str] = field(default_factory=dict)
    log_level: str = "INFO"  # serve's default: one access-log line per request, as in production

    def env(self) -> dict[str, str]:
        return faultlib.child_env(self.db_url, self.log_level)

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        return faultlib.spawn(self.tmp, self.procs, name, args, self.env())

    def start(self) -> None:
        self.db_url, self.emulator = faultlib.start_database_and_emulator(self.tmp, self.spawn)
        wait_http(f"{self.emulator}/_bench/counts", "emulator")

    def serve(self, *, workers: int = 1, worker: bool = True, server: str = "", delivery: str = "") -> None:
        """(Re)start serve with these settings (the database and the emulator stay)."""
        self.stop_bridge()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = self.tmp / "bench.toml"
        cfg.write_text(config_text(self.emulator, server, delivery))
        args = ["-m", "alertbridge.cli", "serve", "--no-migrate", "--config", str(cfg), "--port", str(self.port)]
        args += ["--workers", str(workers)] + ([] if worker else ["--no-worker"])
        self.spawn("serve", args)
        wait_http(f"{self.base}/healthz", "serve")

    def start_worker(self, name: str = "worker") -> subprocess.Popen[bytes]:
        args = ["-m", "alertbridge.cli", "worker", "--no-migrate", "--config", str(self.tmp / "bench.toml")]
        return self.spawn(name, args + ["--metrics-port", str(free_port())])

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop; SIGKILL")
            proc.kill()
            proc.wait(10)

    def stop_bridge(self) -> None:
        for name in [n for n in self.procs if n != "emulator"]:
            self.stop(name)

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.db_url, autocommit=True)

    def reset(self) -> None:
        """Empty tables and emulator between stages (serve stopped)."""
        with self.db() as db:
            db.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
            db.execute("UPDATE delivery_targets SET state = 'up', failures = 0, paused_until = NULL")
        httpx.post(f"{self.emulator}/_bench/reset", timeout=30).raise_for_status()

    def counts(self) -> dict[str, Any]:
        return httpx.get(f"{self.emulator}/_bench/counts", timeout=60).json()

    def pids(self, name: str) -> list[int]:
        """The process and its children (serve --workers N: the supervisor and its N processes)."""
        proc = self.procs.get(name)
        if proc is None:
            return []
        try:
            p = psutil.Process(proc.pid)
            return [proc.pid] + [c.pid for c in p.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


class Profiler:
    """``py-spy record --gil`` on each pid for ``seconds`` (only with --profile); ``summary()`` gives the flame
    summary in text (bench/flame.py): where the Python time of each process went."""

    def __init__(self, b: Bench, name: str, pids: list[int], seconds: float) -> None:
        self.b, self.name = b, name
        self.procs: list[tuple[int, Path, subprocess.Popen[bytes]]] = []
        spy = Path(sys.executable).with_name("py-spy")
        if not b.profile or not spy.exists():
            return
        for pid in pids:
            out = b.tmp / f"profile-{name}-{pid}.txt"
            argv = [str(spy), "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "200", "--gil"]
            argv += ["-f", "raw", "-o", str(out)]
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append((pid, out, proc))

    def finish(self) -> None:
        from flame import summarize

        for pid, out, proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if out.exists():
                self.b.profiles[f"{self.name} (pid {pid})"] = summarize(out.read_text().splitlines(), top=30)


def wait_http(url: str, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start within {timeout}s")


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


class Load:
    """CPU accounting for a stage: ours (this script's tree) vs the whole machine -> 'other load' in cores."""

    def __init__(self) -> None:
        self.busy0, self.total0 = faultlib.cpu_jiffies()
        self.ours0 = faultlib.tree_jiffies(os.getpid()) + _pg_jiffies()
        self.t0 = time.monotonic()

    def other(self) -> float:
        busy1, total1 = faultlib.cpu_jiffies()
        ours = faultlib.tree_jiffies(os.getpid()) + _pg_jiffies() - self.ours0
        if total1 == self.total0:
            return 0.0
        return round(max(0.0, (busy1 - self.busy0 - ours) / (total1 - self.total0) * (os.cpu_count() or 1)), 2)


class CpuSplit:
    """Cores used by serve, Postgres, the emulator and everything else (wrk, this script, other load) over a stage."""

    def __init__(self, b: Bench, serve: list[int]) -> None:
        self.serve = serve
        self.emulator = b.pids("emulator")
        self.t0 = time.monotonic()
        self.jiffies0 = faultlib.cpu_jiffies()[0]
        self.s0, self.e0, self.p0 = cpu_of(serve), cpu_of(self.emulator), _pg_jiffies()
        self.seconds = 0.0

    def cores(self) -> dict[str, float]:
        self.seconds = time.monotonic() - self.t0
        hz = os.sysconf("SC_CLK_TCK")
        total = (faultlib.cpu_jiffies()[0] - self.jiffies0) / hz
        serve = cpu_of(self.serve) - self.s0
        emulator = cpu_of(self.emulator) - self.e0
        postgres = (_pg_jiffies() - self.p0) / hz
        rest = total - serve - emulator - postgres
        return {
            k: round(v / self.seconds, 2)
            for k, v in {"serve": serve, "postgres": postgres, "emulator": emulator, "rest": rest, "all": total}.items()
        }


_PG_ROOT: list[int] = []


def _pg_jiffies() -> int:
    """The embedded Postgres is started by this process but daemonizes; count its tree as ours."""
    return sum(faultlib.tree_jiffies(p) for p in _PG_ROOT)


def find_postmaster(data: Path) -> None:
    pid_file = data / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        pid_file = next(data.rglob("postmaster.pid"), pid_file)
    try:
        _PG_ROOT.append(int(pid_file.read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        pass


def quiet_machine(limit: float, wait: float) -> float:
    """Wait (up to ``wait`` s) until the other processes use less than ``limit`` cores; returns the last reading."""
    deadline = time.monotonic() + wait
    while True:
        probe = Load()
        time.sleep(3)
        load = probe.other()
        if load < limit or time.monotonic() > deadline:
            return load
        log(f"machine busy ({load:.2f} cores used by others); waiting")


def stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    v = sorted(values)

    def pct(p: float) -> float:
        return round(v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))], 1)

    return {"n": len(v), "p50": pct(50), "p99": pct(99), "max": round(v[-1], 1)}


# --- pgbench: Postgres's own ceiling ---------------------------------------------------------------------------

PGBENCH_ONE = """\\set a random(1, 1000000000000)
BEGIN;
INSERT INTO inbound_events (integration, body, body_size, status, current_status, events_count, processed_at)
  VALUES ('pgbench', '{"alerts": []}', 14, 'processed', 'processed', 1, now());
INSERT INTO aliases (integration, alias, opsgenie_alias, state, generation, count, first_seen_at, last_seen_at,
                     opened_at, last_action)
  VALUES ('pgbench', 'a' || :a, 'pgbench-a' || :a, 'open', 1, 1, now(), now(), now(), 'create')
  ON CONFLICT (integration, alias) DO UPDATE SET count = aliases.count + 1, last_seen_at = now();
INSERT INTO outbox (inbound_id, seq, integration, action, alias, opsgenie_alias, generation, payload, decision, reason,
                    status)
  VALUES (currval('inbound_events_id_seq'), 0, 'pgbench', 'create', 'a' || :a, 'pgbench-a' || :a, 1,
          '{"message": "m"}', 'send', 'new alert', 'pending');
END;
"""

PGBENCH_TEN = """\\set a random(1, 1000000000000)
BEGIN;
WITH i AS (
  INSERT INTO inbound_events (integration, body, body_size, status, current_status, events_count, processed_at)
  SELECT 'pgbench', '{"alerts": []}', 14, 'processed', 'processed', 1, now() FROM generate_series(1, 10)
  RETURNING id)
INSERT INTO outbox (inbound_id, seq, integration, action, alias, opsgenie_alias, generation, payload, decision, reason,
                    status)
  SELECT id, 0, 'pgbench', 'create', 'a' || :a || '-' || id, 'pgbench-a' || id, 1, '{"message": "m"}', 'send',
         'new alert', 'pending' FROM i;
INSERT INTO aliases (integration, alias, opsgenie_alias, state, generation, count, first_seen_at, last_seen_at,
                     opened_at, last_action)
  SELECT 'pgbench', 'a' || :a || '-' || g, 'pgbench-a', 'open', 1, 1, now(), now(), now(), 'create'
  FROM generate_series(1, 10) g
  ON CONFLICT (integration, alias) DO UPDATE SET count = aliases.count + 1, last_seen_at = now();
END;
"""


def pgbench(b: Bench, script: str, clients: int, seconds: int) -> dict[str, Any]:
    from alertbridge import embedded

    psql = embedded.psql_path()
    exe = psql.parent / "pgbench" if psql else Path(shutil.which("pgbench") or "pgbench")
    path = b.tmp / "pgbench.sql"
    path.write_text(script)
    argv = [str(exe), "-n", "-f", str(path), "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds)]
    argv.append(b.db_url)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {out.stderr[-2000:]}")
    m = re.search(r"tps = ([\d.]+)", out.stdout)
    lat = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    return {
        "pgbench": str(exe),
        "clients": clients,
        "seconds": seconds,
        "tps": float(m.group(1)) if m else None,
        "latency_ms": float(lat.group(1)) if lat else None,
    }


def stage_pgbench(b: Bench) -> dict[str, Any]:
    seconds = 5 if b.quick else 10
    load = Load()
    one = {c: pgbench(b, PGBENCH_ONE, c, seconds) for c in (4, 16)}
    ten = pgbench(b, PGBENCH_TEN, 16, seconds)
    best = max(r["tps"] or 0 for r in one.values())
    b.reset()
    return {
        "one_webhook_per_transaction": one,
        "ten_per_transaction": {**ten, "rows_per_s": (ten["tps"] or 0) * 10},
        "reference_tps": best,
        "other_load": load.other(),
    }


# --- wrk: ingest throughput ------------------------------------------------------------------------------------


def wrk(url: str, connections: int, duration: float, tag: str) -> dict[str, Any]:
    body = b_tmp_body()
    argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration:g}s", "--timeout", "30s", "-s", str(LUA)]
    argv += [url, "--", str(body), tag, TOKEN]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    data = json.loads(line[len("BENCH_JSON ") :])
    ok = sum(n for code, n in data["status"].items() if code.startswith("2"))
    return {
        "seconds": data["duration_us"] / 1e6,
        "responses": data["requests"],
        "ok": ok,
        "non_2xx": data["requests"] - ok,
        "errors": data["errors"],
        "status": data["status"],
        "latency_ms": {k: v / 1000 for k, v in data["latency_us"].items()},
    }


def b_tmp_body() -> Path:
    return BENCH / "alertmanager_webhook.json"


class Sampler:
    """Every second: webhooks stored, OpsGenie creates received, backlog (pending + in flight)."""

    def __init__(self, b: Bench) -> None:
        self.b = b
        self.rows: list[dict[str, float]] = []
        self.t0 = time.monotonic()

    def __call__(self, _elapsed: float = 0.0) -> None:
        with self.b.db() as db:
            inbound, backlog = db.execute(
                "SELECT (SELECT count(*) FROM inbound_events), "
                "(SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight'))"
            ).fetchone()  # type: ignore[misc]
        c = self.b.counts()["requests"]
        self.rows.append(
            {
                "t": round(time.monotonic() - self.t0, 2),
                "stored": inbound,
                "emulator_creates": c.get("create", 0),
                "emulator_calls": sum(c.values()),
                "backlog": backlog,
            }
        )

    def run_while(self, fn: Callable[[], Any]) -> Any:
        """Sample once a second while ``fn`` runs in this thread's stead."""
        import threading

        result: list[Any] = []
        errors: list[BaseException] = []

        def target() -> None:
            try:
                result.append(fn())
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        t = threading.Thread(target=target)
        t.start()
        next_at = time.monotonic() + 1
        while t.is_alive():
            t.join(max(0.0, next_at - time.monotonic()))
            if t.is_alive():
                self()
                next_at += 1
        if errors:
            raise errors[0]
        return result[0]


def drain(b: Bench, timeout: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with b.db() as db:
            left = db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone()[0]  # type: ignore[index]
        if left == 0:
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def stage_ingest(b: Bench, *, processes: int, connections: int = 32, label: str = "") -> dict[str, Any]:
    duration = 8 if b.quick else 20
    b.reset()
    b.serve(workers=processes)
    pids = b.pids("serve")
    wrk(f"{b.base}/webhooks/alertmanager", 8, 2, f"warm{processes}")  # connections, prepared statements
    drain(b, 60)
    load = Load()
    split = CpuSplit(b, pids)
    sampler = Sampler(b)
    sampler()
    spy = Profiler(b, f"ingest-{label or processes}", pids[1:] if processes > 1 else pids, duration - 2)
    result = sampler.run_while(lambda: wrk(f"{b.base}/webhooks/alertmanager", connections, duration, f"s{processes}"))
    sampler()
    cores = split.cores()
    spy.finish()
    cpu = cores["serve"] * split.seconds
    rss = [psutil.Process(p).memory_info().rss / 2**20 for p in pids if psutil.pid_exists(p)]
    other = load.other()
    drained = drain(b, 300)
    s = sampler.rows
    span = s[-1]["t"] - s[0]["t"] or 1
    accepted = result["ok"] / result["seconds"]
    delivered = (s[-1]["emulator_creates"] - s[0]["emulator_creates"]) / span
    stored = (s[-1]["stored"] - s[0]["stored"]) / span
    return {
        "label": label or f"{processes} process(es)",
        "processes": processes,
        "connections": connections,
        "accepted_per_s": round(accepted, 1),
        "stored_per_s": round(stored, 1),
        "delivered_per_s": round(delivered, 1),
        "delivered_share": round(delivered / stored, 3) if stored else None,
        "backlog_max": max(r["backlog"] for r in s),
        "backlog_end": s[-1]["backlog"],
        "backlog_per_s": [r["backlog"] for r in s],
        "drain_s": round(drained, 1) if drained is not None else None,
        "post_p50_ms": result["latency_ms"].get("p50"),
        "post_p99_ms": result["latency_ms"].get("p99"),
        "non_2xx": result["non_2xx"],
        "errors": result["errors"],
        "cores": cores,
        "serve_cpu_s": round(cpu, 1),
        "serve_cpu_ms_per_webhook": round(cpu * 1000 / max(1, result["ok"]), 2),
        "rss_mb": [round(r) for r in rss],
        "other_load": other,
        "samples": s,
    }


# --- delivery alone: a pre-filled outbox drained by one worker process ------------------------------------------


def stage_delivery(b: Bench, delivery: str = "") -> dict[str, Any]:
    creates = 4000 if b.quick else 20000
    closes = creates // 4
    b.reset()
    b.serve(worker=False, delivery=delivery)
    body = AM_BODY

    def am(i: int, status: str = "firing") -> bytes:
        return body.replace("__ID__", f"d{i}").replace('"status": "firing"', f'"status": "{status}"').encode()

    async def fill() -> None:
        await open_loop(f"{b.base}/webhooks/alertmanager", am, rate=2000, duration=creates / 2000, headers=HEADERS)
        # a quarter of them resolve: create -> close per alias, the close behind its create (and a status check)
        await open_loop(
            f"{b.base}/webhooks/alertmanager",
            lambda i: am(i, "resolved"),
            rate=2000,
            duration=closes / 2000,
            headers=HEADERS,
        )

    asyncio.run(fill())
    with b.db() as db:
        queued = db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]  # type: ignore[index]
    load = Load()
    worker = b.start_worker()
    t0 = time.monotonic()
    time.sleep(1.5)  # past the worker's start-up (imports), which is not what the profile is for
    spy = Profiler(b, "delivery", [worker.pid], 3 if b.quick else 10)
    drained = drain(b, 600)
    seconds = time.monotonic() - t0
    spy.finish()
    cpu = cpu_of([worker.pid])
    rss = psutil.Process(worker.pid).memory_info().rss / 2**20
    other = load.other()
    calls = sum(b.counts()["requests"].values())
    summary = httpx.get(f"{b.emulator}/_bench/summary", timeout=300).json()
    with b.db() as db:
        check = faultlib.consistency(db, summary)
    b.stop("worker")
    check.pop("examples", None)
    return {
        "rows": queued,
        "drain_s": round(seconds, 2) if drained is not None else None,
        "rows_per_s": round(queued / seconds, 1),
        "opsgenie_calls": calls,
        "calls_per_s": round(calls / seconds, 1),
        "worker_cpu_s": round(cpu, 1),
        "worker_rss_mb": round(rss),
        "consistency": check,
        "other_load": other,
    }


# --- main --------------------------------------------------------------------------------------------------------

STAGES = ("pgbench", "ingest", "delivery", "latency", "storm", "scale", "soak")


def ensure_wrk() -> None:
    """wrk (Debian's package) is the load generator: installed when missing and running as root."""
    if shutil.which("wrk") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    log("installing Debian's wrk (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], check=False, env=env, timeout=600
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter stages, smaller data (a try, not the numbers)")
    parser.add_argument("--only", default=",".join(STAGES), help=f"comma-separated stages of {', '.join(STAGES)}")
    parser.add_argument("--wait-quiet", type=float, default=0.0, help="wait up to S s for other load < 0.3 cores")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, pgdata)")
    parser.add_argument("--profile", action="store_true", help="py-spy the bridge during ingest and delivery stages")
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--scale-aliases", type=int, default=1_000_000)
    parser.add_argument("--scale-rows", type=int, default=10_000_000, help="outbox + alias_history rows")
    args = parser.parse_args()
    stages = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages: {', '.join(sorted(unknown))}")
    ensure_wrk()
    import tempfile

    from stages import STAGE_FUNCTIONS, table

    b = Bench(Path(tempfile.mkdtemp(prefix="alertbridge-run-")), quick=args.quick, profile=args.profile)
    result: dict[str, Any] = {"machine": faultlib.machine(), "args": vars(args), "stages": {}}
    if args.wait_quiet:
        result["other_load_before"] = quiet_machine(0.3, args.wait_quiet)
    try:
        b.start()
        find_postmaster(b.tmp / "data")
        for name in stages:
            log(f"stage {name}")
            t0 = time.monotonic()
            result["stages"][name] = STAGE_FUNCTIONS[name](b, args)
            result["stages"][name]["stage_s"] = round(time.monotonic() - t0, 1)
            log(f"stage {name} done in {time.monotonic() - t0:.0f}s")
    finally:
        b.stop_all()
        if not args.keep:
            shutil.rmtree(b.tmp, ignore_errors=True)
        else:
            log(f"kept {b.tmp}")
    result["profiles"] = b.profiles
    path = faultlib.write_result("run", result)
    print(table(result))
    log(f"results: {path}")
    return 0


if __name__ == "__main__":
    import run  # the stages import this module as `run`: one copy of its state (the Postgres pid, ...)

    sys.exit(run.main())
