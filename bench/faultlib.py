"""Shared plumbing of the delivery fault benchmarks (bench/fault_*.py; see bench/README.md).

A ``Stack`` starts, in a fresh temporary directory on 127.0.0.1: an embedded PostgreSQL (owned by the bench
process, migrated), the OpsGenie emulator (bench/fast_emulator.py) in its own process, ``alertbridge serve`` and,
optionally, ``alertbridge worker`` processes — and stops all of them (SIGTERM, then SIGKILL) however the run ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from alertbridge.http1 import Http1Client

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
TOKEN = "bench-token-0123456789"
API_KEY = "bench-genie-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def config_text(emulator: str, delivery: str = "", server: str = "", target: str = "") -> str:
    return f"""
[server]
{server}
[delivery]
{delivery}
[[integrations]]
name = "generic"
template = "generic"
tokens = ["{TOKEN}"]
[integrations.target]
base_url = "{emulator}"
api_key = "{API_KEY}"
{target}
"""


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def proc_jiffies(pid: int) -> int:
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12]) + int(parts[13]) + int(parts[14])
    except (OSError, IndexError, ValueError):
        return 0


def tree_jiffies(root: int) -> int:
    """CPU of ``root`` and all its live descendants (and their reaped children)."""
    total = 0
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    stack = [root]
    while stack:
        pid = stack.pop()
        total += proc_jiffies(pid)
        stack += children.get(pid, [])
    return total


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "app"], cwd=ROOT, capture_output=True, text=True)
    import alertbridge

    return {
        "commit": commit.stdout.strip(),
        "app_dirty": bool(dirty.stdout.strip()),
        "package": str(Path(alertbridge.__file__).parent),  # the code under test (PYTHONPATH may point elsewhere)
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def child_env(db_url: str, log_level: str = "WARNING") -> dict[str, str]:
    """The environment of a process a benchmark starts: ours without any alertbridge setting but the database's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBRIDGE_") and k != "DATABASE_URL"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["ALERTBRIDGE_DATABASE_URL"] = db_url
    env["ALERTBRIDGE_LOG_LEVEL"] = log_level
    return env


def spawn(
    tmp: Path, procs: dict[str, subprocess.Popen[bytes]], name: str, args: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """``python args...`` in ``tmp``, its output in ``<tmp>/<name>.log``, kept in ``procs`` (to stop it later)."""
    out = open(tmp / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    procs[name] = proc
    return proc


def start_database_and_emulator(
    tmp: Path, spawn_: Callable[[str, list[str]], subprocess.Popen[bytes]]
) -> tuple[str, str]:
    """An embedded PostgreSQL in ``<tmp>/data`` (migrated) and the fast emulator: (database URL, emulator URL)."""
    from alertbridge import embedded
    from alertbridge.db import migrate

    log(f"temp dir {tmp}")
    db_url = embedded.start(tmp / "data", "alertbridge", cleanup="delete")
    migrate(db_url)
    eport = free_port()
    spawn_("emulator", [str(BENCH / "fast_emulator.py"), "--port", str(eport), "--api-key", API_KEY])
    return db_url, f"http://127.0.0.1:{eport}"


@dataclass
class Stack:
    delivery: str = ""
    server: str = ""
    target: str = ""  # more [integrations.target] keys (pacing)
    worker_in_serve: bool = True
    keep: bool = False
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="alertbridge-fault-")))
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    db_url: str = ""
    emulator: str = ""
    base: str = ""
    started_cpu: tuple[int, int] = (0, 0)
    ours_at_start: int = 0

    def env(self) -> dict[str, str]:
        return child_env(self.db_url)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        return spawn(self.tmp, self.procs, name, args, self.env())

    def start(self) -> None:
        self.db_url, self.emulator = start_database_and_emulator(self.tmp, self._spawn)
        sport = free_port()
        self.base = f"http://127.0.0.1:{sport}"
        (self.tmp / "bench.toml").write_text(config_text(self.emulator, self.delivery, self.server, self.target))
        args = ["-m", "alertbridge.cli", "serve", "--no-migrate", "--config", str(self.tmp / "bench.toml")]
        args += ["--port", str(sport)] + ([] if self.worker_in_serve else ["--no-worker"])
        self._spawn("serve", args)
        self._wait(f"{self.emulator}/_control", "emulator")
        self._wait(f"{self.base}/healthz", "serve")
        self.started_cpu = cpu_jiffies()
        self.ours_at_start = tree_jiffies(os.getpid())

    def _wait(self, url: str, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{what} did not start; see {self.tmp}")

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        return self._spawn(
            name, ["-m", "alertbridge.cli", "worker", "--no-migrate", "--config", str(self.tmp / "bench.toml")]
        )

    def other_load(self) -> float:
        """Cores used by processes outside this bench since start()."""
        busy0, total0 = self.started_cpu
        busy1, total1 = cpu_jiffies()
        ours = tree_jiffies(os.getpid()) - self.ours_at_start
        cores = os.cpu_count() or 1
        if total1 == total0:
            return 0.0
        return max(0.0, (busy1 - busy0 - ours) / (total1 - total0) * cores)

    def fault(self, **body: Any) -> None:
        httpx.post(f"{self.emulator}/_control/faults", json=body, timeout=10).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.emulator}/_control/faults", timeout=10).raise_for_status()

    def summary(self) -> dict[str, Any]:
        for _ in range(200):
            s = httpx.get(f"{self.emulator}/_bench/summary", timeout=120).json()
            if s["idle"]:
                return s
            time.sleep(0.1)
        return s

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.db_url, autocommit=True)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop; SIGKILL")
                proc.kill()
                proc.wait(10)


