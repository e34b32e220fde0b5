import asyncio
import email.utils
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route

from alertbridge.opsgenie import (
    MAX_RESPONSE_BYTES,
    Client,
    Outcome,
    Request,
    RequestStatus,
    alerts_url,
    build_request,
    build_status_request,
    classify,
    classify_exception,
    parse_request_status,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---- build_request --------------------------------------------------------------------------

BASES = {
    "us": ("https://api.opsgenie.com", "https://api.opsgenie.com/v2/alerts"),
    "eu": ("https://api.eu.opsgenie.com", "https://api.eu.opsgenie.com/v2/alerts"),
    "jsm": ("https://api.atlassian.com/jsm/ops/integration", "https://api.atlassian.com/jsm/ops/integration/v2/alerts"),
    "custom": ("http://127.0.0.1:8900/og/", "http://127.0.0.1:8900/og/v2/alerts"),
}
FIELDS = {
    "message": "Disk full",
    "description": "d",
    "user": "u",
    "source": "s",
    "note": "n",
    "tags": ["a"],
    "priority": "P2",
}
ACTIONS = [
    (
        "create",
        "",
        {
            "message": "Disk full",
            "alias": "am:x",
            "description": "d",
            "user": "u",
            "source": "s",
            "note": "n",
            "tags": ["a"],
            "priority": "P2",
        },
    ),
    ("acknowledge", "/am%3Ax/acknowledge?identifierType=alias", {"user": "u", "source": "s", "note": "n"}),
    ("close", "/am%3Ax/close?identifierType=alias", {"user": "u", "source": "s", "note": "n"}),
    ("note", "/am%3Ax/notes?identifierType=alias", {"note": "n", "user": "u", "source": "s"}),
]


@pytest.mark.parametrize("region", list(BASES))
@pytest.mark.parametrize(("action", "suffix", "body"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_build_request(region: str, action: str, suffix: str, body: dict[str, Any]) -> None:
    base, alerts = BASES[region]
    request = build_request(base, action, "am:x", FIELDS)
    assert request == Request("POST", alerts + suffix, body, {"Content-Type": "application/json"})
    assert list(request.json or {}) == list(body)  # key order
    assert alerts_url(base) == alerts


def test_create_body_order_is_message_alias_then_fields_as_given() -> None:
    request = build_request(
        "https://x",
        "create",
        "a1",
        {"tags": ["t"], "alias": "ignored", "message": "m", "details": {"k": "v"}, "entity": None},
    )
    assert list((request.json or {}).items()) == [
        ("message", "m"),
        ("alias", "a1"),
        ("tags", ["t"]),
        ("details", {"k": "v"}),
    ]


def test_actions_send_only_present_fields() -> None:
    assert build_request("https://x", "close", "a", {}).json == {}
    assert build_request("https://x", "acknowledge", "a", {"message": "m", "user": None, "source": "s"}).json == {
        "source": "s"
    }
    assert build_request("https://x", "note", "a", {"note": "hello"}).json == {"note": "hello"}


@pytest.mark.parametrize(
    ("alias", "encoded"),
    [
        ("am:abc", "am%3Aabc"),
        ("a/b", "a%2Fb"),
        ("a b", "a%20b"),
        ("a?b", "a%3Fb"),
        ("a#b", "a%23b"),
        ("100%", "100%25"),
        ("ü-€", "%C3%BC-%E2%82%AC"),
        ("a.b_c~d-e", "a.b_c~d-e"),
    ],
)
def test_alias_is_percent_encoded_in_the_path(alias: str, encoded: str) -> None:
    request = build_request("https://api.opsgenie.com", "close", alias, {})
    assert request.url == f"https://api.opsgenie.com/v2/alerts/{encoded}/close?identifierType=alias"
    assert httpx.URL(request.url).path == f"/v2/alerts/{alias}/close"  # decodes back to the alias
    assert build_request("https://x", "create", alias, {"message": "m"}).json == {"message": "m", "alias": alias}


@pytest.mark.parametrize(
    ("traceparent", "kept"),
    [
        (TRACEPARENT, True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", True),
        (None, False),
        ("", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),  # upper case
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", False),  # short trace id
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),  # zero trace id
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),  # zero parent id
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),  # forbidden version
        (TRACEPARENT + "\r\nX-Evil: 1", False),
    ],
)
def test_traceparent_kept_or_dropped(traceparent: str | None, kept: bool) -> None:
    headers = build_request("https://x", "create", "a", {"message": "m"}, traceparent=traceparent).headers
    assert headers == (
        {"Content-Type": "application/json", "traceparent": traceparent}
        if kept
        else {"Content-Type": "application/json"}
    )


def test_build_request_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown action 'delete'"):
        build_request("https://x", "delete", "a", {})
    with pytest.raises(ValueError, match="alias"):
        build_request("https://x", "close", "", {})
    with pytest.raises(ValueError, match="note"):
        build_request("https://x", "note", "a", {"user": "u"})


def test_build_status_request() -> None:
    assert build_status_request("https://api.eu.opsgenie.com/", "ab-12/x") == Request(
        "GET", "https://api.eu.opsgenie.com/v2/alerts/requests/ab-12%2Fx", None, {}
    )
    jsm = build_status_request("https://api.atlassian.com/jsm/ops/integration", "r1")
    assert jsm.url == "https://api.atlassian.com/jsm/ops/integration/v2/alerts/requests/r1"


# ---- classify -------------------------------------------------------------------------------

NOW = 1_700_000_000.0
ACCEPTED = b'{"result":"Request will be processed","took":0.302,"requestId":"43a29c5c-3dbf-4fa4-9c26-f4f71023e120"}'
ERR_422 = json.dumps(
    {
        "message": "Request body is not processable. Please check the errors.",
        "errors": {"message": "Message can not be empty"},
        "took": 0.0,
        "requestId": "r422",
    }
).encode()
CLASSIFY = [
    # (id, status, headers, body, action, expected)
    ("200", 200, {}, b"", "create", Outcome("delivered", "200 ok")),
    (
        "202 requestId",
        202,
        {},
        ACCEPTED,
        "create",
        Outcome("delivered", "202 accepted", None, "43a29c5c-3dbf-4fa4-9c26-f4f71023e120"),
    ),
    (
        "202 X-Request-ID",
        202,
        {"x-request-id": "hdr-1"},
        b"",
        "close",
        Outcome("delivered", "202 accepted", None, "hdr-1"),
    ),
    (
        "400",
        400,
        {},
        b'{"message":"Could not parse JSON","took":0.0}',
        "create",
        Outcome("rejected", "400 bad request: Could not parse JSON"),
    ),
    (
        "401",
        401,
        {"X-Request-ID": "r401"},
        b'{"message":"Could not authenticate","took":0.0}',
        "create",
        Outcome("config_error", "401 unauthorized: Could not authenticate", None, "r401"),
    ),
    (
        "402",
        402,
        {},
        b'{"message":"Not in your plan"}',
        "create",
        Outcome("rejected", "402 payment required: Not in your plan"),
    ),
    (
        "403",
        403,
        {},
        b'{"message":"You do not have the right"}',
        "close",
        Outcome("config_error", "403 forbidden: You do not have the right"),
    ),
    (
        "404 create",
        404,
        {},
        b'{"message":"No such endpoint"}',
        "create",
        Outcome("rejected", "404 not found: No such endpoint"),
    ),
    (
        "404 close",
        404,
        {},
        b'{"message":"Alert does not exist"}',
        "close",
        Outcome("rejected", "404 alert does not exist"),
    ),
    ("404 acknowledge", 404, {}, b"", "acknowledge", Outcome("rejected", "404 alert does not exist")),
    ("404 note", 404, {}, b"", "note", Outcome("rejected", "404 alert does not exist")),
    (
        "422 errors",
        422,
        {},
        ERR_422,
        "create",
        Outcome("rejected", "422 rejected: message: Message can not be empty", None, "r422"),
    ),
    (
        "422 two errors",
        422,
        {},
        b'{"message":"m","errors":{"message":"empty","priority":"bad"}}',
        "create",
        Outcome("rejected", "422 rejected: message: empty; priority: bad"),
    ),
    ("409 other 4xx", 409, {}, b'{"message":"busy"}', "close", Outcome("rejected", "409 conflict: busy")),
    (
        "429 Retry-After seconds",
        429,
        {"Retry-After": "7", "X-RateLimit-Period-In-Sec": "60", "X-RateLimit-Reason": "ACCOUNT"},
        b"",
        "create",
        Outcome("retry", "429 rate limited (ACCOUNT)", 7.0),
    ),
    (
        "429 Retry-After date",
        429,
        {"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)},
        b"",
        "create",
        Outcome("retry", "429 rate limited", 30.0),
    ),
    (
        "429 Retry-After past date",
        429,
        {"Retry-After": email.utils.formatdate(NOW - 30, usegmt=True)},
        b"",
        "create",
        Outcome("retry", "429 rate limited", 0.0),
    ),
    (
        "429 period",
        429,
        {"x-ratelimit-period-in-sec": "1", "X-RateLimit-State": "THROTTLED", "X-RateLimit-Reason": "ACCOUNT"},
        b"",
        "close",
        Outcome("retry", "429 rate limited (ACCOUNT)", 1.0),
    ),
    ("429 none", 429, {}, b"", "create", Outcome("retry", "429 rate limited")),
    (
        "429 garbage Retry-After",
        429,
        {"Retry-After": "soon", "X-RateLimit-Period-In-Sec": "60"},
        b"",
        "create",
        Outcome("retry", "429 rate limited", 60.0),
    ),
    ("500", 500, {}, b"<html>oops</html>", "create", Outcome("retry", "500 server error")),
    (
        "501",
        501,
        {},
        b'{"message":"Not implemented"}',
        "create",
        Outcome("rejected", "501 not implemented: Not implemented"),
    ),
    ("502", 502, {}, b"", "close", Outcome("retry", "502 server error")),
    ("503 Retry-After", 503, {"Retry-After": "120"}, b"", "create", Outcome("retry", "503 server error", 120.0)),
    (
        "non-JSON body",
        400,
        {},
        b"<html>\n<b>Bad   request</b>\n</html>",
        "create",
        Outcome("rejected", "400 bad request: <html> <b>Bad request</b> </html>"),
    ),
    ("empty body", 422, {}, b"", "create", Outcome("rejected", "422 rejected: (no body)")),
    ("JSON array body", 400, {}, b"[1,2]", "create", Outcome("rejected", "400 bad request: [1,2]")),
    ("invalid UTF-8", 400, {}, b"\xff\xfe", "create", Outcome("rejected", "400 bad request: \ufffd\ufffd")),
    (
        "redirect",
        301,
        {"Location": "https://elsewhere/"},
        b"",
        "create",
        Outcome("config_error", "301 redirect to https://elsewhere/: check the target base_url"),
    ),
]


@pytest.mark.parametrize(
    ("status", "headers", "body", "action", "expected"), [c[1:] for c in CLASSIFY], ids=[c[0] for c in CLASSIFY]
)
def test_classify(status: int, headers: dict[str, str], body: bytes, action: str, expected: Outcome) -> None:
    assert classify(status, headers, body, action, now=NOW) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"x" * 10_000_000,
        b'{"message": "' + b"m" * 100_000 + b'"}',
        b"[" * 100_000,
        json.dumps({"message": "m", "errors": {f"field{i}": "bad " * 50 for i in range(100)}}).encode(),
    ],
    ids=["huge text", "huge JSON", "deep JSON", "many errors"],
)
def test_classify_caps_the_reason_and_never_raises(body: bytes) -> None:
    outcome = classify(422, {}, body, "create")
    assert outcome.kind == "rejected"
    assert len(outcome.reason) <= 500


