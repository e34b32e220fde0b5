"""§6: tests that fail when the alias lock, the coalescing of pending creates or the alias counters break —
end to end, over real HTTP and separate database connections."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import httpx
import psycopg

from tests.delivery_helpers import AUTH, post, queue_left
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, make_config, run_bridge, wait_for


def _burst(url: str, body: bytes, n: int) -> list[int]:
    """n POSTs released at the same instant, each on its own connection (and so its own database session)."""
    barrier = threading.Barrier(n)
    statuses: list[int] = []

    def one() -> None:
        with httpx.Client(timeout=30) as client:
            barrier.wait(10)
            statuses.append(client.post(url, content=body, headers=AUTH).status_code)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return statuses


def test_concurrent_webhooks_for_one_alias_are_serialized(database_url: str, db: psycopg.Connection) -> None:
    """Without the per-alias advisory lock, simultaneous creates all see "no alias yet": several sends, a lost
    count. With it, exactly one create is queued and the others are coalesced into it."""
    n = 12
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        with run_bridge(make_config(emu.base_url), database_url, run_worker=False) as bridge:
            for alias in ("c1", "c2", "c3"):
                body = f'{{"action": "create", "alias": "{alias}", "message": "m"}}'.encode()
                assert _burst(f"{bridge.base_url}/webhooks/generic", body, n) == [202] * n
    for alias in ("c1", "c2", "c3"):
        decisions = dict(
            db.execute("SELECT decision, count(*) FROM outbox WHERE alias = %s GROUP BY decision", (alias,)).fetchall()
        )
        assert decisions == {"send": 1, "coalesce": n - 1}, alias
        assert db.execute("SELECT count, generation FROM aliases WHERE alias = %s", (alias,)).fetchone() == (n, 1)
        assert db.execute("SELECT count(*) FROM alias_history WHERE alias = %s", (alias,)).fetchone() == (n,)


def test_a_create_while_the_previous_create_is_pending_is_coalesced_end_to_end(
    database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        config = make_config(emu.base_url)
        with run_bridge(config, database_url, run_worker=False) as bridge:
            first = post(bridge.base_url, {"action": "create", "alias": "p", "message": "m"})["events"][0]
            second = post(bridge.base_url, {"action": "create", "alias": "p", "message": "m"})["events"][0]
        assert (first["decision"], second["decision"]) == ("send", "coalesce")
        assert db.execute("SELECT status FROM outbox ORDER BY id").fetchall() == [("pending",), ("skipped",)]
        with run_bridge(config, database_url) as bridge:
            wait_for(lambda: queue_left(db) == 0, what="delivery")
            # Once the create went out, a repeat is sent (OpsGenie counts it).
            third = post(bridge.base_url, {"action": "create", "alias": "p", "message": "m"})["events"][0]
            assert third["decision"] == "send"
            wait_for(lambda: queue_left(db) == 0, what="delivery")
        emu.wait_idle()
        creates = [r for r in emu.state.requests if r["path"] == "/v2/alerts"]
        assert len(creates) == 2
        (alert,) = emu.state.alerts.values()
        assert alert["count"] == 2
        assert db.execute("SELECT count FROM aliases").fetchone() == (3,)


def _alias(db: psycopg.Connection) -> dict:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    row = cur.execute(
        "SELECT state, generation, count, opened_at, acknowledged_at, closed_at, first_seen_at, last_seen_at "
        "FROM aliases WHERE alias = 'life'"
    ).fetchone()
    assert row is not None
    return row


def test_alias_counters_and_timestamps_through_a_full_lifecycle(database_url: str, db: psycopg.Connection) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        with run_bridge(make_config(emu.base_url), database_url) as bridge:

            def step(body: dict) -> tuple[datetime, datetime]:
                before = datetime.now(UTC)
                post(bridge.base_url, {"alias": "life", "message": "m", **body})
                after = datetime.now(UTC)
                wait_for(lambda: queue_left(db) == 0, what="delivery")
                time.sleep(0.01)
                return before, after

            t0, t1 = step({"action": "create"})
            a = _alias(db)
            assert (a["state"], a["generation"], a["count"]) == ("open", 1, 1)
            assert t0 <= a["opened_at"] <= t1
            assert (a["acknowledged_at"], a["closed_at"]) == (None, None)
            opened = a["opened_at"]

            step({"action": "create"})  # a repeat while open: counted, the alert stays the same
            a = _alias(db)
            assert (a["state"], a["generation"], a["count"], a["opened_at"]) == ("open", 1, 2, opened)

            t0, t1 = step({"action": "acknowledge"})
            a = _alias(db)
            assert (a["state"], a["count"], a["opened_at"]) == ("acknowledged", 2, opened)
            assert t0 <= a["acknowledged_at"] <= t1
            acked = a["acknowledged_at"]

            step({"action": "acknowledge"})  # already acknowledged: nothing moves
            assert _alias(db)["acknowledged_at"] == acked

            t0, t1 = step({"action": "close"})
            a = _alias(db)
            assert (a["state"], a["count"], a["acknowledged_at"]) == ("closed", 2, acked)
            assert t0 <= a["closed_at"] <= t1
            closed = a["closed_at"]
            assert opened < acked < closed

            t0, t1 = step({"action": "create"})  # fires again: a new alert, counters start over
            a = _alias(db)
            assert (a["state"], a["generation"], a["count"]) == ("open", 2, 1)
            assert t0 <= a["opened_at"] <= t1 and a["opened_at"] > closed
            assert (a["acknowledged_at"], a["closed_at"]) == (None, None)
            assert a["first_seen_at"] < a["last_seen_at"]
        emu.wait_idle()
        alerts = sorted(emu.state.alerts.values(), key=lambda x: x["createdAt"])
        assert [(x["status"], x["count"], x["acknowledged"]) for x in alerts] == [
            ("closed", 2, True),
            ("open", 1, False),
        ]
