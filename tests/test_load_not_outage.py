"""§4: load never looks like an outage. Webhooks queue for capacity within a bounded budget; 503
``database_unavailable`` only when the database really fails (saying what failed); beyond the budget the answer
is an honest 503 ``busy``. The ingest gate gives delivery its share of the process (AIMD on the worker's lag)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import psycopg
import pytest

from alertbridge.admission import IngestGate, Overloaded, next_limit
from tests.delivery_helpers import AUTH
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, make_config, run_bridge


def _hold_alias_lock(database_url: str, alias: str, seconds: float, held: threading.Event) -> None:
    """Keep the alias's advisory lock (what ingest takes) for ``seconds``: its webhooks hold their connections."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"generic\x1f{alias}",))
        held.set()
        time.sleep(seconds)
        conn.execute("SELECT pg_advisory_unlock_all()")


def _concurrent_posts(url: str, bodies: list[dict]) -> list[httpx.Response]:
    out: list[httpx.Response] = []

    def one(body: dict) -> None:
        with httpx.Client(timeout=60) as client:
            out.append(client.post(url, content=json.dumps(body).encode(), headers=AUTH))

    threads = [threading.Thread(target=one, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join(90)
    return out


def _load(database_url: str, server: str, hold: float) -> list[httpx.Response]:
    """12 webhooks for one alias whose lock is held for ``hold`` seconds (so the web pool of 10 runs dry), plus 6
    for other aliases behind them."""
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        with run_bridge(make_config(emu.base_url, server=server), database_url, run_worker=False) as bridge:
            held = threading.Event()
            locker = threading.Thread(target=_hold_alias_lock, args=(database_url, "hot", hold, held))
            locker.start()
            assert held.wait(10)
            bodies = [{"action": "create", "alias": "hot", "message": "m"}] * 12
            bodies += [{"action": "create", "alias": f"cold{i}", "message": "m"} for i in range(6)]
            responses = _concurrent_posts(f"{bridge.base_url}/webhooks/generic", bodies)
            locker.join(30)
            assert httpx.get(f"{bridge.base_url}/readyz").status_code == 200
    return responses


def test_a_burst_that_exhausts_the_pool_waits_instead_of_failing(database_url: str, db: psycopg.Connection) -> None:
    """With the pool's old 5 s wait, the webhooks behind the 10 busy connections were told "database unavailable"
    after 5 s although Postgres was fine. They wait their turn now (budget 10 s)."""
    responses = _load(database_url, "", hold=6.5)
    assert sorted(r.status_code for r in responses) == [202] * 18, [r.text for r in responses if r.status_code != 202]
    assert db.execute("SELECT count(*) FROM inbound_events").fetchone() == (18,)


def test_past_the_budget_the_answer_is_busy_not_database_unavailable(database_url: str, db: psycopg.Connection) -> None:
    responses = _load(database_url, "[server]\ningest_wait_seconds = 1.0\n", hold=4.0)
    refused = [r for r in responses if r.status_code != 202]
    assert refused, "some webhooks should have run out of budget"
    for r in refused:
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json()["error"] == "busy", r.text
        assert "nothing was stored" in r.json()["message"]
    stored = db.execute("SELECT count(*) FROM inbound_events").fetchone()
    assert stored == (len(responses) - len(refused),)


def test_a_real_database_failure_says_what_failed(database_url: str, pg_admin_url: str, db: psycopg.Connection) -> None:
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        with run_bridge(make_config(emu.base_url), database_url, run_worker=False) as bridge:
            db.close()
            with psycopg.connect(pg_admin_url, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
                try:
                    r = httpx.post(
                        f"{bridge.base_url}/webhooks/generic",
                        content=b'{"action": "create", "alias": "x", "message": "m"}',
                        headers=AUTH,
                        timeout=30,
                    )
                finally:
                    admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    assert r.status_code == 503
    body = r.json()
    assert body["error"] == "database_unavailable"
    assert body["cause"], body


# --- the gate itself -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "lag", "may_cut", "expected"),
    [
        (8, 0.0, True, 8),  # keeping up, at the top
        (4, 0.5, True, 5),  # keeping up: grow by one
        (8, 3.0, True, 4),  # lagging: halve
        (8, 3.0, False, 8),  # ... at most once a second
        (1, 9.0, True, 1),  # never below one
        (4, 1.5, True, 4),  # between target/2 and target: hold
    ],
)
def test_next_limit(limit: int, lag: float, may_cut: bool, expected: int) -> None:
    assert next_limit(limit, lag, lag_target=2.0, lowest=1, highest=8, may_cut=may_cut) == expected


@pytest.mark.anyio
async def test_gate_is_fifo_bounded_and_follows_the_lag() -> None:
    gate = IngestGate(limit=2, wait_seconds=0.3, lag_target=2.0)
    order: list[int] = []

    async def job(i: int, hold: float) -> None:
        async with gate.slot():
            order.append(i)
            await asyncio.sleep(hold)

    await asyncio.gather(*(job(i, 0.05) for i in range(6)))
    assert order == list(range(6)) and gate.active == 0
    await gate.acquire()
    await gate.acquire()
    with pytest.raises(Overloaded):
        await gate.acquire()  # both slots held past the wait budget
    gate.release()
    gate.release()
    gate.report_lag(5.0)  # deliveries lag: ingest gets one slot
    assert gate.limit == 1
    gate.report_lag(0.0)
    assert gate.limit == 2
    # A waiter cancelled (client gone) leaks no slot.
    await gate.acquire()
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0.01)
    assert gate.waiting == 1
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    gate.release()
    gate.release()
    assert gate.active == 0 and gate.waiting == 0