def test_classify_exception() -> None:
    request = httpx.Request("POST", "https://api.opsgenie.com/v2/alerts")
    assert classify_exception(httpx.ReadTimeout("timed out", request=request), 10.0) == Outcome(
        "retry", "timeout after 10.0s"
    )
    assert classify_exception(httpx.ConnectTimeout("x")) == Outcome("retry", "timeout (ConnectTimeout)")
    assert classify_exception(httpx.ConnectError("[Errno 111] Connection refused")) == Outcome(
        "retry", "connection error: [Errno 111] Connection refused"
    )
    assert classify_exception(httpx.RemoteProtocolError("")) == Outcome(
        "retry", "connection error: RemoteProtocolError"
    )
    assert classify_exception(ConnectionResetError(104, "Connection reset by peer")) == Outcome(
        "retry", "connection error: [Errno 104] Connection reset by peer"
    )
    assert classify_exception(RuntimeError("boom")) == Outcome("retry", "error: RuntimeError: boom")


# ---- request status -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (
            404,
            {"X-Opsgenie-Errortype": "RequestNotProcessed"},
            b'{"message":"Request not processed yet"}',
            RequestStatus("pending"),
        ),
        (
            200,
            {},
            b'{"data":{"success":true,"action":"Create","processedAt":"2017-05-24T14:24:20.844Z","integrationId":"c9cec2cb",'
            b'"isSuccess":true,"status":"Created alert","alertId":"8743a1f2","alias":"am:x"},"took":0.022,"requestId":"r"}',
            RequestStatus("processed", True, "Created alert", "8743a1f2", "am:x"),
        ),
        (
            200,
            {},
            b'{"data":{"success":false,"action":"Close","isSuccess":false,"status":"Alert does not exist","alertId":"","alias":"am:x"},"took":0.1,"requestId":"r"}',
            RequestStatus("processed", False, "Alert does not exist", None, "am:x"),
        ),
        (404, {}, b'{"message":"Could not find request"}', RequestStatus("unknown")),
        (
            200,
            {},
            b'{"action":"Create","processedAt":"2024-01-01T00:00:00Z","integrationId":"i","isSuccess":true,"status":"Created alert","alertId":"a1","alias":"x"}',
            RequestStatus("processed", True, "Created alert", "a1", "x"),
        ),
        (200, {}, b'{"data":{"action":"Create"}}', RequestStatus("unknown")),
        (200, {}, b"not json", RequestStatus("unknown")),
        (500, {}, b"", RequestStatus("unknown")),
    ],
    ids=[
        "pending",
        "processed success",
        "processed failure",
        "unknown 404",
        "JSM unwrapped",
        "no isSuccess",
        "non-JSON",
        "500",
    ],
)
def test_parse_request_status(status: int, headers: dict[str, str], body: bytes, expected: RequestStatus) -> None:
    assert parse_request_status(status, headers, body) == expected


