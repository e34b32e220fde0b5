"""End to end over real HTTP: webhook -> bridge (real app, real Postgres) -> worker -> emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.emulator_server import RunningEmulator, run_emulator
from tests.harness import API_KEY, TOKEN, fixture_bytes, make_config, run_bridge, wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.02) as emu:
        yield emu


def post(base: str, integration: str, body: bytes | dict[str, Any], **kw: Any) -> httpx.Response:
    content = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = kw.pop("headers", AUTH)
    return httpx.post(f"{base}/webhooks/{integration}", content=content, headers=headers, timeout=10, **kw)


def outbox(db: psycopg.Connection) -> list[dict[str, Any]]:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute("SELECT * FROM outbox ORDER BY id").fetchall()


def settled(db: psycopg.Connection) -> bool:
    (n,) = db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone()  # type: ignore[misc]
    return n == 0


def emulator_alerts(emu: RunningEmulator) -> dict[str, dict[str, Any]]:
    """alias -> newest alert with that alias."""
    emu.wait_idle()
    alerts = httpx.get(f"{emu.base_url}/_control/alerts").json()["data"]
    out: dict[str, dict[str, Any]] = {}
    for a in reversed(alerts):  # oldest first, so the newest wins
        out[a["alias"]] = a
    return out


def test_alertmanager_fire_resolve_end_to_end(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    with run_bridge(make_config(emulator.base_url), database_url) as bridge:
        r = post(bridge.base_url, "alertmanager", fixture_bytes("alertmanager/01_firing_two_alerts.json"))
        assert r.status_code == 202, r.text
        body = r.json()
        assert [(e["action"], e["alias"], e["decision"]) for e in body["events"]] == [
            ("create", "f8f9add23ebfa2db", "send"),
            ("create", "719a1a97ef71f433", "send"),
        ]
        wait_for(lambda: settled(db), what="deliveries")
        alerts = emulator_alerts(emulator)
        a = alerts["alertmanager:f8f9add23ebfa2db"]
        assert a["status"] == "open" and a["priority"] == "P1" and a["count"] == 1
        assert a["message"].startswith("p99 latency of POST /v2/checkout")

        # One resolved, one still firing: exactly the resolved alert closes; the other counts up.
        r = post(bridge.base_url, "alertmanager", fixture_bytes("alertmanager/02_one_resolved_one_firing.json"))
        assert [(e["action"], e["decision"]) for e in r.json()["events"]] == [("close", "send"), ("create", "send")]
        wait_for(lambda: settled(db), what="deliveries")
        alerts = emulator_alerts(emulator)
        assert alerts["alertmanager:f8f9add23ebfa2db"]["status"] == "closed"
        assert alerts["alertmanager:719a1a97ef71f433"]["status"] == "open"
        assert alerts["alertmanager:719a1a97ef71f433"]["count"] == 2

        for name in ("03_new_alert_added.json", "04_all_resolved.json"):
            assert post(bridge.base_url, "alertmanager", fixture_bytes(f"alertmanager/{name}")).status_code == 202
            wait_for(lambda: settled(db), what="deliveries")
        alerts = emulator_alerts(emulator)
        assert {k: v["status"] for k, v in alerts.items()} == {
            "alertmanager:f8f9add23ebfa2db": "closed",
            "alertmanager:719a1a97ef71f433": "closed",
            "alertmanager:097d5bb1567bf9b7": "closed",
        }

    # Postgres remembers every alias and every step.
    states = dict(db.execute("SELECT alias, state FROM aliases WHERE integration = 'alertmanager'").fetchall())
    assert states == {"f8f9add23ebfa2db": "closed", "719a1a97ef71f433": "closed", "097d5bb1567bf9b7": "closed"}
    rows = outbox(db)
    assert all(r["status"] == "delivered" for r in rows)
    assert [r["action"] for r in rows if r["alias"] == "719a1a97ef71f433"] == ["create", "create", "create", "close"]
    (statuses,) = db.execute(
        "SELECT array_agg(DISTINCT http_status) FROM delivery_attempts WHERE kind = 'send'"
    ).fetchone()  # type: ignore[misc]
    assert statuses == [202]
    # Every close waited for OpsGenie to process its create, so none failed with "Alert does not exist".
    failed = [s for s in emulator.state.statuses.values() if s is not None and not s["isSuccess"]]
    assert failed == []
    (n_inbound, processed) = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'processed') FROM inbound_events"
    ).fetchone()  # type: ignore[misc]
    assert n_inbound == processed == 4


def test_generic_ack_close_from_a_stateless_sender(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    with run_bridge(make_config(emulator.base_url), database_url) as bridge:
        base = bridge.base_url
        assert (
            post(base, "generic", {"action": "acknowledge", "alias": "job-42"}).json()["events"][0]["reason"]
            == "no open alert"
        )
        traced = {**AUTH, "traceparent": TRACEPARENT}
        assert (
            post(
                base,
                "generic",
                {"action": "create", "alias": "job-42", "message": "nightly job failed", "priority": "P2"},
                headers=traced,
            ).status_code
            == 202
        )
        assert (
            post(base, "generic", {"action": "acknowledge", "alias": "job-42", "note": "looking"}).json()["events"][0][
                "decision"
            ]
            == "send"
        )
        assert post(base, "generic", {"action": "close", "alias": "job-42"}).status_code == 202
        wait_for(lambda: settled(db), what="deliveries")
    emulator.wait_idle()
    received = [
        (r["method"], r["path"], r["query"].get("identifierType"))
        for r in emulator.state.requests
        if r["path"].startswith("/v2/alerts") and r["method"] == "POST"
    ]
    assert received == [
        ("POST", "/v2/alerts", None),
        ("POST", "/v2/alerts/generic:job-42/acknowledge", "alias"),
        ("POST", "/v2/alerts/generic:job-42/close", "alias"),
    ]
    create = next(r for r in emulator.state.requests if r["path"] == "/v2/alerts")
    assert create["json"]["source"] == "alertbridge-test"  # default_source filled in
    assert create["traceparent"] == TRACEPARENT  # W3C trace context passed through to OpsGenie
    assert create["headers"]["authorization"] == "GenieKey ***"
    alert = emulator_alerts(emulator)["generic:job-42"]
    assert alert["status"] == "closed" and alert["acknowledged"] is True
    row = db.execute("SELECT state, generation, alert_id IS NOT NULL FROM aliases WHERE alias = 'job-42'").fetchone()
    assert row == ("closed", 1, True)
    ignored = db.execute(
        "SELECT decision, status, reason FROM outbox WHERE action = 'acknowledge' ORDER BY id"
    ).fetchall()
    assert ignored[0] == ("ignore", "skipped", "no open alert")


def test_create_after_close_opens_a_new_generation(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    with run_bridge(make_config(emulator.base_url), database_url) as bridge:
        for action in ("create", "close", "create"):
            post(bridge.base_url, "generic", {"action": action, "alias": "disk-full", "message": "disk full"})
            wait_for(lambda: settled(db), what="deliveries")
    emulator.wait_idle()
    alerts = [a for a in emulator.state.alerts.values() if a["alias"] == "generic:disk-full"]
    assert [a["status"] for a in alerts] == ["closed", "open"]
    assert len({a["id"] for a in alerts}) == 2
    assert db.execute("SELECT state, generation FROM aliases").fetchone() == ("open", 2)
    assert [g for (g,) in db.execute("SELECT generation FROM outbox ORDER BY id")] == [1, 1, 2]


@pytest.mark.parametrize(
    ("fault", "expected_statuses"),
    [
        ({"status": 429, "count": 2}, [429, 429, 202]),
        ({"status": 500, "count": 1}, [500, 202]),
        ({"status": 503, "count": 2}, [503, 503, 202]),
        ({"hang": 2.5, "count": 1}, [None, 202]),  # client timeout (1 s), then a retry
    ],
)
def test_retries_after_injected_faults(
    emulator: RunningEmulator,
    database_url: str,
    db: psycopg.Connection,
    fault: dict[str, Any],
    expected_statuses: list[int | None],
) -> None:
    httpx.post(f"{emulator.base_url}/_control/faults", json=fault).raise_for_status()
    with run_bridge(make_config(emulator.base_url), database_url) as bridge:
        post(bridge.base_url, "generic", {"action": "create", "alias": "flaky", "message": "flaky"})
        wait_for(lambda: settled(db), timeout=15, what="deliveries")
    attempts = db.execute("SELECT http_status, outcome FROM delivery_attempts ORDER BY id").fetchall()
    assert [s for s, _ in attempts] == expected_statuses
    assert attempts[-1][1] == "delivered"
    assert db.execute("SELECT status, attempts FROM outbox").fetchone() == ("delivered", len(expected_statuses))
    if fault.get("status") == 429:
        assert attempts[0][1] == "retry"
    emulator.wait_idle(timeout=6)
    # Even when the hung request was processed too, OpsGenie's alias dedup keeps one alert.
    assert len([a for a in emulator.state.alerts.values() if a["alias"] == "generic:flaky"]) == 1


def test_422_is_dead_lettered_and_replay_requeues_it(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    fault = {
        "status": 422,
        "count": 1,
        "body": {"message": "Request body is not processable", "errors": {"message": "too long"}},
    }
    httpx.post(f"{emulator.base_url}/_control/faults", json=fault).raise_for_status()
    with run_bridge(make_config(emulator.base_url), database_url) as bridge:
        post(bridge.base_url, "generic", {"action": "create", "alias": "bad", "message": "x"})
        wait_for(lambda: settled(db), what="deliveries")
        status, attempts, error = db.execute("SELECT status, attempts, last_error FROM outbox").fetchone()  # type: ignore[misc]
        assert (status, attempts) == ("dead", 1)
        assert "422" in error and "too long" in error

        # An operator re-queues dead deliveries with the CLI, against the same database.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBRIDGE_")}
        env["ALERTBRIDGE_DATABASE_URL"] = database_url
        done = subprocess.run(
            [sys.executable, "-m", "alertbridge.cli", "replay", "--dead", "--no-migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["requeued"] == [1]
        wait_for(lambda: db.execute("SELECT status FROM outbox").fetchone() == ("delivered",), what="redelivery")
    assert [s for (s,) in db.execute("SELECT http_status FROM delivery_attempts ORDER BY id")] == [422, 202]


def test_401_from_opsgenie_is_held_as_config_error_and_recovers(database_url: str, db: psycopg.Connection) -> None:
    # The bridge's key is wrong at first: 401 -> held and retried slowly; fixing the key recovers without replay.
    with run_emulator(api_keys=["the-right-key"], processing_delay=0.0) as emu:
        with run_bridge(make_config(emu.base_url), database_url) as bridge:
            post(bridge.base_url, "generic", {"action": "create", "alias": "k", "message": "m"})
            wait_for(
                lambda: db.execute("SELECT count(*) FROM delivery_attempts WHERE http_status = 401").fetchone()[0] >= 2,  # type: ignore[index]
                what="two 401 attempts",
            )
            status, outcome = db.execute("SELECT status, last_outcome FROM outbox").fetchone()  # type: ignore[misc]
            assert status in ("pending", "in_flight") and outcome == "config_error"  # held, retried slowly
            emu.call(lambda: emu.state.__dict__.__setitem__("api_keys", {"the-right-key", API_KEY}))
            wait_for(lambda: settled(db), what="recovery")
        assert db.execute("SELECT status FROM outbox").fetchone() == ("delivered",)
        statuses = [s for (s,) in db.execute("SELECT DISTINCT http_status FROM delivery_attempts")]
        assert set(statuses) == {401, 202}


def test_forward_unknown_sends_actions_for_aliases_we_never_saw(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    """For alerts opened before the bridge existed: forward_unknown = true sends the close anyway."""
    config = make_config(emulator.base_url, extra_integration="forward_unknown = true")
    with run_bridge(config, database_url) as bridge:
        r = post(bridge.base_url, "generic", {"action": "close", "alias": "legacy-1"})
        assert r.json()["events"][0]["decision"] == "send"
        assert r.json()["events"][0]["reason"].startswith("no open alert known; forwarded")
        wait_for(lambda: settled(db), what="delivery")
    emulator.wait_idle()
    (req,) = [r for r in emulator.state.requests if r["method"] == "POST"]
    assert req["path"] == "/v2/alerts/generic:legacy-1/close" and req["query"]["identifierType"] == "alias"
    # OpsGenie accepted it (202) and later reports that no such alert exists: that is recorded as delivered.
    assert db.execute("SELECT status FROM outbox").fetchone() == ("delivered",)
    assert db.execute("SELECT count(*) FROM aliases").fetchone() == (0,)
