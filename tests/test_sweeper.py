"""The sweeper with several replicas and the bridge's own heartbeat: each job runs in one process at a time, the
heartbeat is pinged at most once per interval across replicas, and only while this process is healthy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from alertbridge import metrics
from alertbridge.config import parse_config
from alertbridge.db import Database
from alertbridge.main import build_bridge, build_worker
from alertbridge.registry import Registry
from alertbridge.sweeper import Sweeper
from tests.emulator_server import RunningEmulator, run_emulator
from tests.harness import API_KEY, FIXTURES, config_text

pytestmark = pytest.mark.anyio


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        yield emu


def config(base_url: str, interval: float = 60.0):  # type: ignore[no-untyped-def]
    heartbeat = f'[heartbeat]\nname = "alertbridge-prod"\ninterval_seconds = {interval}\nbase_url = "{base_url}"\napi_key = "{API_KEY}"\n'
    return parse_config(config_text(base_url, server=heartbeat), {}, source="t.toml", base_dir=FIXTURES)


async def replicas(database: Database, emu: RunningEmulator, n: int, interval: float = 60.0) -> list[Sweeper]:
    cfg = config(emu.base_url, interval)
    bridge = build_bridge(cfg)
    out = []
    for i in range(n):
        registry = Registry(cfg, initial=bridge.snapshot)
        worker = build_worker(bridge, database, name=f"replica-{i}")
        metrics.worker_heartbeat(worker.name)  # its loop turned just now: healthy
        out.append(Sweeper(database, registry, cfg, worker=worker))
    return out


async def test_replicas_ping_the_heartbeat_once_per_interval(
    database: Database, emulator: RunningEmulator, db: psycopg.Connection
) -> None:
    sweepers = await replicas(database, emulator, 3)
    results = await asyncio.gather(*(s.run_once() for s in sweepers))
    await asyncio.gather(*(s.run_once() for s in sweepers))  # again at once: within the interval, no new ping
    emulator.wait_idle()
    assert emulator.state.heartbeats.to_dict()["alertbridge-prod"]["pings"] == 1
    ping = next(r for r in emulator.state.requests if "heartbeats" in r["path"])
    assert (ping["method"], ping["path"], ping["status"]) == ("GET", "/v2/heartbeats/alertbridge-prod/ping", 202)
    assert ping["headers"]["authorization"] == "GenieKey ***"
    # Each job ran somewhere; a job another replica held is None in that replica's answer.
    pinged = [r["heartbeat"] for r in results if r["heartbeat"] and r["heartbeat"].get("pinged")]
    assert len(pinged) == 1 and pinged[0]["answer"] == "HTTP 202"
    (state,) = db.execute("SELECT state FROM sweeper_jobs WHERE job = 'heartbeat'").fetchone()  # type: ignore[misc]
    assert "last_ping_at" in state
    for s in sweepers:
        await s.aclose()


async def test_no_ping_while_the_worker_is_stuck_or_absent(
    database: Database, emulator: RunningEmulator, db: psycopg.Connection
) -> None:
    (sweeper,) = await replicas(database, emulator, 1, interval=0.01)
    metrics.forget_worker(sweeper.worker.name)  # its loop never turned: not healthy
    result = await sweeper.run_once()
    assert result["heartbeat"] == {"pinged": False, "why": "the delivery worker has not started"}
    metrics.worker_heartbeat(sweeper.worker.name)
    sweeper.stuck_after = 0.0  # any time since the loop last turned is too long
    result = await sweeper.run_once()
    assert result["heartbeat"]["pinged"] is False and "stuck" in result["heartbeat"]["why"]
    sweeper.worker = None  # a process without a worker (serve --no-worker) never pings
    assert "heartbeat" not in await sweeper.run_once()
    emulator.wait_idle()
    assert emulator.state.heartbeats.to_dict() == {}
    await sweeper.aclose()


async def test_a_job_held_by_another_process_is_skipped(database: Database, emulator: RunningEmulator) -> None:
    from alertbridge.sweeper import LOCKS

    (sweeper,) = await replicas(database, emulator, 1)
    async with database.connection() as other:
        await other.execute("SELECT pg_advisory_lock(%(k)s)", {"k": LOCKS["expire"]})
        result = await sweeper.run_once()
        await other.execute("SELECT pg_advisory_unlock(%(k)s)", {"k": LOCKS["expire"]})
    assert result["expire"] is None and result["release"] == {}
    assert (await sweeper.run_once())["expire"] == {}
    await sweeper.aclose()