# ---- Client against a real HTTP server ------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def endpoint(self, request: StarletteRequest) -> StarletteResponse:
        body = await request.body()
        raw_target = request.scope["raw_path"].decode() + ("?" + request.url.query if request.url.query else "")
        self.requests.append(
            {"method": request.method, "target": raw_target, "headers": dict(request.headers), "body": body}
        )
        path = request.url.path
        if path.startswith("/slow/"):
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(0.05)
            finally:
                self.in_flight -= 1
        elif path.startswith("/hang/"):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not await request.is_disconnected():
                await asyncio.sleep(0.02)
        elif path.startswith("/big/"):
            return StarletteResponse(b"x" * (MAX_RESPONSE_BYTES * 4), status_code=200)
        elif path.startswith("/unauthorized/"):
            return JSONResponse(
                {"message": "Could not authenticate", "took": 0.0, "requestId": "r401"}, status_code=401
            )
        return JSONResponse(
            {"result": "Request will be processed", "took": 0.01, "requestId": "req-1"}, status_code=202
        )


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    app = Starlette(routes=[Route("/{path:path}", recorder.endpoint, methods=["GET", "POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", ws="none", http="h11", timeout_graceful_shutdown=1
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not uv.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", recorder
    uv.should_exit = True
    thread.join(5)
    sock.close()


@pytest.mark.anyio
async def test_client_sends_genie_key_traceparent_and_json(server: tuple[str, Recorder]) -> None:
    base, recorder = server
    request = build_request(
        base + "/og", "create", "am:x/1", {"message": "Disk full", "details": {"ü": "€"}}, traceparent=TRACEPARENT
    )
    async with Client(timeout=5.0) as client:
        response = await client.send(request, "key-123")
    assert response.status == 202
    assert json.loads(response.body) == {"result": "Request will be processed", "took": 0.01, "requestId": "req-1"}
    assert response.headers["content-type"] == "application/json"
    assert 0 < response.elapsed < 5
    seen = recorder.requests[-1]
    assert seen["method"] == "POST"
    assert seen["target"] == "/og/v2/alerts"
    assert seen["headers"]["authorization"] == "GenieKey key-123"
    assert seen["headers"]["traceparent"] == TRACEPARENT
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["user-agent"].startswith("alertbridge/")
    assert json.loads(seen["body"]) == {"message": "Disk full", "alias": "am:x/1", "details": {"ü": "€"}}
    assert "key-123" not in repr(request) + repr(response)
    assert classify(response.status, response.headers, response.body, "create") == Outcome(
        "delivered", "202 accepted", None, "req-1"
    )


@pytest.mark.anyio
async def test_client_action_and_error_response(server: tuple[str, Recorder]) -> None:
    base, recorder = server
    async with Client(timeout=5.0) as client:
        close = await client.send(build_request(base, "close", "a b", {"note": "resolved"}), "k")
        status = await client.send(build_status_request(base, "req-1"), "k")
        denied = await client.send(build_request(base + "/unauthorized", "create", "a", {"message": "m"}), "bad-key")
    assert close.status == 202
    assert recorder.requests[-3]["target"] == "/v2/alerts/a%20b/close?identifierType=alias"
    assert json.loads(recorder.requests[-3]["body"]) == {"note": "resolved"}
    assert (recorder.requests[-2]["method"], recorder.requests[-2]["target"], recorder.requests[-2]["body"]) == (
        "GET",
        "/v2/alerts/requests/req-1",
        b"",
    )
    assert status.status == 202
    assert classify(denied.status, denied.headers, denied.body, "create") == Outcome(
        "config_error", "401 unauthorized: Could not authenticate", None, "r401"
    )


@pytest.mark.anyio
async def test_client_bounds_requests_in_flight(server: tuple[str, Recorder]) -> None:
    base, recorder = server
    recorder.max_in_flight = 0
    async with Client(timeout=5.0, max_in_flight=2) as client:
        request = build_request(base + "/slow", "create", "a", {"message": "m"})
        responses = await asyncio.gather(*(client.send(request, "k") for _ in range(10)))
    assert [r.status for r in responses] == [202] * 10
    assert recorder.max_in_flight == 2


@pytest.mark.anyio
async def test_client_timeout_raises_httpx_timeout(server: tuple[str, Recorder]) -> None:
    base, _ = server
    async with Client(timeout=0.2) as client:
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException) as caught:
            await client.send(build_request(base + "/hang", "create", "a", {"message": "m"}), "secret-key")
    assert time.monotonic() - started < 2
    assert "secret-key" not in str(caught.value)
    assert classify_exception(caught.value, 0.2) == Outcome("retry", "timeout after 0.2s")


@pytest.mark.anyio
async def test_client_caps_the_response_body(server: tuple[str, Recorder]) -> None:
    base, _ = server
    async with Client(timeout=5.0) as client:
        response = await client.send(build_status_request(base + "/big", "r"), "k")
    assert response.status == 200
    assert len(response.body) == MAX_RESPONSE_BYTES


@pytest.mark.anyio
async def test_client_connection_refused() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    async with Client(timeout=2.0) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.send(build_request(f"http://127.0.0.1:{port}", "create", "a", {"message": "m"}), "k")
    assert classify_exception(caught.value).reason.startswith("connection error: ")


@pytest.mark.anyio
async def test_client_refuses_an_api_key_that_would_leak_into_errors() -> None:
    async with Client(transport=httpx.MockTransport(lambda r: httpx.Response(202))) as client:
        for key in ("", "key\r\nX-Evil: 1", "key with space"):
            with pytest.raises(ValueError) as caught:
                await client.send(build_request("http://x", "create", "a", {"message": "m"}), key)
            assert key not in str(caught.value) or key == ""


@pytest.mark.anyio
async def test_client_with_a_custom_transport_overrides_authorization() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"requestId": "r"})

    request = Request(
        "POST",
        "http://x/v2/alerts",
        {"message": "m"},
        {"Content-Type": "application/json", "authorization": "GenieKey smuggled"},
    )
    client = Client(transport=httpx.MockTransport(handler))
    try:
        response = await client.send(request, "real")
        await client.send(request, Secret("from-config"))  # TargetConfig.api_key can be passed as is
    finally:
        await client.aclose()
    assert response.status == 202
    assert seen[0].headers.get_list("authorization") == ["GenieKey real"]
    assert seen[1].headers.get_list("authorization") == ["GenieKey from-config"]
