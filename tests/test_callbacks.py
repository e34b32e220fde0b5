"""OpsGenie tells us back, end to end over real HTTP: the emulator calls the bridge back for every alert action —
ours (echoes) and a human's (through the emulator's control endpoints) — and the alias state follows."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.emulator_server import RunningEmulator, run_emulator
from tests.harness import API_KEY, FIXTURES, TOKEN, fixture_bytes, make_config, run_bridge, wait_for
from tests.servers import RunningServer

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
CALLBACK_TOKEN = "callback-token-0123"
CALLBACKS = f'[callbacks]\ntokens = ["{CALLBACK_TOKEN}"]\n'
A, B = "f8f9add23ebfa2db", "719a1a97ef71f433"  # the two alerts of tests/fixtures/alertmanager/01_*.json


@pytest.fixture
def loop(database_url: str) -> Iterator[tuple[RunningEmulator, RunningServer]]:
    """The emulator and the bridge, wired both ways: bridge -> emulator -> callbacks -> bridge."""
    with run_emulator(api_keys=[API_KEY], processing_delay=0.02) as emu:
        with run_bridge(make_config(emu.base_url, server=CALLBACKS), database_url) as bridge:
            httpx.post(
                f"{emu.base_url}/_control/callbacks",
                json={"url": f"{bridge.base_url}/callbacks/opsgenie", "headers": {"X-Bridge-Token": CALLBACK_TOKEN}},
            ).raise_for_status()
            yield emu, bridge


def webhook(bridge: RunningServer, fixture: str) -> None:
    r = httpx.post(f"{bridge.base_url}/webhooks/alertmanager", content=fixture_bytes(fixture), headers=AUTH)
    assert r.status_code == 202, r.text


def rows(db: psycopg.Connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    return db.cursor(row_factory=psycopg.rows.dict_row).execute(sql, args).fetchall()


def alias(db: psycopg.Connection, name: str) -> dict[str, Any]:
    (row,) = rows(db, "SELECT * FROM aliases WHERE integration = 'alertmanager' AND alias = %s", name)
    return row


def settle(emu: RunningEmulator, db: psycopg.Connection, callbacks: int) -> None:
    """Wait until the queue is empty, the emulator idle, and ``callbacks`` callbacks were stored."""

    def done() -> bool:
        (pending,) = db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone()  # type: ignore[misc]
        (stored,) = db.execute("SELECT count(*) FROM callbacks").fetchone()  # type: ignore[misc]
        return pending == 0 and emu.state.idle and stored >= callbacks

    wait_for(done, timeout=15, what=f"{callbacks} callbacks stored")


def human(emu: RunningEmulator, verb: str, alias_: str, user: str, **body: Any) -> None:
    og = f"alertmanager:{alias_}"
    r = httpx.post(
        f"{emu.base_url}/_control/alerts/{og}/{verb}", json={"user": user, "identifierType": "alias", **body}
    )
    assert r.status_code == 200, r.text


def test_the_full_loop(loop: tuple[RunningEmulator, RunningServer], db: psycopg.Connection) -> None:
    emu, bridge = loop
    # 1. Alertmanager fires two alerts: two creates; OpsGenie's Create callbacks are echoes that tell us the alert.
    webhook(bridge, "alertmanager/01_firing_two_alerts.json")
    settle(emu, db, callbacks=2)
    a = alias(db, A)
    og_a = emu.state.find_alert(f"alertmanager:{A}", "alias")
    assert og_a is not None
    assert (a["alert_id"], a["tiny_id"], a["create_confirmed"]) == (og_a["id"], og_a["tinyId"], True)
    assert {r["outcome"] for r in rows(db, "SELECT outcome FROM callbacks")} == {"echo"}

    # 2. A human acknowledges A in OpsGenie: the alias is acknowledged, by them, and nothing is sent.
    sent_before = len(emu.state.requests)
    human(emu, "acknowledge", A, "dana@example.com")
    settle(emu, db, callbacks=3)
    a = alias(db, A)
    assert (a["state"], a["acknowledged_by"]) == ("acknowledged", "dana@example.com")
    assert a["acknowledged_at"] is not None
    (gen,) = rows(db, "SELECT * FROM generations WHERE alias = %s", A)
    assert (gen["state"], gen["acknowledged_by"], gen["alert_id"]) == ("acknowledged", "dana@example.com", og_a["id"])
    assert gen["first_acknowledged_at"] == a["acknowledged_at"]
    assert len(emu.state.requests) == sent_before, "a callback never causes a send"
    (h,) = rows(db, "SELECT * FROM alias_history WHERE origin = 'callback' AND action = 'Acknowledge'")
    assert (h["from_state"], h["to_state"], h["actor"], h["decision"]) == (
        "open",
        "acknowledged",
        "dana@example.com",
        "applied",
    )

    # 3. The source resolves A: we send the close; OpsGenie's Close callback is an echo: recorded, never re-sent.
    webhook(bridge, "alertmanager/02_one_resolved_one_firing.json")
    settle(emu, db, callbacks=4)
    assert alias(db, A)["state"] == "closed" and alias(db, A)["closed_by"] == "source"
    (echo,) = rows(db, "SELECT * FROM callbacks WHERE action = 'Close'")
    assert (echo["outcome"], echo["alias"], echo["generation"]) == ("echo", A, 1)
    closes = [r for r in emu.state.requests if r["path"].endswith("/close")]
    assert len(closes) == 1
    (close_row,) = rows(db, "SELECT * FROM outbox WHERE action = 'close'")
    assert close_row["opsgenie_success"] is True and "confirmed by callback" in close_row["opsgenie_status"]

    # 4. A human closes B in OpsGenie; then the source resolves B: recorded as already closed in OpsGenie, not sent.
    human(emu, "close", B, "sam@example.com")
    settle(emu, db, callbacks=5)
    b = alias(db, B)
    assert (b["state"], b["closed_by"], b["closed_in_opsgenie"]) == ("closed", "sam@example.com", True)
    webhook(bridge, "alertmanager/04_all_resolved.json")
    settle(emu, db, callbacks=5)
    (ignored,) = rows(db, "SELECT * FROM outbox WHERE alias = %s AND action = 'close'", B)
    assert (ignored["decision"], ignored["reason"], ignored["status"]) == (
        "ignore",
        "already closed in OpsGenie",
        "skipped",
    )
    assert not [r for r in emu.state.requests if r["path"].endswith(f"{B}/close")]

    # 5. B fires again: a new generation and a new OpsGenie alert, as after any close.
    webhook(bridge, "alertmanager/01_firing_two_alerts.json")
    settle(emu, db, callbacks=7)
    b = alias(db, B)
    assert (b["state"], b["generation"], b["closed_in_opsgenie"], b["closed_by"]) == ("open", 2, False, None)
    gens = rows(db, "SELECT generation, state, closed_by, alert_id FROM generations WHERE alias = %s ORDER BY 1", B)
    assert [(g["generation"], g["state"], g["closed_by"]) for g in gens] == [
        (1, "closed", "sam@example.com"),
        (2, "open", None),
    ]
    assert gens[0]["alert_id"] != gens[1]["alert_id"] and gens[1]["alert_id"] is not None


def test_duplicates_older_generations_unknown_aliases(
    loop: tuple[RunningEmulator, RunningServer], db: psycopg.Connection
) -> None:
    emu, bridge = loop
    webhook(bridge, "alertmanager/01_firing_two_alerts.json")
    settle(emu, db, callbacks=2)
    first_alert = alias(db, A)["alert_id"]
    human(emu, "acknowledge", A, "dana@example.com")
    settle(emu, db, callbacks=3)

    # OpsGenie retries a callback: the same one again is a no-op.
    (ack,) = [c for c in emu.state.callbacks if c["action"] == "Acknowledge"]
    url = f"{bridge.base_url}/callbacks/opsgenie"
    r = httpx.post(url, json=ack["body"], headers={"X-Bridge-Token": CALLBACK_TOKEN})
    assert r.status_code == 200 and r.json()["results"][0]["outcome"] == "duplicate"
    assert len(rows(db, "SELECT 1 FROM alias_history WHERE origin = 'callback' AND action = 'Acknowledge'")) == 1

    # A closes and fires again (generation 2); a late callback about the first alert never touches generation 2.
    webhook(bridge, "alertmanager/02_one_resolved_one_firing.json")
    webhook(bridge, "alertmanager/01_firing_two_alerts.json")
    settle(emu, db, callbacks=6)  # 2 creates, 1 ack, 1 duplicate, A's close echo, A's new create
    assert (alias(db, A)["generation"], alias(db, A)["state"]) == (2, "open")
    late = copy.deepcopy(ack["body"])
    late["action"], late["alert"]["updatedAt"] = "Close", late["alert"]["updatedAt"] + 1
    r = httpx.post(url, json=late, headers={"X-Bridge-Token": CALLBACK_TOKEN})
    assert r.json()["results"][0]["outcome"] == "ignored" and "older alert" in r.json()["results"][0]["reason"]
    assert alias(db, A)["state"] == "open" and alias(db, A)["alert_id"] != first_alert

    # An alias we never sent: stored and ignored with that reason.
    stranger = json.loads((FIXTURES / "opsgenie_callback" / "02_acknowledge.json").read_text())
    r = httpx.post(url, json=stranger, headers={"X-Bridge-Token": CALLBACK_TOKEN})
    assert r.status_code == 200 and r.json()["results"][0]["outcome"] == "ignored"
    (row,) = rows(db, "SELECT * FROM callbacks WHERE opsgenie_alias = %s", stranger["alert"]["alias"])
    assert (row["integration"], row["reason"]) == (
        None,
        "no alias of ours has this OpsGenie alias (never sent by the bridge)",
    )
    assert row["username"] == "dana.okafor@example.com" and row["body"]["action"] == "Acknowledge"


def test_a_human_close_cancels_our_queued_actions(database_url: str, db: psycopg.Connection) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.02) as emu:
        config = make_config(emu.base_url, server=CALLBACKS)
        with run_bridge(config, database_url) as bridge:
            httpx.post(
                f"{emu.base_url}/_control/callbacks",
                json={"url": f"{bridge.base_url}/callbacks/opsgenie", "headers": {"X-Bridge-Token": CALLBACK_TOKEN}},
            ).raise_for_status()
            webhook(bridge, "alertmanager/01_firing_two_alerts.json")
            settle(emu, db, callbacks=2)
            # OpsGenie is down for a moment: our note waits in the queue ...
            httpx.post(f"{emu.base_url}/_control/faults", json={"status": 503, "count": 1000}).raise_for_status()
            r = httpx.post(
                f"{bridge.base_url}/webhooks/generic",
                json={"action": "note", "alias": "x", "note": "n"},
                headers=AUTH,
            )
            assert r.status_code == 202
        # ... while a human closes the alert (callbacks arrive at a bridge without a worker, as in a split setup).
        with run_bridge(config, database_url, run_worker=False) as bridge:
            httpx.post(
                f"{emu.base_url}/_control/callbacks",
                json={"url": f"{bridge.base_url}/callbacks/opsgenie", "headers": {"X-Bridge-Token": CALLBACK_TOKEN}},
            ).raise_for_status()
            db.execute(
                "INSERT INTO outbox (inbound_id, seq, integration, action, alias, opsgenie_alias, generation, payload,"
                " decision, reason, status) SELECT inbound_id, 9, integration, 'acknowledge', alias, opsgenie_alias,"
                " generation, '{}', 'send', 'test', 'pending' FROM outbox WHERE alias = %s AND action = 'create'",
                (A,),
            )
            httpx.delete(f"{emu.base_url}/_control/faults").raise_for_status()
            human(emu, "close", A, "sam@example.com")
            wait_for(lambda: alias(db, A)["state"] == "closed", what="close by callback")
        (queued,) = rows(db, "SELECT * FROM outbox WHERE alias = %s AND action = 'acknowledge'", A)
        assert (queued["status"], queued["reason_code"]) == ("skipped", "closed_in_opsgenie")


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"X-Bridge-Token": CALLBACK_TOKEN}, {}),
        ({"Authorization": f"Bearer {CALLBACK_TOKEN}"}, {}),
        ({}, {"token": CALLBACK_TOKEN}),
    ],
)
def test_callback_token_forms(
    loop: tuple[RunningEmulator, RunningServer], db: psycopg.Connection, headers: dict[str, str], params: dict[str, str]
) -> None:
    _, bridge = loop
    body = json.loads((FIXTURES / "opsgenie_callback" / "03_addnote.json").read_text())
    r = httpx.post(f"{bridge.base_url}/callbacks/opsgenie", json=body, headers=headers, params=params)
    assert r.status_code == 200, r.text


def test_refused_callbacks_store_nothing_but_are_counted(
    loop: tuple[RunningEmulator, RunningServer], db: psycopg.Connection
) -> None:
    _, bridge = loop
    body = json.loads((FIXTURES / "opsgenie_callback" / "02_acknowledge.json").read_text())
    for token in ("wrong-token-1234", None):
        headers = {"X-Bridge-Token": token} if token else {}
        r = httpx.post(f"{bridge.base_url}/callbacks/opsgenie", json=body, headers=headers)
        assert r.status_code == 401 and "X-Bridge-Token" in r.json()["message"]
    r = httpx.post(f"{bridge.base_url}/webhooks/alertmanager", content=b"{}", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert httpx.post(f"{bridge.base_url}/webhooks/nosuch", content=b"{}").status_code == 404
    assert db.execute("SELECT count(*) FROM callbacks").fetchone() == (0,)

    def counted() -> dict[tuple[str, str], int]:
        found = db.execute("SELECT integration, reason, sum(count) FROM refused_webhooks GROUP BY 1, 2").fetchall()
        return {(i, r): int(n) for i, r, n in found}

    wait_for(lambda: len(counted()) == 3, timeout=15, what="refused counts flushed")
    assert counted() == {
        ("callbacks/opsgenie", "unauthorized"): 2,
        ("alertmanager", "unauthorized"): 1,
        ("nosuch", "unknown_integration"): 1,
    }
    assert db.execute("SELECT DISTINCT remote_addr FROM refused_webhooks").fetchall() == [("127.0.0.1",)]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[]", 400),
        (b'{"action": "Acknowledge"}', 400),
        (b'{"action": 5, "alert": {}}', 400),
        (b'{"action": "Acknowledge", "alert": {"alias": {"x": 1}}}', 400),
        (b'{"action": "SomethingNew", "alert": {"alias": "am:x"}}', 200),
        (b'{"action": "Acknowledge", "alert": {"alias": null}}', 200),
        (
            b'{"action": "Close", "alert": {"alias": "x", "updatedAt": 99999999999999999999999999, "createdAt": -1}}',
            200,
        ),
        (b'{"action": "Close", "alert": {"alias": "x", "alertId": 12345678901234567890123, "tinyId": 7}}', 200),
    ],
)
def test_hostile_callbacks_get_200_or_400_never_500(
    loop: tuple[RunningEmulator, RunningServer], db: psycopg.Connection, body: bytes, status: int
) -> None:
    _, bridge = loop
    r = httpx.post(f"{bridge.base_url}/callbacks/opsgenie", content=body, headers={"X-Bridge-Token": CALLBACK_TOKEN})
    assert r.status_code == status, r.text
    assert "error" in r.json() if status == 400 else r.json()["results"]
