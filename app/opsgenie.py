"""OpsGenie Alert API v2 / JSM Ops integration events: build requests, classify responses, send.

Pure functions first (`build_request`, `classify`, `parse_request_status`), the httpx client last.
The API key never appears in a `Request`, a `Response`, an `Outcome` or an exception: `Client.send`
adds `Authorization: GenieKey <key>` at the last moment.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import json
import re
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import sniffio  # noqa: F401  (httpx picks the async backend through it; keep it importable)
from starlette.datastructures import Secret

from alertbridge.http1 import Http1Client

ACTIONS = ("create", "acknowledge", "close", "note")
MAX_RESPONSE_BYTES = 64 * 1024
MAX_REASON_CHARS = 500
_ACTION_PATHS = {"acknowledge": "acknowledge", "close": "close", "note": "notes"}
_ACTION_FIELDS = ("user", "source", "note")
_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def _version() -> str:
    try:
        return metadata.version("alertbridge")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"alertbridge/{_version()}"


# --------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    json: dict[str, Any] | None
    headers: dict[str, str]  # never Authorization: the client adds it when sending


def alerts_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/v2/alerts"


def valid_traceparent(value: str | None) -> str | None:
    """The W3C traceparent if well formed (version 00-fe, non-zero ids), else None."""
    if value is None or not _TRACEPARENT_RE.match(value):
        return None
    version, trace_id, parent_id, _flags = value.split("-")
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return value


def _headers(traceparent: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if (checked := valid_traceparent(traceparent)) is not None:
        headers["traceparent"] = checked
    return headers


def build_request(
    base_url: str,
    action: str,
    alias: str,
    fields: Mapping[str, Any],
    *,
    traceparent: str | None = None,
) -> Request:
    """The HTTP request for one action on the alert `alias`.

    `fields` are already validated and limited by the caller. For `create`, the body is
    `message`, `alias`, then the other fields in their order (a stray `alias` in `fields` is
    ignored). For `acknowledge`/`close` only `user`, `source` and `note` are sent; `note` sends
    `note` (required), `user` and `source`. Fields whose value is None are left out.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    if not alias:
        raise ValueError("alias must not be empty")
    url = alerts_url(base_url)
    if action == "create":
        body: dict[str, Any] = {}
        if fields.get("message") is not None:
            body["message"] = fields["message"]
        body["alias"] = alias
        body.update((k, v) for k, v in fields.items() if k not in ("message", "alias") and v is not None)
        return Request("POST", url, body, _headers(traceparent))
    if action == "note" and not fields.get("note"):
        raise ValueError("a note action needs a non-empty 'note' field")
    body = {k: fields[k] for k in _ACTION_FIELDS if fields.get(k) is not None}
    if action == "note":
        body = {"note": body.pop("note"), **body}
    path = f"{url}/{quote(alias, safe='')}/{_ACTION_PATHS[action]}?identifierType=alias"
    return Request("POST", path, body, _headers(traceparent))


def build_heartbeat_ping(base_url: str, name: str) -> Request:
    """Ping a heartbeat (CONTRACT §6; its own rate-limit domain): ``GET /v2/heartbeats/{name}/ping``."""
    if not name:
        raise ValueError("the heartbeat needs a name")
    return Request("GET", f"{base_url.rstrip('/')}/v2/heartbeats/{quote(name, safe='')}/ping", None, {})


def build_status_request(base_url: str, request_id: str) -> Request:
    """GET the processing status of an accepted (202) request."""
    if not request_id:
        raise ValueError("request_id must not be empty")
    return Request("GET", f"{alerts_url(base_url)}/requests/{quote(request_id, safe='')}", None, {})


# --------------------------------------------------------------------------------------------
# Responses


@dataclass(frozen=True)
class Outcome:
    kind: str  # "delivered" | "retry" | "config_error" | "rejected"
    reason: str
    retry_after: float | None = None
    request_id: str | None = None


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _json_object(body: bytes) -> dict[str, Any] | None:
    if not body or len(body) > MAX_RESPONSE_BYTES:
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _clip(text: str, limit: int = MAX_REASON_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: str | None, now: float) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    return seconds if seconds >= 0 and seconds != float("inf") else None


