"""The runtime registry follows Postgres: a NOTIFY (or, without LISTEN, the poll of the change counter) swaps in
a new snapshot; every webhook names the exact template version that rendered it."""

from __future__ import annotations

import asyncio
import json

import httpx
import psycopg
import pytest

from alertbridge.admin import templates
from alertbridge.admin.actor import Actor
from alertbridge.db import Database
from alertbridge.main import build_bridge, sync_integrations
from alertbridge.registry import Registry
from tests.harness import TOKEN, make_config, run_bridge, wait_for

ALICE = Actor("user", "alice", "admin")
LOUD = '{"action": "create", "alias": "{{ payload.alias }}", "message": "LOUD {{ payload.message }}"}'


async def _follow_until_swapped(database: Database, listen: bool, poll: float) -> None:
    config = make_config("http://127.0.0.1:9")
    bridge = build_bridge(config)
    await sync_integrations(database, bridge)
    registry = Registry(config, poll_interval=poll)
    await registry.reload(database, force=True)
    before = registry.current
    assert before.routes["generic"].version_id is not None
    task = asyncio.create_task(registry.follow(database, database.url if listen else None))
    try:
        await asyncio.sleep(0.3)  # the LISTEN is up
        version = await templates.save(database, ALICE, "generic", LOUD, "loud")
        for _ in range(100):
            if registry.current is not before:
                break
            await asyncio.sleep(0.05)
        route = registry.current.routes["generic"]
        assert route.version_id == version["id"] and route.template.source == LOUD
        # Other integrations keep their (cached) compiled template.
        assert registry.current.routes["alertmanager"].template is before.routes["alertmanager"].template
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.anyio
async def test_notify_swaps_the_snapshot_without_waiting_for_the_poll(database: Database) -> None:
    await _follow_until_swapped(database, listen=True, poll=3600.0)  # only the NOTIFY can do it in 5 s


@pytest.mark.anyio
async def test_the_poll_of_the_change_counter_is_the_fallback(database: Database) -> None:
    await _follow_until_swapped(database, listen=False, poll=0.2)


def test_every_webhook_names_its_version_and_a_saved_version_is_used_without_restart(
    database_url: str, db: psycopg.Connection
) -> None:
    with run_bridge(make_config("http://127.0.0.1:9"), database_url, run_worker=False) as bridge:

        def send(alias: str) -> int:
            r = httpx.post(
                f"{bridge.base_url}/webhooks/generic",
                content=json.dumps({"action": "create", "alias": alias, "message": "hi"}),
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            assert r.status_code == 202, r.text
            return int(r.json()["id"])

        first = send("a")
        (active_v1,) = db.execute("SELECT active_version_id FROM integrations WHERE name = 'generic'").fetchone()  # type: ignore[misc]
        assert db.execute("SELECT template_version_id FROM inbound_events WHERE id = %s", (first,)).fetchone() == (
            active_v1,
        )

        async def save() -> int:
            async with Database(database_url, size=1) as other:  # as another process would
                return int((await templates.save(other, ALICE, "generic", LOUD, "loud"))["id"])

        v2 = asyncio.run(save())
        attempts = iter(range(100))

        def uses_v2() -> bool:
            inbound = send(f"b{next(attempts)}")
            row = db.execute(
                "SELECT i.template_version_id, o.payload->>'message' FROM inbound_events i "
                "JOIN outbox o ON o.inbound_id = i.id WHERE i.id = %s",
                (inbound,),
            ).fetchone()
            return row == (v2, "LOUD hi")

        wait_for(uses_v2, timeout=2.0, interval=0.1, what="the saved version in use")
