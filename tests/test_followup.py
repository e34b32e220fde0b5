"""What OpsGenie finally did with each request: the worker asks the request-status API about delivered requests no
callback confirmed, and stores the answer (also for acks, closes and notes); every question is an attempt row."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import psycopg
import pytest

from alertbridge.db import Database
from alertbridge.followup import FollowOptions
from alertbridge.main import build_bridge, build_worker
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, TOKEN, make_config, run_bridge

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def until(db: psycopg.Connection, sql: str, expected: object, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.1)):
        if db.execute(sql).fetchone() == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{sql} never gave {expected}: {db.execute(sql).fetchone()}")


async def post(base_url: str, body: dict[str, object]) -> None:
    r = await asyncio.to_thread(httpx.post, f"{base_url}/webhooks/generic", json=body, headers=AUTH)
    assert r.status_code == 202, r.text


@pytest.mark.anyio
async def test_outcomes_of_acks_closes_and_notes_are_stored(database_url: str, db: psycopg.Connection) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.01) as emu:
        config = make_config(emu.base_url)
        with run_bridge(config, database_url, run_worker=False) as bridge:
            async with Database(database_url, size=4) as pool:
                # No callbacks here: only the request-status API can tell what OpsGenie did.
                worker = build_worker(build_bridge(config), pool, name="w")
                follow = FollowOptions(interval=0.2, after=0.5, within=60, batch=10)
                worker.options = dataclasses.replace(worker.options, follow=follow)
                task = asyncio.create_task(worker.run_forever())
                try:
                    await post(bridge.base_url, {"action": "create", "alias": "a", "message": "m"})
                    await post(bridge.base_url, {"action": "note", "alias": "a", "note": "looking"})
                    await post(bridge.base_url, {"action": "acknowledge", "alias": "a"})
                    await post(bridge.base_url, {"action": "create", "alias": "b", "message": "m"})
                    await until(db, "SELECT count(*) FROM outbox WHERE status = 'delivered'", (4,))
                    # A person closes b in OpsGenie (the bridge does not hear of it); then the source closes a and b:
                    # OpsGenie applies a's close and fails b's.
                    emu.call(lambda: emu.state.find_alert("generic:b", "alias").__setitem__("status", "closed"))
                    events = [{"action": "close", "alias": "a"}, {"action": "close", "alias": "b"}]
                    await post(bridge.base_url, {"events": events})
                    await until(
                        db,
                        "SELECT count(*) FROM outbox WHERE status = 'delivered' AND opsgenie_success IS NOT NULL",
                        (6,),
                    )
                finally:
                    worker.stop()
                    await task
                    await worker.client.aclose()
    rows = db.execute("SELECT alias, action, opsgenie_success, opsgenie_status FROM outbox ORDER BY id").fetchall()
    assert rows == [
        ("a", "create", True, "Created alert"),
        ("a", "note", True, "Added note"),
        ("a", "acknowledge", True, "Acknowledged alert"),
        ("b", "create", True, "Created alert"),
        ("a", "close", True, "Closed alert"),
        ("b", "close", False, "Alert does not exist"),
    ]
    checks = db.execute(
        "SELECT count(*) FROM delivery_attempts WHERE kind = 'status_check' AND outcome = 'confirmed'"
    ).fetchone()
    assert checks is not None and checks[0] >= 6