def _summary(status: int, data: dict[str, Any] | None, body: bytes) -> str:
    """OpsGenie's explanation: `errors{}` as "field: reason; ...", else `message`, else body text."""
    if data is not None:
        errors = data.get("errors")
        if isinstance(errors, dict) and errors:
            return "; ".join(f"{k}: {v}" for k, v in errors.items())
        message = data.get("message")
        if isinstance(message, str) and message.strip():
            return message
    text = body[:MAX_REASON_CHARS].decode("utf-8", errors="replace").strip()
    return text or "(no body)"


def _label(status: int) -> str:
    if status == 422:
        return "rejected"
    try:
        return http.HTTPStatus(status).phrase.lower()
    except ValueError:
        return "client error" if 400 <= status < 500 else "unexpected status"


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    action: str,
    *,
    now: float | None = None,
) -> Outcome:
    """Turn an HTTP response into delivered / retry / config_error / rejected. Never raises."""
    now = time.time() if now is None else now
    lowered = _lower(headers)
    data = _json_object(body)
    request_id = data.get("requestId") if data is not None else None
    if not isinstance(request_id, str) or not request_id:
        request_id = lowered.get("x-request-id") or None

    def outcome(kind: str, reason: str, retry_after: float | None = None) -> Outcome:
        return Outcome(kind, _clip(reason), retry_after, request_id)

    if 200 <= status < 300:
        return outcome("delivered", f"{status} accepted" if status == 202 else f"{status} ok")
    retry_after = _seconds(lowered.get("retry-after"), now)
    if status == 429:
        why = lowered.get("x-ratelimit-reason", "").strip()
        if retry_after is None:
            retry_after = _seconds(lowered.get("x-ratelimit-period-in-sec"), now)
        return outcome("retry", f"429 rate limited ({why})" if why else "429 rate limited", retry_after)
    if status == 501:
        return outcome("rejected", f"501 not implemented: {_summary(status, data, body)}")
    if 500 <= status < 600:
        return outcome("retry", f"{status} server error", retry_after)
    if status in (401, 403):
        return outcome("config_error", f"{status} {_label(status)}: {_summary(status, data, body)}")
    if status == 404 and action != "create":
        return outcome("rejected", "404 alert does not exist")
    if 400 <= status < 500:
        return outcome("rejected", f"{status} {_label(status)}: {_summary(status, data, body)}")
    if 300 <= status < 400:
        where = lowered.get("location", "?")
        return outcome("config_error", f"{status} redirect to {where}: check the target base_url")
    return outcome("retry", f"{status} unexpected status", retry_after)


def classify_exception(exc: BaseException, timeout: float | None = None) -> Outcome:
    """A failed send (no HTTP response): always retryable."""
    if isinstance(exc, (httpx.TimeoutException, TimeoutError, asyncio.TimeoutError)):
        after = f"after {timeout}s" if timeout is not None else f"({type(exc).__name__})"
        return Outcome("retry", f"timeout {after}")
    if isinstance(exc, (httpx.TransportError, OSError)):
        return Outcome("retry", _clip(f"connection error: {str(exc) or type(exc).__name__}", 200))
    return Outcome("retry", _clip(f"error: {type(exc).__name__}: {exc}"))


@dataclass(frozen=True)
class RequestStatus:
    state: str  # "pending" | "processed" | "unknown"
    is_success: bool | None = None
    status: str | None = None  # e.g. "Alert does not exist"
    alert_id: str | None = None
    alias: str | None = None


def parse_request_status(status: int, headers: Mapping[str, str], body: bytes) -> RequestStatus:
    """Read GET /v2/alerts/requests/{id}: OpsGenie's {"data": {...}} or JSM's unwrapped shape."""
    if status == 404 and _lower(headers).get("x-opsgenie-errortype", "").strip() == "RequestNotProcessed":
        return RequestStatus("pending")
    data = _json_object(body) if 200 <= status < 300 else None
    if data is None:
        return RequestStatus("unknown")
    inner = data.get("data")
    record = inner if isinstance(inner, dict) else data
    is_success = record.get("isSuccess")
    if not isinstance(is_success, bool):
        return RequestStatus("unknown")

    def text(key: str) -> str | None:
        value = record.get(key)
        return value if isinstance(value, str) and value else None

    return RequestStatus("processed", is_success, text("status"), text("alertId"), text("alias"))


