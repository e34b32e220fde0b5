"""The webhook endpoint's answers for bad input and failure: a clear JSON error, and nothing lost."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.emulator_server import RunningEmulator, run_emulator
from tests.harness import API_KEY, TOKEN, fixture_bytes, make_config, run_bridge
from tests.servers import RunningServer

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        yield emu


@pytest.fixture
def bridge(emulator: RunningEmulator, database_url: str) -> Iterator[RunningServer]:
    config = make_config(emulator.base_url, server="[server]\nmax_body_bytes = 65536\nmax_json_depth = 32\n")
    with run_bridge(config, database_url, run_worker=False) as server:
        yield server


def post(
    bridge: RunningServer,
    body: bytes,
    *,
    integration: str = "alertmanager",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{bridge.base_url}/webhooks/{integration}",
        content=body,
        headers=AUTH if headers is None else headers,
        params=params,
        timeout=10,
    )


def inbound(db: psycopg.Connection) -> list[dict[str, Any]]:
    return db.cursor(row_factory=psycopg.rows.dict_row).execute("SELECT * FROM inbound_events ORDER BY id").fetchall()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-000"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"bearer-ish {TOKEN}"},
    ],
)
def test_401_stores_nothing(bridge: RunningServer, db: psycopg.Connection, headers: dict[str, str]) -> None:
    r = post(bridge, fixture_bytes("alertmanager/01_firing_two_alerts.json"), headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized" and "Bearer" in r.json()["message"]
    assert inbound(db) == []


def test_second_token_and_query_token_are_accepted_and_redacted(bridge: RunningServer, db: psycopg.Connection) -> None:
    body = fixture_bytes("alertmanager/01_firing_two_alerts.json")
    assert post(bridge, body, headers={"Authorization": "Bearer second-token-456"}).status_code == 202
    assert post(bridge, body, headers={}, params={"token": TOKEN, "region": "eu"}).status_code == 202
    rows = inbound(db)
    assert rows[0]["headers"]["authorization"] == "[redacted]"
    assert rows[1]["query"] == {"token": "[redacted]", "region": "eu"}


def test_unknown_integration_is_404_and_names_no_integration(bridge: RunningServer) -> None:
    """Outside the demo, neither the 404 nor the index tells a stranger which integrations exist."""
    r = post(bridge, b"{}", integration="nope")
    assert r.status_code == 404
    assert r.json() == {"error": "unknown_integration", "message": "no integration named 'nope' is configured"}
    index = httpx.get(bridge.base_url + "/").json()
    assert index.keys() == {"name", "version"}
    assert "alertmanager" not in r.text + json.dumps(index)


def test_demo_mode_lists_the_integrations(emulator: RunningEmulator, database_url: str) -> None:
    with run_bridge(make_config(emulator.base_url), database_url, run_worker=False, demo=True) as server:
        r = post(server, b"{}", integration="nope")
        index = httpx.get(server.base_url + "/").json()
    assert r.status_code == 404 and r.json()["integrations"] == ["alertmanager", "generic"]
    assert index["webhooks"] == {n: f"{server.base_url}/webhooks/{n}" for n in ("alertmanager", "generic")}


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("hostile/malformed.json", "not valid JSON"),
        ("hostile/truncated.json", "not valid JSON"),
        ("hostile/empty_body.json", "body is empty"),
        ("hostile/whitespace_only_body.json", "body is empty"),
        ("hostile/invalid_utf8.json", "not valid UTF-8"),
        ("hostile/top_level_array.json", "got an array"),
        ("hostile/top_level_null.json", "got null"),
        ("hostile/top_level_string.json", "got a string"),
        ("hostile/form_encoded_body.txt", "not valid JSON"),
    ],
)
def test_400_bad_bodies_are_stored(bridge: RunningServer, db: psycopg.Connection, fixture: str, message: str) -> None:
    body = fixture_bytes(fixture)
    r = post(bridge, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_body" and message in r.json()["message"]
    (row,) = inbound(db)
    assert row["id"] == r.json()["id"]
    assert (row["status"], bytes(row["body"]), row["error"]["message"]) == ("invalid", body, r.json()["message"])
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


def test_400_too_deep(bridge: RunningServer, db: psycopg.Connection) -> None:
    r = post(bridge, b'{"a":' * 40 + b"1" + b"}" * 40)
    assert r.status_code == 400 and "deeper than 32 levels" in r.json()["message"]


def test_413_declared_and_streamed(bridge: RunningServer, db: psycopg.Connection) -> None:
    big = b'{"pad": "' + b"x" * 70000 + b'"}'
    r = post(bridge, big)
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while reading
        for _ in range(20):
            yield b"x" * 8192

    r2 = httpx.post(f"{bridge.base_url}/webhooks/alertmanager", content=chunks(), headers=AUTH, timeout=10)
    assert r2.status_code == 413
    rows = inbound(db)
    assert [(r["status"], r["body"]) for r in rows] == [("too_large", None), ("too_large", None)]
    assert rows[0]["body_size"] == len(big)


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("hostile/alerts_null.json", "alerts"),
        ("hostile/alerts_empty.json", "alerts"),
        ("hostile/wrong_types.json", ""),
    ],
)
def test_422_template_errors_are_stored_for_replay(
    bridge: RunningServer, db: psycopg.Connection, fixture: str, message: str
) -> None:
    r = post(bridge, fixture_bytes(fixture))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "template_error" and message in body["message"]
    assert f"alertbridge replay {body['id']}" in body["hint"]
    (row,) = inbound(db)
    assert row["status"] == "template_error" and row["error"]["message"] == body["message"]
    assert bytes(row["body"]) == fixture_bytes(fixture)


def test_event_errors_are_422_with_the_event_index(bridge: RunningServer, db: psycopg.Connection) -> None:
    r = post(
        bridge,
        json.dumps(
            {"events": [{"action": "create", "alias": "a", "message": "ok"}, {"alias": "b", "priority": "P9"}]}
        ).encode(),
        integration="generic",
    )
    assert r.status_code == 422
    assert r.json()["kind"] == "event" and r.json()["event"] == 1 and r.json()["field"] == "priority"
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)  # all or nothing


def test_a_payload_without_alias_is_the_senders_error(bridge: RunningServer, db: psycopg.Connection) -> None:
    """A generic webhook without `alias`: 422 payload_error telling the sender what its payload lacks, filed as a
    payload error (not a template error), nothing queued."""
    r = post(bridge, json.dumps({"message": "Backup failed"}).encode(), integration="generic")
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "payload_error" and body["field"] == "alias"
    assert body["message"].startswith("the payload has no 'alias'")
    assert "set 'alias' in the payload" in body["hint"] and "template" not in body["hint"]
    row = db.execute("SELECT status, current_status, error FROM inbound_events WHERE id = %s", (body["id"],)).fetchone()
    assert row[0] == row[1] == "payload_error"
    assert row[2]["kind"] == "payload" and row[2]["field"] == "alias"
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


def test_503_when_the_database_is_down(
    bridge: RunningServer, database_url: str, pg_admin_url: str, db: psycopg.Connection
) -> None:
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    db.close()
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
        try:
            r = post(bridge, fixture_bytes("alertmanager/01_firing_two_alerts.json"))
            assert r.status_code == 503
            assert r.headers["retry-after"] == "5"
            assert r.json()["error"] == "database_unavailable"
            assert httpx.get(f"{bridge.base_url}/readyz").status_code == 503
        finally:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    r = post(bridge, fixture_bytes("alertmanager/01_firing_two_alerts.json"))
    assert r.status_code == 202  # the pool recovers once the database is back
    assert httpx.get(f"{bridge.base_url}/readyz").status_code == 200


def test_secrets_never_reach_the_database_or_logs(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with run_bridge(make_config(emulator.base_url), database_url) as bridge:
        body = fixture_bytes("alertmanager/01_firing_two_alerts.json")
        post(bridge, body, headers={"Authorization": f"Bearer {TOKEN}", "X-Api-Key": "sneaky-secret-9"})
        post(bridge, body, headers={}, params={"token": TOKEN})
        httpx.post(f"{bridge.base_url}/webhooks/alertmanager", content=body, params={"token": "bad-guess-token"})
        from tests.harness import wait_for

        wait_for(
            lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone()[0] >= 2,  # type: ignore[index]
            what="deliveries",
        )
    dump = "\n".join(
        text
        for table in ("integrations", "inbound_events", "aliases", "outbox", "delivery_attempts")
        for (text,) in db.execute(f"SELECT row_to_json(t)::text FROM {table} t")
    )
    # What the bridge logged (the test's own httpx client logs the URLs it posts to: that is the sender, not us).
    logged = "\n".join(
        r.getMessage()
        for r in caplog.records
        if not (r.name.startswith(("httpx", "httpcore")) and "/webhooks/" in r.getMessage())
    )
    for secret in (TOKEN, "second-token-456", API_KEY, "sneaky-secret-9", "bad-guess-token"):
        assert secret not in dump
        assert secret not in logged
    assert "/webhooks/alertmanager" in logged  # the access log is there, without query strings


def test_cuts_are_recorded_and_returned(bridge: RunningServer, db: psycopg.Connection) -> None:
    r = post(bridge, fixture_bytes("hostile/long_message_5000.json"))
    assert r.status_code == 202, r.text
    event = r.json()["events"][0]
    assert any(cut["field"] == "message" for cut in event["cuts"])
    payload, cuts = db.execute("SELECT payload, cuts FROM outbox WHERE id = %s", (event["outbox_id"],)).fetchone()  # type: ignore[misc]
    assert len(payload["message"]) == 130 and payload["message"].endswith("…")
    assert cuts == event["cuts"]
