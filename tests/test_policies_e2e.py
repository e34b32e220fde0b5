"""Each lifecycle policy end to end: webhooks over real HTTP -> the real bridge (Postgres, worker, sweeper) -> the
OpsGenie emulator, asserting what the emulator received and what Postgres recorded (outbox, aliases, history)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.emulator_server import RunningEmulator, run_emulator
from tests.harness import API_KEY, TOKEN, fixture_bytes, make_config, run_bridge, wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
FAST_SWEEPER = "[sweeper]\ninterval_seconds = 0.1\n"


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        yield emu


def post(base: str, body: dict[str, Any], integration: str = "generic") -> dict[str, Any]:
    r = httpx.post(f"{base}/webhooks/{integration}", content=json.dumps(body), headers=AUTH, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()  # type: ignore[no-any-return]


def fire(base: str, alias: str, **fields: Any) -> dict[str, Any]:
    return post(base, {"action": "create", "alias": alias, "message": f"{alias} fires", **fields})


def resolve(base: str, alias: str) -> dict[str, Any]:
    return post(base, {"action": "close", "alias": alias})


def sent(emu: RunningEmulator, alias: str, integration: str = "generic") -> list[str]:
    """What the emulator received for one alias, in order: create / close / note / acknowledge."""
    emu.wait_idle()
    out = []
    for r in emu.state.requests:
        body = r["json"] or {}
        if r["path"] == "/v2/alerts" and body.get("alias") == f"{integration}:{alias}":
            out.append("create")
        elif r["path"].startswith(f"/v2/alerts/{integration}:{alias}/"):
            out.append(r["path"].rsplit("/", 1)[1].replace("notes", "note"))
    return out


def settled(db: psycopg.Connection) -> bool:
    return db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone() == (0,)


def history(db: psycopg.Connection, alias: str) -> list[tuple[str, str, str, str]]:
    rows = db.execute(
        "SELECT origin, action, decision, reason_code FROM alias_history WHERE alias = %s ORDER BY id", (alias,)
    ).fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def alias_row(db: psycopg.Connection, alias: str) -> dict[str, Any]:
    row = db.cursor(row_factory=dict_row).execute("SELECT * FROM aliases WHERE alias = %s", (alias,)).fetchone()
    assert row is not None
    return row


def policies(**settings: Any) -> str:
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    return f"[integrations.policies]\n{lines}\n"


# --- flap damping -------------------------------------------------------------------------------------------


def test_flap_fire_resolve_fire_within_the_delay_sends_one_create_and_no_close(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    config = make_config(
        emulator.base_url, integrations=(("generic", "generic"),), extra_integration=policies(close_delay="2s")
    )
    with run_bridge(config, database_url) as bridge:
        fire(bridge.base_url, "queue-1")
        wait_for(lambda: settled(db), what="the create")
        closing = resolve(bridge.base_url, "queue-1")["events"][0]
        assert (closing["decision"], closing["reason"].split(":")[0]) == (
            "delay",
            "close held for close_delay (flap damping)",
        )
        flap = fire(bridge.base_url, "queue-1")["events"][0]
        assert flap["decision"] == "suppress" and "a flap" in flap["reason"]
        row = alias_row(db, "queue-1")
        assert (row["state"], row["close_due_at"], row["closed_at"]) == ("open", None, None)
        # The held close is cancelled in Postgres (not merely late): wait past the delay and look again.
        (status,) = db.execute("SELECT status FROM outbox WHERE id = %s", (closing["outbox_id"],)).fetchone()  # type: ignore[misc]
        assert status == "skipped"
        wait_for(lambda: datetime.now(UTC) > row["last_seen_at"] + timedelta(seconds=2.5), what="the delay to pass")
        wait_for(lambda: settled(db), what="the queue")
        metrics = httpx.get(f"{bridge.base_url}/metrics").text
        assert 'alertbridge_policy_decisions_total{integration="generic",reason="flap"}' in metrics
        assert 'alertbridge_policy_decisions_total{integration="generic",reason="close_delayed"}' in metrics
        assert "alertbridge_closes_held 0.0" in metrics
    assert sent(emulator, "queue-1") == ["create"]
    assert history(db, "queue-1") == [
        ("webhook", "create", "send", "new_alert"),
        ("policy", "close", "delay", "close_delayed"),
        ("policy", "create", "suppress", "flap"),
    ]


def test_a_held_close_is_sent_when_the_delay_ends(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    config = make_config(
        emulator.base_url, integrations=(("generic", "generic"),), extra_integration=policies(close_delay="1s")
    )
    with run_bridge(config, database_url) as bridge:
        fire(bridge.base_url, "q2")
        wait_for(lambda: settled(db), what="the create")
        resolve(bridge.base_url, "q2")
        assert sent(emulator, "q2") == ["create"]  # not yet: held
        assert alias_row(db, "q2")["state"] == "closed"
        wait_for(lambda: sent(emulator, "q2") == ["create", "close"], timeout=5, what="the held close")
        # After the delay a new firing is a new alert, not a flap.
        fire(bridge.base_url, "q2")
        wait_for(lambda: settled(db), what="the second create")
    assert sent(emulator, "q2") == ["create", "close", "create"]
    assert alias_row(db, "q2")["generation"] == 2


# --- silences ------------------------------------------------------------------------------------------------


def toml_value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {json.dumps(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def silence_toml(**fields: Any) -> str:
    return "[[silences]]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in fields.items()) + "\n"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_a_config_file_silence_records_creates_and_sends_nothing_a_resolve_closes_locally(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    now = datetime.now(UTC)
    window = silence_toml(
        integration="generic",
        alias="maint-*",
        starts_at=iso(now - timedelta(minutes=5)),
        ends_at=iso(now + timedelta(hours=1)),
        comment="database maintenance",
    )
    config = make_config(emulator.base_url, integrations=(("generic", "generic"),), server=window)
    with run_bridge(config, database_url) as bridge:
        ev = fire(bridge.base_url, "maint-db")["events"][0]
        assert ev["decision"] == "suppress" and "database maintenance" in ev["reason"]
        assert fire(bridge.base_url, "web-down")["events"][0]["decision"] == "send"
        closing = resolve(bridge.base_url, "maint-db")["events"][0]
        assert (closing["decision"], closing["reason"].split(" (")[0]) == (
            "suppress",
            "OpsGenie does not have this alert",
        )
        wait_for(lambda: settled(db), what="the queue")
    assert sent(emulator, "maint-db") == []
    assert sent(emulator, "web-down") == ["create"]
    row = alias_row(db, "maint-db")
    assert (row["state"], row["suppressed"]) == ("closed", False)
    assert history(db, "maint-db") == [
        ("policy", "create", "suppress", "silenced"),
        ("policy", "close", "suppress", "withheld_alert"),
    ]
    (details,) = db.execute("SELECT details FROM alias_history WHERE alias = 'maint-db' ORDER BY id LIMIT 1").fetchone()  # type: ignore[misc]
    assert details["silence_comment"] == "database maintenance" and details["silence_id"] >= 1
    # Provisioned: the file's silence is a row, managed by the file.
    assert db.execute("SELECT alias, managed_by, created_by FROM silences").fetchall() == [
        ("maint-*", "file", "config file")
    ]


def test_an_alert_open_before_the_silence_stays_open_repeats_are_held_and_its_resolve_is_sent(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    from tests.admin_harness import make_token

    config = make_config(emulator.base_url, integrations=(("generic", "generic"),))
    with run_bridge(config, database_url) as bridge:
        fire(bridge.base_url, "db-slow")
        wait_for(lambda: settled(db), what="the create")
        token = make_token(database_url, "ci", "admin")
        r = httpx.post(
            f"{bridge.base_url}/api/v1/silences",
            json={"integration": "generic", "alias": "db-*", "duration": "1h", "comment": "failover drill"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text
        # Live in this process within a second (the config counter).
        wait_for(lambda: fire(bridge.base_url, "db-slow")["events"][0]["decision"] == "suppress", what="the silence")
        assert resolve(bridge.base_url, "db-slow")["events"][0]["decision"] == "send"  # OpsGenie has it open
        wait_for(lambda: settled(db), what="the close")
    assert sent(emulator, "db-slow") == ["create", "close"]
    assert emulator.state.list_alerts()[0]["count"] == 1  # the repeat during the silence was not sent


def test_an_alert_still_firing_when_the_silence_ends_is_sent_then(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    now = datetime.now(UTC)
    window = silence_toml(
        integration="generic",
        alias="maint-*",
        starts_at=iso(now - timedelta(minutes=1)),
        ends_at=iso(now + timedelta(seconds=3)),
        comment="short window",
    )
    config = make_config(emulator.base_url, integrations=(("generic", "generic"),), server=window + FAST_SWEEPER)
    with run_bridge(config, database_url) as bridge:
        fire(bridge.base_url, "maint-a", priority="P2")  # still fires at the end: sent then
        fire(bridge.base_url, "maint-b")
        resolve(bridge.base_url, "maint-b")  # resolved during the silence: never sent
        assert alias_row(db, "maint-a")["suppressed"] is True
        wait_for(lambda: sent(emulator, "maint-a") == ["create"], timeout=10, what="the withheld alert")
        wait_for(lambda: settled(db), what="the queue")
        assert alias_row(db, "maint-a")["suppressed"] is False
        # From now on it is an ordinary open alert: its resolve goes out.
        resolve(bridge.base_url, "maint-a")
        wait_for(lambda: sent(emulator, "maint-a") == ["create", "close"], what="the close")
    assert sent(emulator, "maint-b") == []
    created = next(r for r in emulator.state.requests if (r["json"] or {}).get("alias") == "generic:maint-a")
    assert created["json"]["priority"] == "P2" and created["json"]["message"] == "maint-a fires"
    assert history(db, "maint-a")[:2] == [
        ("policy", "create", "suppress", "silenced"),
        ("policy", "create", "send", "silence_over"),
    ]
    (runs,) = db.execute("SELECT runs FROM sweeper_jobs WHERE job = 'release'").fetchone()  # type: ignore[misc]
    assert runs >= 1


# --- stale-alert expiry --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "expected", "code"),
    [
        ("close", ["create", "close"], "expired_close"),
        ("note", ["create", "note"], "expired_note"),
        ("resend", ["create", "create"], "expired_resend"),
    ],
)
def test_an_alias_with_no_webhook_for_expire_after_expires(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection, action: str, expected: list[str], code: str
) -> None:
    config = make_config(
        emulator.base_url,
        integrations=(("generic", "generic"),),
        extra_integration=policies(expire_after="2s", expire_action=action),
        server=FAST_SWEEPER,
    )
    with run_bridge(config, database_url) as bridge:
        fire(bridge.base_url, "stale")
        fire(bridge.base_url, "alive")
        # A source that re-sends while firing (repeat_interval, polling) keeps its alert alive.
        deadline = time.monotonic() + 10
        while sent(emulator, "stale") != expected and time.monotonic() < deadline:
            fire(bridge.base_url, "alive")
            time.sleep(0.5)
        assert sent(emulator, "stale") == expected
        fire(bridge.base_url, "alive")
        wait_for(lambda: settled(db), what="the queue")
        # A note or a re-send starts the clock again: nothing more within expire_after.
        time.sleep(0.5)
        assert sent(emulator, "stale") == expected
    assert set(sent(emulator, "alive")) == {"create"}
    rows = db.execute(
        "SELECT origin, action, decision, reason_code, reason, actor FROM alias_history WHERE alias = 'stale' "
        "AND origin = 'policy'"
    ).fetchall()
    assert [(r[0], r[2], r[3], r[5]) for r in rows] == [("policy", "send", code, "policy")]
    assert "expire_after = 2s" in rows[0][4]
    if action == "close":
        assert alias_row(db, "stale")["state"] == "closed" and alias_row(db, "stale")["closed_by"] == "alertbridge"
        note = next(r["json"]["note"] for r in emulator.state.requests if r["path"].endswith("/close"))
        assert note.startswith("Closed by alertbridge: no webhook about this alert for")
    else:
        assert alias_row(db, "stale")["state"] == "open"


# --- source heartbeats ----------------------------------------------------------------------------------------


def test_a_silent_source_gets_an_alert_closed_when_it_sends_again(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    config = make_config(
        emulator.base_url,
        integrations=(("generic", "generic"),),
        extra_integration=policies(expect_every="1s", expect_priority="P2"),
        server=FAST_SWEEPER,
    )
    alias = "alertbridge:source-silent"
    with run_bridge(config, database_url) as bridge:
        wait_for(lambda: sent(emulator, alias) == ["create"], timeout=10, what="the source-silent alert")
        created = next(r["json"] for r in emulator.state.requests if r["path"] == "/v2/alerts")
        assert created["message"] == "generic: no webhook for 1s" and created["priority"] == "P2"
        fire(bridge.base_url, "hello")  # the source speaks again
        wait_for(lambda: sent(emulator, alias) == ["create", "close"], timeout=10, what="the close")
        metrics = httpx.get(f"{bridge.base_url}/metrics").text
        assert 'alertbridge_policy_decisions_total{integration="generic",reason="source_silent"}' in metrics
        assert 'alertbridge_sweeper_runs_total{job="source_heartbeats",outcome="ok"}' in metrics
    codes = [h[3] for h in history(db, alias)]
    assert codes[:2] == ["source_silent", "source_back"]
    assert {h[0] for h in history(db, alias)} == {"policy"}


# --- one example per source (docs/policies.md) ----------------------------------------------------------------


def post_fixture(base: str, integration: str, fixture: str) -> dict[str, Any]:
    r = httpx.post(f"{base}/webhooks/{integration}", content=fixture_bytes(fixture), headers=AUTH, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()  # type: ignore[no-any-return]


def test_the_genesys_flicker_is_one_alert_marked_flapping_and_closed_once_it_stays_ok(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    config = make_config(
        emulator.base_url,
        integrations=(("genesys", "genesys"),),
        extra_integration=policies(close_delay="2s", flap_threshold=2, flap_window="10m"),
    )
    alarm, ok = "genesys/01_queue_sla_alarm.json", "genesys/02_queue_sla_clear.json"
    alias = "gc-sla-0f1e2d3c-20260914T0847"
    with run_bridge(config, database_url) as bridge:
        for fixture in (alarm, ok, alarm, ok, alarm):  # ALARM, OK, ALARM, OK, ALARM within the delay
            post_fixture(bridge.base_url, "genesys", fixture)
        wait_for(lambda: settled(db), what="the create and the flapping note")
        assert sent(emulator, alias, "genesys") == ["create", "note"]
        note = next(r["json"]["note"] for r in emulator.state.requests if r["path"].endswith("/notes"))
        assert note.startswith("Flapping: fired again within close_delay 2 times")
        post_fixture(bridge.base_url, "genesys", ok)  # and now it stays OK
        wait_for(lambda: sent(emulator, alias, "genesys") == ["create", "note", "close"], timeout=10, what="close")
    codes = [h[3] for h in history(db, alias)]
    assert codes == ["new_alert", "close_delayed", "flap", "close_delayed", "flap", "flapping", "close_delayed"]
    (alert,) = emulator.state.list_alerts()
    assert (alert["status"], alert["count"]) == ("closed", 1)


def test_an_alertmanager_maintenance_window_holds_one_node_and_lets_the_other_through(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    window = silence_toml(
        integration="alertmanager",
        details={"node": "ip-10-42-3-*"},
        every="daily 00:00-24:00",
        timezone="Europe/Berlin",
        comment="node ip-10-42-3-17 is being drained",
    )
    config = make_config(emulator.base_url, integrations=(("alertmanager", "alertmanager"),), server=window)
    with run_bridge(config, database_url) as bridge:
        fired = post_fixture(bridge.base_url, "alertmanager", "alertmanager/01_firing_two_alerts.json")["events"]
        assert [(e["alias"], e["decision"]) for e in fired] == [
            ("f8f9add23ebfa2db", "suppress"),
            ("719a1a97ef71f433", "send"),
        ]
        # The drained node's alert resolves (closed here, never sent); the other one repeats, then resolves.
        later = post_fixture(bridge.base_url, "alertmanager", "alertmanager/02_one_resolved_one_firing.json")
        assert [(e["alias"], e["decision"]) for e in later["events"]] == [
            ("f8f9add23ebfa2db", "suppress"),
            ("719a1a97ef71f433", "send"),
        ]
        post_fixture(bridge.base_url, "alertmanager", "alertmanager/04_all_resolved.json")
        wait_for(lambda: settled(db), what="the queue")
    assert sent(emulator, "f8f9add23ebfa2db", "alertmanager") == []
    assert sent(emulator, "719a1a97ef71f433", "alertmanager") == ["create", "create", "close"]
    assert alias_row(db, "f8f9add23ebfa2db")["state"] == "closed"
