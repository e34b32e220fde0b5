"""§3: every HTTP call is recorded before it is made; a database blip while recording costs a retry, not a lease;
a shutdown never throws away an answer that is being recorded."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from alertbridge.db import Database
from alertbridge.main import build_bridge, build_worker
from tests.delivery_helpers import fault, post, queue_left, worker_process
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, FAST_DELIVERY, config_text, make_config, run_bridge, wait_for


def test_kill_9_during_a_send_leaves_the_attempt_row(tmp_path: Path, database_url: str, db: psycopg.Connection) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        cfg = tmp_path / "alertbridge.toml"
        cfg.write_text(
            config_text(emu.base_url, delivery=FAST_DELIVERY.replace("lease_seconds = 5.0", "lease_seconds = 2.0"))
        )
        with run_bridge(make_config(emu.base_url), database_url, run_worker=False) as bridge:
            post(bridge.base_url, {"action": "create", "alias": "k9", "message": "m"})
        fault(emu, hang=3, count=1)  # OpsGenie takes the request and answers late
        with worker_process(cfg, database_url, tmp_path / "w.log") as proc:
            wait_for(lambda: len(emu.state.requests) == 1, timeout=60, what="the send to reach OpsGenie")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        attempts = db.execute("SELECT kind, outcome, http_status, finished_at FROM delivery_attempts").fetchall()
        assert attempts == [("send", "started", None, None)]  # the call OpsGenie got is in the audit
        # Another worker takes the row back after its lease; the dead worker's call is marked, not forgotten.
        with run_bridge(make_config(emu.base_url, delivery=FAST_DELIVERY), database_url):
            wait_for(lambda: queue_left(db) == 0, timeout=30, what="redelivery after the lease")
        outcomes = [o for (o,) in db.execute("SELECT outcome FROM delivery_attempts ORDER BY id")]
        assert outcomes == ["abandoned", "delivered"]
        assert db.execute("SELECT count(*) FROM delivery_attempts WHERE finished_at IS NULL").fetchone() == (0,)


def _worker_backend_waiting_on_a_lock(db: psycopg.Connection) -> int | None:
    row = db.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'alertbridge-worker' AND wait_event_type = 'Lock'"
    ).fetchone()
    return row[0] if row else None


def test_a_database_blip_while_recording_is_retried_not_left_to_the_lease(
    database_url: str, db: psycopg.Connection
) -> None:
    delivery = FAST_DELIVERY.replace("lease_seconds = 5.0", "lease_seconds = 60.0")
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        with run_bridge(make_config(emu.base_url, delivery=delivery), database_url) as bridge:
            fault(emu, hang=0.5, count=1)
            post(bridge.base_url, {"action": "create", "alias": "blip", "message": "m"})
            wait_for(lambda: len(emu.state.requests) == 1, what="the send")
            with psycopg.connect(database_url, autocommit=True) as holder:
                with holder.transaction():
                    holder.execute("SELECT 1 FROM outbox WHERE alias = 'blip' FOR UPDATE")  # recording will wait
                    pid = wait_for(lambda: _worker_backend_waiting_on_a_lock(db), what="the recording transaction")
                    # The database drops the worker's connection in the middle of recording the 202.
                    assert db.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
                    time.sleep(0.3)
            wait_for(
                lambda: db.execute("SELECT status FROM outbox").fetchone() == ("delivered",),
                timeout=10,
                what="the outcome to be recorded well before the 60 s lease",
            )
        assert [r["status"] for r in emu.state.requests] == [202]  # sent once
        assert db.execute("SELECT kind, outcome, attempt FROM delivery_attempts").fetchall() == [
            ("send", "delivered", 1)
        ]


def test_database_connections_dropped_under_load_cost_no_lease(database_url: str, db: psycopg.Connection) -> None:
    """40 alerts are sent while the database is slow to record them (their alias rows are locked) and every worker
    connection is terminated over and over: every alert arrives exactly once, and nothing waits for the 60 s lease."""
    delivery = FAST_DELIVERY.replace("lease_seconds = 5.0", "lease_seconds = 60.0")
    killed = 0
    with run_emulator(api_keys=[API_KEY], processing_delay=0.01) as emu:
        config = make_config(emu.base_url, delivery=delivery)
        with run_bridge(config, database_url, run_worker=False) as bridge:
            with httpx.Client() as client:
                for i in range(40):
                    post(bridge.base_url, {"action": "create", "alias": f"d{i}", "message": "m"}, client=client)
        with psycopg.connect(database_url, autocommit=True) as holder, run_bridge(config, database_url):
            with holder.transaction():
                holder.execute("SELECT 1 FROM aliases FOR UPDATE")  # recordings wait, in the middle of a statement
                wait_for(lambda: _worker_backend_waiting_on_a_lock(db), what="recordings under way")
                deadline = time.monotonic() + 1.5
                while time.monotonic() < deadline:  # the database drops every worker connection, again and again
                    killed += len(
                        db.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = 'alertbridge-worker'"
                        ).fetchall()
                    )
                    time.sleep(0.05)
            wait_for(lambda: queue_left(db) == 0, timeout=20, what="delivery without lease waits")
        assert killed > 0
        emu.wait_idle()
        creates = [r["json"]["alias"] for r in emu.state.requests if r["path"] == "/v2/alerts"]
        assert sorted(creates) == sorted(f"generic:d{i}" for i in range(40))  # each exactly once
        assert db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (40,)
        assert db.execute("SELECT count(*) FROM delivery_attempts WHERE outcome = 'started'").fetchone() == (0,)


@pytest.mark.anyio
async def test_shutdown_does_not_cancel_recording_a_2xx(database_url: str, db: psycopg.Connection) -> None:
    """SIGTERM while a note's 202 is being recorded (the database is slow): the shutdown waits for the recording
    instead of cancelling it, so the note is not sent again by the next worker."""
    delivery = FAST_DELIVERY.replace("shutdown_grace_seconds = 3.0", "shutdown_grace_seconds = 0.3")
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        config = make_config(emu.base_url, delivery=delivery)
        bridge_rt = build_bridge(config)

        async def run_worker(name: str) -> tuple[object, asyncio.Task[None], Database]:
            wdb = Database(database_url, size=4, name="alertbridge-worker")
            await wdb.open()
            worker = build_worker(bridge_rt, wdb, name=name)
            return worker, asyncio.create_task(worker.run_forever()), wdb

        async def stop(worker: object, task: asyncio.Task[None], wdb: Database) -> None:
            worker.stop()  # type: ignore[attr-defined]
            await asyncio.wait_for(task, 30)
            await worker.client.aclose()  # type: ignore[attr-defined]
            await wdb.close()

        with run_bridge(config, database_url, run_worker=False) as bridge:
            await asyncio.to_thread(post, bridge.base_url, {"action": "create", "alias": "n", "message": "m"})
            worker, task, wdb = await run_worker("w1")
            for _ in range(200):
                if db.execute("SELECT status FROM outbox").fetchone() == ("delivered",):
                    break
                await asyncio.sleep(0.05)
            fault(emu, hang=0.5, count=1)
            await asyncio.to_thread(post, bridge.base_url, {"action": "note", "alias": "n", "note": "once"})
            for _ in range(200):
                if any(r["path"].endswith("/notes") for r in emu.state.requests):
                    break
                await asyncio.sleep(0.02)
            with psycopg.connect(database_url, autocommit=True) as holder:
                with holder.transaction():
                    holder.execute("SELECT 1 FROM outbox WHERE action = 'note' FOR UPDATE")
                    for _ in range(200):  # the 202 came back and the worker is recording it
                        if _worker_backend_waiting_on_a_lock(db):
                            break
                        await asyncio.sleep(0.02)
                    assert _worker_backend_waiting_on_a_lock(db)
                    worker.stop()
                    await asyncio.sleep(1.0)  # well past the shutdown grace
                await stop(worker, task, wdb)
            assert db.execute("SELECT status FROM outbox WHERE action = 'note'").fetchone() == ("delivered",)
            worker, task, wdb = await run_worker("w2")  # the next worker finds nothing to send again
            await asyncio.sleep(1.0)
            await stop(worker, task, wdb)
        emu.wait_idle()
        notes = [r for r in emu.state.requests if r["path"].endswith("/notes")]
        assert len(notes) == 1
        (alert,) = emu.state.alerts.values()
        assert [n["note"] for n in alert["notes"]] == ["once"]
