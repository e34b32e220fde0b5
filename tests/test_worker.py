"""Delivery workers against real Postgres and the emulator: per-alias order with two workers, restarts."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

import httpx
import psycopg
import pytest

from alertbridge.db import Database
from alertbridge.main import build_bridge, build_worker
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, FAST_DELIVERY, TOKEN, make_config, run_bridge, wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _post_many(base: str, bodies: list[dict[str, object]]) -> None:
    with httpx.Client(timeout=10) as client:
        for body in bodies:
            r = client.post(f"{base}/webhooks/generic", content=json.dumps(body), headers=AUTH)
            assert r.status_code == 202, r.text


def _lifecycles(n: int) -> list[dict[str, object]]:
    """n aliases, each created, noted, acknowledged and closed, interleaved across aliases."""
    steps = []
    for action in ("create", "note", "acknowledge", "close"):
        for i in range(n):
            steps.append({"action": action, "alias": f"svc-{i}", "message": f"service {i} down", "note": "n"})
    return steps


@pytest.mark.anyio
async def test_two_workers_keep_per_alias_order(database_url: str, db: psycopg.Connection) -> None:
    n = 12
    with run_emulator(api_keys=[API_KEY], processing_delay=0.03) as emu:
        # Two sends in flight per worker, so both workers take part.
        config = make_config(emu.base_url, delivery=FAST_DELIVERY + "max_in_flight = 2\n")
        # Receive everything first (no worker), so the queue holds create/note/ack/close for every alias.
        with run_bridge(config, database_url, run_worker=False) as bridge:
            await asyncio.to_thread(_post_many, bridge.base_url, _lifecycles(n))
        # Shake things up: some sends fail and are retried (the retry must not overtake the alias's next step).
        httpx.post(f"{emu.base_url}/_control/faults", json={"status": 500, "count": 5}).raise_for_status()

        bridge_rt = build_bridge(config)
        dbs = [Database(database_url, size=4), Database(database_url, size=4)]
        for d in dbs:
            await d.open()
        workers = [build_worker(bridge_rt, d, name=f"w{i}") for i, d in enumerate(dbs)]
        tasks = [asyncio.create_task(w.run_forever()) for w in workers]
        try:
            for _ in range(300):
                (left,) = db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone()  # type: ignore[misc]
                if left == 0:
                    break
                await asyncio.sleep(0.1)
        finally:
            for w in workers:
                w.stop()
            await asyncio.gather(*tasks)
            for w in workers:
                await w.client.aclose()
            for d in dbs:
                await d.close()
        emu.wait_idle()

        statuses = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
        assert statuses == {"delivered": 4 * n}
        by_worker = dict(
            db.execute("SELECT worker, count(*) FROM delivery_attempts WHERE kind = 'send' GROUP BY worker").fetchall()
        )
        assert set(by_worker) == {"w0", "w1"}, "both workers should have delivered something"

        order: dict[str, list[str]] = defaultdict(list)
        for req in emu.state.requests:
            if req["method"] != "POST" or req["status"] != 202:
                continue
            path = req["path"]
            alias = "generic:svc-" + path.split("svc-")[1].split("/")[0] if "svc-" in path else req["json"]["alias"]
            order[alias].append("create" if path == "/v2/alerts" else path.rsplit("/", 1)[1])
        assert len(order) == n
        for alias, steps in order.items():
            assert steps == ["create", "notes", "acknowledge", "close"], (alias, steps)
        # OpsGenie processed every action successfully: nothing arrived before its alert existed.
        failures = [s for s in emu.state.statuses.values() if s is not None and not s["isSuccess"]]
        assert failures == []
        assert {a["status"] for a in emu.state.alerts.values()} == {"closed"}


def test_pending_rows_are_delivered_after_a_restart(database_url: str, db: psycopg.Connection) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        config = make_config(emu.base_url)
        with run_bridge(config, database_url, run_worker=False) as bridge:
            _post_many(bridge.base_url, _lifecycles(3)[:3])
        assert db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone() == (3,)
        assert emu.state.requests == []
        with run_bridge(config, database_url, run_worker=True):
            wait_for(
                lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (3,),
                what="delivery after restart",
            )
        emu.wait_idle()
        assert len(emu.state.alerts) == 3


def test_graceful_shutdown_releases_in_flight_rows(database_url: str, db: psycopg.Connection) -> None:
    """A send that hangs past the shutdown grace is given back to the queue, not lost."""
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        httpx.post(f"{emu.base_url}/_control/faults", json={"hang": 4, "count": 1}).raise_for_status()
        delivery = """
[delivery]
timeout_seconds = 10.0
poll_interval_seconds = 0.1
shutdown_grace_seconds = 0.5
"""
        config = make_config(emu.base_url, delivery=delivery)
        with run_bridge(config, database_url) as bridge:
            _post_many(bridge.base_url, [{"action": "create", "alias": "slow", "message": "m"}])
            wait_for(lambda: db.execute("SELECT status FROM outbox").fetchone() == ("in_flight",), what="claim")
        assert db.execute("SELECT status, attempts, lease_until FROM outbox").fetchone() == ("pending", 0, None)


def test_notify_wakes_the_worker_long_before_the_poll(database_url: str, db: psycopg.Connection) -> None:
    """With a 60 s poll interval, only LISTEN/NOTIFY can make the delivery this fast."""
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        config = make_config(emu.base_url, delivery="[delivery]\npoll_interval_seconds = 60.0\n")
        with run_bridge(config, database_url) as bridge:
            import time

            time.sleep(0.5)  # the worker has polled once and now waits on LISTEN
            started = time.monotonic()
            _post_many(bridge.base_url, [{"action": "create", "alias": "fast", "message": "m"}])
            wait_for(
                lambda: db.execute("SELECT status FROM outbox").fetchone() == ("delivered",),
                timeout=10,
                what="delivery",
            )
            assert time.monotonic() - started < 5