# --------------------------------------------------------------------------------------------
# The HTTP client


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes  # at most MAX_RESPONSE_BYTES
    elapsed: float  # seconds, from sending to the end of the (capped) body


def _check_api_key(api_key: str) -> None:
    # httpx/h11 quote an illegal header value in their exception text; refuse it before that happens.
    if not api_key or not (api_key.isascii() and api_key.isprintable()) or any(c.isspace() for c in api_key):
        raise ValueError("the API key is empty or has characters not allowed in an HTTP header")


def _proxied(url: str) -> bool:
    """Would httpx send a request to ``url`` through a proxy from the environment (HTTPS_PROXY, ALL_PROXY, ...)?"""
    proxies = urllib.request.getproxies_environment()
    scheme = url.split(":", 1)[0].lower()
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    host = urlsplit(url).hostname or ""
    return not urllib.request.proxy_bypass_environment(host, proxies)


class Client:
    """Async OpsGenie client with a bound on requests in flight: on ``http1.Http1Client`` (lean, kept-alive
    connections), or on httpx.AsyncClient when a ``transport`` is given or the environment names a proxy for the
    target (httpx follows HTTPS_PROXY and friends; the lean client does not)."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        max_in_flight: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self._user_agent = user_agent
        # httpx slows down as concurrency grows, so queue here rather than in its pool.
        self._slots = asyncio.Semaphore(max_in_flight)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight),
            transport=transport,
            follow_redirects=False,
        )
        self._lean = (
            Http1Client(limit=max_in_flight, max_body=MAX_RESPONSE_BYTES, connect_timeout=timeout)
            if transport is None
            else None
        )
        self._lean_ok: dict[str, bool] = {}  # origin -> no proxy in the environment for it

    async def send(self, request: Request, api_key: str | Secret) -> Response:
        """Send with `Authorization: GenieKey <key>`; httpx exceptions propagate (see classify_exception).

        `api_key` may be a str or a starlette Secret. `timeout` bounds each phase (connect, write,
        each read) and also the whole exchange.
        """
        api_key = str(api_key)
        _check_api_key(api_key)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("authorization", "user-agent")}
        headers["User-Agent"] = self._user_agent
        headers["Authorization"] = f"GenieKey {api_key}"
        content = None
        if request.json is not None:
            content = json.dumps(request.json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        async with self._slots:
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.timeout):  # (anyio's cancel scopes cost ~8% of a delivery)
                    return await self._exchange(request, headers, content, started)
            except TimeoutError:
                raise httpx.ReadTimeout(f"no complete response within {self.timeout}s") from None

    def _use_lean(self, url: str) -> bool:
        if self._lean is None:
            return False
        origin = url.split("/", 3)[:3]
        key = "/".join(origin)
        ok = self._lean_ok.get(key)
        if ok is None:
            ok = self._lean_ok[key] = not _proxied(url)
        return ok

    async def _exchange(
        self, request: Request, headers: dict[str, str], content: bytes | None, started: float
    ) -> Response:
        if self._use_lean(request.url):
            assert self._lean is not None
            answer = await self._lean.request(request.method, request.url, headers, content)
            return Response(answer.status, answer.headers, answer.body, time.monotonic() - started)
        async with self._http.stream(request.method, request.url, headers=headers, content=content) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= MAX_RESPONSE_BYTES:
                    break
            return Response(
                status=response.status_code,
                headers=dict(response.headers),
                body=b"".join(chunks)[:MAX_RESPONSE_BYTES],
                elapsed=time.monotonic() - started,
            )

    async def aclose(self) -> None:
        if self._lean is not None:
            self._lean.close()
        await self._http.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