def queue_left(db: psycopg.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone()[0])  # type: ignore[index]


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> float | None:
    """Seconds until ``check()`` held, or None after ``timeout``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return time.monotonic() - t0
        time.sleep(interval)
    return None


# --- load --------------------------------------------------------------------------------------------------


@dataclass
class LoadStats:
    sent: int = 0
    accepted: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def count(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def incidents(
    base: str,
    *,
    rate: float,
    duration: float,
    pool: int,
    close_after: tuple[float, float],
    resolve_share: float = 1.0,
    concurrency: int = 128,
    seed: int = 1,
) -> LoadStats:
    """Alerts arriving at ``rate`` per second for ``duration`` s, each on an alias from a pool of ``pool``; a share
    of them resolve ``close_after`` seconds later (the close is sent after the create was answered, as a source
    would). An alias is reused only once its previous incident ended, so aliases go through generations."""
    rng = random.Random(seed)
    stats = LoadStats()
    free = list(range(pool))
    rng.shuffle(free)
    busy: set[int] = set()
    slots = asyncio.Semaphore(concurrency)
    # The lean client (alertbridge.http1, as bench/openloop.py): httpx itself costs ~1 ms of CPU per request and
    # slows down as requests in flight rise, which made the generator the limit of these runs.
    client = Http1Client(limit=concurrency, max_body=65536, connect_timeout=10.0)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    url = f"{base}/webhooks/generic"
    try:

        async def send(body: dict[str, Any]) -> bool:
            async with slots:
                stats.sent += 1
                t0 = time.monotonic()
                try:
                    r = await asyncio.wait_for(client.request("POST", url, headers, json.dumps(body).encode()), 60)
                except (httpx.HTTPError, OSError, TimeoutError) as exc:
                    stats.count(type(exc).__name__)
                    return False
                stats.latencies.append(time.monotonic() - t0)
                key = str(r.status) if r.status != 503 else f"503 {json.loads(r.body).get('error')}"
                stats.count(key)
                if r.status == 202:
                    stats.accepted += 1
                return r.status == 202

        async def incident(k: int, n: int) -> None:
            alias = f"svc-{k}"
            try:
                ok = await send({"action": "create", "alias": alias, "message": f"incident {n} on {alias}"})
                if ok and rng.random() < resolve_share:
                    await asyncio.sleep(rng.uniform(*close_after))
                    await send({"action": "close", "alias": alias})
            finally:
                busy.discard(k)
                free.append(k)

        tasks: set[asyncio.Task[None]] = set()
        t0 = time.monotonic()
        n = 0
        while (elapsed := time.monotonic() - t0) < duration:
            due = int(elapsed * rate) + 1
            while n < due and free:
                k = free.pop(0)
                busy.add(k)
                task = asyncio.create_task(incident(k, n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            await asyncio.sleep(0.005)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        client.close()
    return stats


# --- checks ------------------------------------------------------------------------------------------------


def collapse(seq: list[str]) -> list[str]:
    out: list[str] = []
    for x in seq:
        if not out or out[-1] != x:
            out.append(x)
    return out


_OG_ACTION = {"Create": "create", "Acknowledge": "acknowledge", "Close": "close", "AddNote": "note"}


def consistency(db: psycopg.Connection, summary: dict[str, Any]) -> dict[str, Any]:
    """OpsGenie (the emulator) against Postgres: lost rows, duplicate alerts, per-alias order, end state."""
    rows = db.execute(
        "SELECT opsgenie_alias, action, status FROM outbox WHERE decision = 'send' ORDER BY id"
    ).fetchall()
    delivered: dict[str, list[str]] = {}
    not_delivered: dict[str, int] = {}
    for alias, action, status in rows:
        if status == "delivered":
            delivered.setdefault(alias, []).append(action)
        else:
            not_delivered[status] = not_delivered.get(status, 0) + 1
    pg = {a: (s, g) for a, s, g in db.execute("SELECT opsgenie_alias, state, generation FROM aliases").fetchall()}
    # A failed action right after the same successful one is a re-send after a crash (at-least-once delivery:
    # OpsGenie had applied it; e.g. a second close finds no open alert). Anything else is an ordering failure.
    repeats, failed, failed_examples = 0, 0, []
    for alias, acts in summary["actions"].items():
        last_ok = None
        for action, ok, status in acts:
            if ok:
                last_ok = action
            elif action == last_ok:
                repeats += 1
            else:
                failed += 1
                failed_examples.append([alias, action, status])
    order_wrong = []
    for alias, acts in delivered.items():
        og = [_OG_ACTION.get(a, a) for a, ok, _ in summary["actions"].get(alias, []) if ok]
        if collapse(og) != collapse(acts):
            order_wrong.append(alias)
    duplicates = sum(
        max(0, len(summary["alerts"].get(alias, [])) - generation) for alias, (_, generation) in pg.items()
    )
    end_mismatch = []
    for alias, (state, _) in pg.items():
        alerts = summary["alerts"].get(alias, [])
        og_state = "closed"
        if alerts:
            st, _, acked = alerts[-1]
            og_state = "closed" if st == "closed" else ("acknowledged" if acked else "open")
        if og_state != state:
            end_mismatch.append(alias)
    return {
        "rows_to_send": len(rows),
        "not_delivered": not_delivered,
        "opsgenie_failed_actions": failed,
        "opsgenie_repeats_after_crash": repeats,
        "duplicate_alerts": duplicates,
        "order_violations": len(order_wrong),
        "end_state_mismatches": len(end_mismatch),
        "aliases": len(pg),
        "examples": {"order": order_wrong[:5], "end_state": end_mismatch[:5], "failed": failed_examples[:5]},
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path
