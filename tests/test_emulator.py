"""The OpsGenie/JSM emulator, driven over real HTTP (uvicorn in a thread, see tests/emulator_server.py)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from alertbridge.emulator import build_app
from tests.emulator_server import RunningEmulator, run_emulator

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"GenieKey {KEY}"}
JSM = "/jsm/ops/integration"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with run_emulator(api_keys={KEY}, processing_delay=0.02) as running:
        yield running


@pytest.fixture(scope="module")
def shared_client() -> Iterator[httpx.Client]:
    """One server for the many stateless validation cases (each server start/stop costs ~0.2 s)."""
    with run_emulator(api_keys={KEY}) as running, httpx.Client(base_url=running.base_url, headers=AUTH) as c:
        yield c


@pytest.fixture
def client(emu: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, headers=AUTH, timeout=5) as c:
        yield c


def poll_status(client: httpx.Client, request_id: str, prefix: str = "", timeout: float = 3.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"{prefix}/v2/alerts/requests/{request_id}")
        if r.status_code == 200:
            return r.json()["data"]
        assert r.status_code == 404 and r.headers["X-Opsgenie-Errortype"] == "RequestNotProcessed", r.text
        assert time.monotonic() < deadline, "request never processed"
        time.sleep(0.01)


def do(client: httpx.Client, path: str, body: dict | None = None, prefix: str = "", **params: str) -> dict:
    """POST, expect 202, wait until processed, return the request-status data."""
    r = client.post(prefix + path, json=body or {}, params=params)
    assert r.status_code == 202, r.text
    return poll_status(client, r.json()["requestId"], prefix)


def test_auth_required() -> None:
    with run_emulator(api_keys={KEY}) as emu, httpx.Client(base_url=emu.base_url) as c:
        for headers in (
            {},
            {"Authorization": "GenieKey wrong"},
            {"Authorization": f"Bearer {KEY}"},
            {"Authorization": "GenieKey"},
        ):
            r = c.post("/v2/alerts", json={"message": "m"}, headers=headers)
            assert r.status_code == 401
            body = r.json()
            assert body["message"] == "Could not authenticate"
            assert body["requestId"] == r.headers["X-Request-ID"] and "X-Response-Time" in r.headers
            assert "X-RateLimit-State" not in r.headers
        assert c.get(f"/v2/alerts/requests/{uuid.uuid4()}").status_code == 401
        assert emu.state.alerts == {}
    with run_emulator() as emu, httpx.Client(base_url=emu.base_url) as c:  # api_keys=None: any non-empty key
        assert c.post("/v2/alerts", json={"message": "m"}, headers={"Authorization": "GenieKey any"}).status_code == 202
        assert c.post("/v2/alerts", json={"message": "m"}).status_code == 401


def test_create_accepted_shape(client: httpx.Client) -> None:
    r = client.post("/v2/alerts", json={"message": "disk full"})
    assert r.status_code == 202
    body = r.json()
    assert body["result"] == "Request will be processed"
    assert isinstance(body["took"], float) and body["took"] < 1
    assert uuid.UUID(body["requestId"]).version == 4
    assert r.headers["X-Request-ID"] == body["requestId"]
    assert r.headers["X-RateLimit-State"] == "OK" and float(r.headers["X-Response-Time"]) >= 0


def test_request_status_pending_then_processed() -> None:
    with run_emulator(processing_delay=0.3) as emu, httpx.Client(base_url=emu.base_url, headers=AUTH) as c:
        rid = c.post("/v2/alerts", json={"message": "m", "alias": "a1"}).json()["requestId"]
        r = c.get(f"/v2/alerts/requests/{rid}")
        assert r.status_code == 404 and r.headers["X-Opsgenie-Errortype"] == "RequestNotProcessed"
        assert r.json()["requestId"] == r.headers["X-Request-ID"] and "message" in r.json()
        unknown = c.get(f"/v2/alerts/requests/{uuid.uuid4()}")
        assert unknown.status_code == 404 and "X-Opsgenie-Errortype" not in unknown.headers
        data = poll_status(c, rid)
        alert = emu.state.find_alert("a1", "alias")
        assert data["success"] is data["isSuccess"] is True
        assert data["action"] == "Create" and data["status"] == "Created alert"
        assert data["alertId"] == alert["id"] and data["alias"] == "a1" and data["processedAt"].endswith("Z")
        assert uuid.UUID(data["integrationId"])
        assert alert["priority"] == "P3" and alert["status"] == "open" and alert["tinyId"] == "1"
        no_alias = poll_status(c, c.post("/v2/alerts", json={"message": "m"}).json()["requestId"])
        assert no_alias["alias"] == no_alias["alertId"]  # alias omitted -> the alertId
        assert no_alias["integrationId"] == data["integrationId"]  # fixed per key


def test_processing_delay_zero_is_still_processed(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.state.processing_delay = 0
    assert do(client, "/v2/alerts", {"message": "m"})["isSuccess"] is True


def test_alias_dedup_then_new_alert_after_close(emu: RunningEmulator, client: httpx.Client) -> None:
    first = do(client, "/v2/alerts", {"message": "first", "alias": "dup", "description": "d1", "tags": ["t"]})
    second = do(client, "/v2/alerts", {"message": "second", "alias": "dup", "description": "d2"})
    assert first["alertId"] == second["alertId"] and second["isSuccess"] is True
    (alert,) = emu.state.list_alerts()
    assert alert["count"] == 2 and alert["message"] == "first" and alert["description"] == "d1"
    assert alert["lastOccurredAt"] >= alert["createdAt"]
    assert do(client, "/v2/alerts/dup/close", identifierType="alias")["isSuccess"] is True
    third = do(client, "/v2/alerts", {"message": "third", "alias": "dup"})
    assert third["alertId"] != first["alertId"]
    new, old = emu.state.list_alerts()  # newest first
    assert (new["id"], new["status"], new["count"], new["tinyId"]) == (third["alertId"], "open", 1, "2")
    assert old["status"] == "closed"
    again = do(client, "/v2/alerts/dup/close", identifierType="alias")  # closes the open (new) one only
    assert again["alertId"] == third["alertId"]
    assert do(client, "/v2/alerts/dup/close", identifierType="alias")["status"] == "Alert does not exist"


def test_actions_by_alias(emu: RunningEmulator, client: httpx.Client) -> None:
    payload = {
        "message": "m",
        "alias": "act",
        "details": {"k": "v"},
        "priority": "P1",
        "entity": "e",
        "responders": [{"type": "team", "name": "ops"}],
        "user": "u",
        "source": "s",
        "note": "n",
    }
    created = do(client, "/v2/alerts", payload)
    ack = do(client, "/v2/alerts/act/acknowledge", {"user": "alice"}, identifierType="alias")
    assert (ack["action"], ack["isSuccess"], ack["alertId"]) == ("Acknowledge", True, created["alertId"])
    got = client.get("/v2/alerts/act", params={"identifierType": "alias"}).json()["data"]
    assert got["acknowledged"] is True and got["report"]["acknowledgedBy"] == "alice"
    assert {k: got[k] for k in payload} == payload
    assert do(client, "/v2/alerts/act/unacknowledge", identifierType="alias")["action"] == "UnAcknowledge"
    note = do(client, "/v2/alerts/act/notes", {"note": "hello", "user": "bob"}, identifierType="alias")
    assert note["action"] == "AddNote" and note["isSuccess"] is True
    assert do(client, "/v2/alerts/act/close", {"note": "bye"}, identifierType="alias")["action"] == "Close"
    alert = emu.state.alerts[created["alertId"]]
    assert alert["status"] == "closed" and alert["acknowledged"] is False
    assert [(n["note"], n["user"]) for n in alert["notes"]] == [("hello", "bob"), ("bye", "")]
    tiny = client.get(f"/v2/alerts/{alert['tinyId']}", params={"identifierType": "tiny"}).json()["data"]
    assert tiny["id"] == alert["id"] == client.get(f"/v2/alerts/{alert['id']}").json()["data"]["id"]
    assert client.get("/v2/alerts/nope", params={"identifierType": "alias"}).status_code == 404


def test_close_unknown_alias_fails_in_request_status(client: httpx.Client) -> None:
    data = do(client, "/v2/alerts/never-created/close", identifierType="alias")
    assert (data["isSuccess"], data["success"], data["status"]) == (False, False, "Alert does not exist")
    assert data["action"] == "Close" and data["alias"] == "never-created"


def test_identifier_type_defaults_to_id(client: httpx.Client) -> None:
    created = do(client, "/v2/alerts", {"message": "m", "alias": "plain"})
    assert do(client, "/v2/alerts/plain/close")["status"] == "Alert does not exist"  # "plain" read as an id
    assert do(client, f"/v2/alerts/{created['alertId']}/close")["isSuccess"] is True


def test_create_is_processed_before_a_following_close(client: httpx.Client) -> None:
    client.post("/v2/alerts", json={"message": "m", "alias": "fast"})
    rid = client.post("/v2/alerts/fast/close", params={"identifierType": "alias"}).json()["requestId"]
    assert poll_status(client, rid)["isSuccess"] is True  # arrival order is kept


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": 5}, "message"),
        ({"message": "x" * 131}, "message"),
        ({"message": "m", "priority": "P6"}, "priority"),
        ({"message": "m", "alias": "a" * 513}, "alias"),
        ({"message": "m", "description": "d" * 15001}, "description"),
        ({"message": "m", "tags": ["t"] * 21}, "tags"),
        ({"message": "m", "tags": ["t" * 51]}, "tags"),
        ({"message": "m", "actions": ["a"] * 11}, "actions"),
        ({"message": "m", "details": {"k": 1}}, "details"),
        ({"message": "m", "details": {"k": "v" * 8000}}, "details"),
        ({"message": "m", "source": "s" * 101}, "source"),
        ({"message": "m", "note": "n" * 25001}, "note"),
        ({"message": "m", "responders": [{"name": "ops"}]}, "responders"),
        ({"message": "m", "visibleTo": [{"type": "schedule", "name": "x"}]}, "visibleTo"),
        ({"message": "m", "responders": [{"type": "team", "name": str(i)} for i in range(51)]}, "responders"),
    ],
)
def test_create_validation_422(shared_client: httpx.Client, body: dict, field: str) -> None:
    r = shared_client.post("/v2/alerts", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["errors"] and r.json()["requestId"] == r.headers["X-Request-ID"]


def test_validation_edges(emu: RunningEmulator, client: httpx.Client) -> None:
    emoji = "🔥" * 130  # 130 characters, 520 bytes: accepted
    assert do(client, "/v2/alerts", {"message": emoji, "alias": "e", "details": {"k": "v" * 7999}})["isSuccess"]
    assert emu.state.find_alert("e", "alias")["message"] == emoji
    bad = client.post("/v2/alerts", content=b'{"message": ', headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "JSON" in bad.json()["message"]
    assert client.post("/v2/alerts", json=["message"]).status_code == 422
    note = client.post("/v2/alerts/e/notes", json={"user": "u"}, params={"identifierType": "alias"})
    assert note.status_code == 422 and "note" in note.json()["errors"]
    assert client.post("/v2/alerts/e/close", params={"identifierType": "x"}).status_code == 422
    assert client.post("/v2/alerts/e/close", content=b"", params={"identifierType": "alias"}).status_code == 202
    unknown = client.post("/v2/nothing")
    assert unknown.status_code == 404 and "message" in unknown.json()


def test_jsm_prefix(emu: RunningEmulator, client: httpx.Client) -> None:
    created = do(client, "/v2/alerts", {"message": "m", "alias": "jsm-1"}, prefix=JSM)
    closed = do(client, "/v2/alerts/jsm-1/close", prefix=JSM, identifierType="alias")
    assert created["isSuccess"] and closed["isSuccess"] and closed["alertId"] == created["alertId"]
    listed = client.get(JSM + "/v2/alerts").json()["data"]
    assert [a["status"] for a in listed] == ["closed"]
    first = emu.state.requests[0]
    assert (first["prefix"], first["path"], first["raw_path"]) == (JSM, "/v2/alerts", JSM + "/v2/alerts")
    assert client.post(JSM + "/v2/alerts", json={"message": "m"}, headers={"Authorization": ""}).status_code == 401


def test_percent_encoded_alias(emu: RunningEmulator, client: httpx.Client) -> None:
    alias = "svc:db/primary ü 🔥?#%"
    created = do(client, "/v2/alerts", {"message": "m", "alias": alias})
    encoded = quote(alias, safe="")
    got = client.get(f"/v2/alerts/{encoded}", params={"identifierType": "alias"})
    assert got.status_code == 200 and got.json()["data"]["id"] == created["alertId"]
    closed = do(client, f"/v2/alerts/{encoded}/close", identifierType="alias")
    assert closed["isSuccess"] is True and closed["alias"] == alias
    entry = [e for e in emu.state.requests if e["path"].endswith("/close")][0]
    assert entry["path"] == f"/v2/alerts/{alias}/close" and entry["query"] == {"identifierType": "alias"}
    assert entry["raw_path"] == f"/v2/alerts/{encoded}/close"


def test_fault_429_then_normal(emu: RunningEmulator, client: httpx.Client) -> None:
    r = client.post("/_control/faults", json={"status": 429, "count": 2})
    assert r.status_code == 200 and r.json()["faults"][0]["count"] == 2
    statuses = []
    for _ in range(2):
        r = client.post("/v2/alerts", json={"message": "m", "alias": "rl"})
        statuses.append(r.status_code)
        assert r.headers["X-RateLimit-State"] == "THROTTLED" and r.headers["X-RateLimit-Reason"] == "ACCOUNT"
        assert r.headers["X-RateLimit-Period-In-Sec"] == "1" and r.json()["requestId"] == r.headers["X-Request-ID"]
        assert client.get("/v2/alerts").status_code == 200  # GET is not faulted by default
    assert statuses == [429, 429]
    assert do(client, "/v2/alerts", {"message": "m", "alias": "rl"})["isSuccess"] is True
    (alert,) = emu.state.list_alerts()
    assert alert["count"] == 1  # throttled requests were not accepted
    assert [e["status"] for e in emu.state.requests][:5] == [429, 200, 429, 200, 202]
    assert client.get("/_control/faults").json() == {"faults": []}


def test_fault_503_custom_and_get(client: httpx.Client) -> None:
    client.post("/_control/faults", json={"status": 503, "count": 1})
    client.post(
        "/_control/faults",
        json={
            "status": 502,
            "count": 1,
            "methods": ["GET"],
            "headers": {"X-Extra": "1"},
            "body": {"message": "bad gateway"},
        },
    )
    r = client.get("/v2/alerts")  # the GET-only fault matches first for a GET
    assert (r.status_code, r.headers["X-Extra"], r.json()) == (502, "1", {"message": "bad gateway"})
    r = client.post("/v2/alerts", json={"message": "m"})
    assert r.status_code == 503 and "X-RateLimit-State" not in r.headers and "message" in r.json()
    assert client.post("/v2/alerts", json={"message": "m"}).status_code == 202
    client.post("/_control/faults", json={"status": 500, "count": 5})
    assert client.delete("/_control/faults").json() == {"faults": []}
    assert client.post("/v2/alerts", json={"message": "m"}).status_code == 202
    assert client.post("/_control/faults", json={"count": 1}).status_code == 400


def test_fault_hang_makes_client_time_out(emu: RunningEmulator, client: httpx.Client) -> None:
    client.post("/_control/faults", json={"hang": 2, "count": 1})
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v2/alerts", json={"message": "slow", "alias": "h"}, timeout=0.3)
    assert time.monotonic() - started < 1.5
    r = client.post("/v2/alerts", json={"message": "fast"}, timeout=1)
    assert r.status_code == 202
    assert [e["json"]["message"] for e in emu.state.requests] == ["slow", "fast"]


def test_request_log_hides_key_and_records_traceparent(emu: RunningEmulator, client: httpx.Client) -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = client.post("/v2/alerts", json={"message": "m"}, headers={"traceparent": tp, "X-Custom": "c"})
    client.post("/v2/alerts", json={"message": "m"}, headers={"Authorization": f"Basic {KEY}"})
    log = client.get("/_control/requests")
    assert KEY not in log.text and KEY not in r.text
    first, second = log.json()["requests"]
    assert first["headers"]["authorization"] == "GenieKey ***" and second["headers"]["authorization"] == "***"
    assert first["traceparent"] == tp and first["headers"]["x-custom"] == "c"
    assert (first["seq"], first["method"], first["path"], first["prefix"]) == (1, "POST", "/v2/alerts", "")
    assert (first["status"], first["request_id"], first["json"]) == (202, r.json()["requestId"], {"message": "m"})
    assert second["status"] == 401 and second["traceparent"] is None
    assert json.loads(json.dumps(emu.state.requests)) == log.json()["requests"]


def test_list_query_and_control_alerts(emu: RunningEmulator, client: httpx.Client) -> None:
    for alias in ("l1", "l2", "l3"):
        do(client, "/v2/alerts", {"message": alias, "alias": alias})
    do(client, "/v2/alerts/l2/close", identifierType="alias")
    names = lambda r: [a["alias"] for a in r.json()["data"]]  # noqa: E731
    assert names(client.get("/v2/alerts")) == ["l3", "l2", "l1"]
    assert names(client.get("/v2/alerts", params={"query": "status:open"})) == ["l3", "l1"]
    assert names(client.get("/v2/alerts", params={"query": "status:closed"})) == ["l2"]
    assert names(client.get("/v2/alerts", params={"query": "alias:l1 AND status:open"})) == ["l1"]
    assert names(client.get("/v2/alerts", params={"limit": "2"})) == ["l3", "l2"]
    assert client.get("/v2/alerts", params={"query": "owner:x"}).status_code == 422
    with httpx.Client(base_url=emu.base_url) as anonymous:
        assert names(anonymous.get("/_control/alerts", params={"query": "status:open"})) == ["l3", "l1"]
        assert anonymous.get("/_control").status_code == 200
        assert anonymous.get("/_control/nothing").status_code == 404


def test_reset(emu: RunningEmulator, client: httpx.Client) -> None:
    rid = client.post("/v2/alerts", json={"message": "m"}).json()["requestId"]
    emu.wait_idle()
    client.post("/_control/faults", json={"status": 500, "count": 3})
    assert client.post("/_control/reset").json() == {"reset": True}
    assert (emu.state.alerts, emu.state.requests, emu.state.faults, emu.state.statuses) == ({}, [], [], {})
    r = client.get(f"/v2/alerts/requests/{rid}")
    assert r.status_code == 404 and "X-Opsgenie-Errortype" not in r.headers
    assert client.post("/v2/alerts", json={"message": "m"}).status_code == 202


@pytest.mark.anyio
async def test_mounted_inside_another_app(anyio_backend: str) -> None:
    emulator = build_app(processing_delay=0)
    outer = Starlette(routes=[Mount("/emulator", app=emulator)])  # the sub-app's lifespan never runs
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge", headers=AUTH) as c:
        rid = (await c.post("/emulator/v2/alerts", json={"message": "m", "alias": "a/b"})).json()["requestId"]
        r = await c.post(f"/emulator{JSM}/v2/alerts/{quote('a/b', safe='')}/close", params={"identifierType": "alias"})
        for request_id in (rid, r.json()["requestId"]):
            for _ in range(100):
                status = await c.get(f"/emulator/v2/alerts/requests/{request_id}")
                if status.status_code == 200:
                    break
                await anyio.sleep(0.01)
            assert status.json()["data"]["isSuccess"] is True
        log = (await c.get("/emulator/_control/requests")).json()["requests"]
        assert [(e["prefix"], e["path"]) for e in log[:2]] == [("", "/v2/alerts"), (JSM, "/v2/alerts/a/b/close")]
    assert emulator.state.emulator.list_alerts()[0]["status"] == "closed"
