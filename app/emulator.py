"""An OpsGenie Alert API v2 / JSM Ops integration-events emulator (a Starlette ASGI app).

It behaves like the real API as described in /work/shared/opsgenie/CONTRACT.md: GenieKey auth, 202 + requestId,
asynchronous in-order processing, request-status polling (404 ``X-Opsgenie-Errortype: RequestNotProcessed`` while
pending), alias dedup (open alert -> ``count += 1``; closed alert -> a new alert), field limits -> 422.
Every API route exists under ``""`` (OpsGenie) and ``"/jsm/ops/integration"`` (JSM Ops):

    POST {p}/v2/alerts                                    create
    POST {p}/v2/alerts/{id}/acknowledge|unacknowledge|close|notes   ?identifierType=id (default)|alias|tiny
    GET  {p}/v2/alerts/requests/{requestId}               request status
    GET  {p}/v2/alerts/{id}?identifierType=...            one alert (by alias: the open one, else the newest)
    GET  {p}/v2/alerts?query=...&limit=100                newest first; query terms joined by " AND ":
                                        status:open|closed, alias:<x>, tinyId:<n>, acknowledged:true|false

Control endpoints (no auth): GET /_control (help), GET/POST/DELETE /_control/faults, GET /_control/requests,
POST /_control/reset, GET /_control/alerts (same as the listing). Keys are never logged or echoed.

The Heartbeat API's ping and an enforceable account rate limit (``/_control/ratelimit``, ``/_control/heartbeats``)
are in app/emulator_limits.py.

Callbacks (OpsGenie's outgoing "Webhook" integration): with a callback URL (``build_app(callback_url=...)`` or
``POST /_control/callbacks {"url": ..., "headers": {...}}``) every processed create (of a new alert), acknowledge,
unacknowledge, close and note is posted there in OpsGenie's callback shape (CONTRACT §5) — also what a human does
through ``POST /_control/alerts/{id}/{acknowledge|unacknowledge|close|delete|notes|assign}`` with
``{"user": "dana@example.com", "note": ..., "owner": ..., "identifierType": "id|tiny|alias"}``.
``GET /_control/callbacks`` lists what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from time import perf_counter
from typing import Any
from urllib.parse import unquote_to_bytes
from uuid import uuid4, uuid5

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertbridge.emulator_limits import PING_METHODS, PONG, RATE_LIMITED_BODY, Heartbeats, RateLimit

log = logging.getLogger("alertbridge.emulator")

JSM_PREFIX = "/jsm/ops/integration"
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
RESPONDER_TYPES = ("team", "user", "escalation", "schedule")
VISIBLE_TO_TYPES = ("team", "user")
STRING_LIMITS = {"alias": 512, "description": 15000, "entity": 512, "source": 100, "user": 100, "note": 25000}
ACTIONS = {  # path verb -> (request-status action, status text on success)
    "acknowledge": ("Acknowledge", "Acknowledged alert"),
    "unacknowledge": ("UnAcknowledge", "UnAcknowledged alert"),
    "close": ("Close", "Closed alert"),
    "notes": ("AddNote", "Added note"),
}
THROTTLE_HEADERS = {"X-RateLimit-State": "THROTTLED", "X-RateLimit-Reason": "ACCOUNT", "X-RateLimit-Period-In-Sec": "1"}
LIST_FILTERS = ("status", "alias", "tinyId", "acknowledged")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms_since(iso: str) -> int:
    return int((datetime.now(UTC) - datetime.fromisoformat(iso.replace("Z", "+00:00"))).total_seconds() * 1000)


def _mask(name: str, value: str) -> str:
    if name != "authorization":
        return value
    return "GenieKey ***" if value.lower().startswith("geniekey") else "***"


def _split_path(scope: dict) -> tuple[str, list[str], str]:
    """(prefix, decoded segments after the prefix, raw path). Works on raw_path so %2F stays inside a segment."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    raw = raw.split(b"?", 1)[0]
    segs = [unquote_to_bytes(s).decode("utf-8", "replace") for s in raw.split(b"/")[1:]]
    if segs and segs[-1] == "":
        segs.pop()
    root = [s for s in scope.get("root_path", "").split("/") if s]  # strip a Starlette Mount's prefix
    if root and segs[: len(root)] == root:
        segs = segs[len(root) :]
    prefix = ""
    if segs[:3] == ["jsm", "ops", "integration"]:
        prefix, segs = JSM_PREFIX, segs[3:]
    return prefix, segs, raw.decode("latin-1")


def _validate_strings(body: dict, errors: dict[str, str]) -> None:
    for field, limit in STRING_LIMITS.items():
        value = body.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[field] = f"{field} must be a string"
        elif len(value) > limit:
            errors[field] = f"{field} can not be longer than {limit} characters"


def validate_create(body: dict) -> dict[str, str]:
    """Field errors of a CreateAlertPayload (limits from CONTRACT §1; lengths are characters, not bytes)."""
    errors: dict[str, str] = {}
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        errors["message"] = "Message can not be empty."
    elif len(message) > 130:
        errors["message"] = "Message can not be longer than 130 characters."
    _validate_strings(body, errors)
    if body.get("priority") is not None and body["priority"] not in PRIORITIES:
        errors["priority"] = "Priority should be one of " + ", ".join(PRIORITIES)
    for field, most, longest in (("tags", 20, 50), ("actions", 10, 50)):
        items = body.get(field)
        if items is None:
            continue
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            errors[field] = f"{field} must be a list of strings"
        elif len(items) > most:
            errors[field] = f"{field} can not have more than {most} items"
        elif any(len(i) > longest for i in items):
            errors[field] = f"each of {field} can not be longer than {longest} characters"
    details = body.get("details")
    if details is not None:
        if not isinstance(details, dict) or not all(isinstance(v, str) for v in details.values()):
            errors["details"] = "details must be an object of string to string"
        elif sum(len(k) + len(v) for k, v in details.items()) > 8000:
            errors["details"] = "details can not be longer than 8000 characters in total"
    for field, types in (("responders", RESPONDER_TYPES), ("visibleTo", VISIBLE_TO_TYPES)):
        items = body.get(field)
        if items is None:
            continue
        if not isinstance(items, list) or len(items) > 50:
            errors[field] = f"{field} must be a list of at most 50 items"
        elif any(not isinstance(i, dict) or i.get("type") not in types for i in items):
            errors[field] = f"each of {field} needs a type: one of " + ", ".join(types)
    return errors


class _Verbatim:
    def __init__(self, body: Any) -> None:
        self.body = body


class EmulatorState:
    """Everything the emulator knows. Mutated only on the event loop; read it from tests after ``idle``.

    alerts:    dict alertId -> alert dict, in creation order (``id`` and, for convenience, ``alertId``)
    requests:  list of every API request received (see GET /_control/requests)
    statuses:  dict requestId -> request-status data, or None while pending
    faults:    queued fault dicts (see POST /_control/faults)
    """

    def __init__(
        self,
        api_keys: Iterable[str] | None = None,
        processing_delay: float = 0.05,
        callback_url: str | None = None,
        callback_headers: dict[str, str] | None = None,
    ) -> None:
        self.api_keys = None if api_keys is None else frozenset(api_keys)
        self.processing_delay = processing_delay
        self.callback_url = callback_url
        self.callback_headers = dict(callback_headers or {})
        self._outgoing: deque[dict] = deque()
        self._sender: asyncio.Task | None = None
        self._http: Any = None
        self._namespace = uuid4()  # integrationId = uuid5(namespace, key): fixed per key, reveals nothing
        self._queue: deque[tuple[float, dict]] = deque()
        self._worker: asyncio.Task | None = None
        self._worker_loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None
        self.reset()

    def reset(self) -> None:
        self.alerts: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.statuses: dict[str, dict | None] = {}
        self.faults: list[dict] = []
        self.callbacks: list[dict] = []  # every callback sent: {"at", "action", "alias", "status" | "error", "body"}
        self.heartbeats = Heartbeats()
        self.ratelimit: RateLimit | None = None  # enforced on the Alert API when set (POST /_control/ratelimit)
        self._queue.clear()
        self._tiny = 0

    @property
    def idle(self) -> bool:
        """True when every accepted request has been processed and every callback sent."""
        return not self._queue and not self._outgoing and (self._sender is None or self._sender.done())

    def release_hangs(self) -> None:
        """Wake every request sleeping in a ``hang`` fault (call on the loop, e.g. via call_soon_threadsafe)."""
        if self._release is not None:
            self._release.set()
            self._release = None

    def find_alert(self, identifier: str, identifier_type: str = "id", open_only: bool = False) -> dict | None:
        """By id/tiny: that alert. By alias: the open one (if open_only) else the open one or the newest."""
        if identifier_type == "id":
            return self.alerts.get(identifier)
        key = "tinyId" if identifier_type == "tiny" else "alias"
        found = [a for a in reversed(self.alerts.values()) if a[key] == identifier]
        open_ = [a for a in found if a["status"] != "closed"]
        return (open_ or ([] if open_only else found) or [None])[0]

    def list_alerts(self, query: str = "", limit: int = 100) -> list[dict]:
        """Newest first. ``query``: terms ``key:value`` joined by " AND " (keys: LIST_FILTERS). ValueError if bad."""
        filters = []
        for term in re.split(r"\s+AND\s+", query.strip()) if query.strip() else []:
            key, sep, value = term.partition(":")
            if not sep or key.strip() not in LIST_FILTERS:
                raise ValueError(f"unsupported query term {term!r}; use " + ", ".join(f"{k}:..." for k in LIST_FILTERS))
            filters.append((key.strip(), value.strip().strip('"')))

        def text(value: Any) -> str:
            return str(value).lower() if isinstance(value, bool) else str(value)

        found = [a for a in reversed(self.alerts.values()) if all(text(a[k]) == v for k, v in filters)]
        return found[:limit]

    # ---- HTTP -------------------------------------------------------------------------------------------

    async def handle(self, request: Request) -> JSONResponse:
        started = perf_counter()
        prefix, segs, raw_path = _split_path(request.scope)
        if not prefix and segs[:1] == ["_control"]:
            return await self._control(request, segs[1:])
        request_id = str(uuid4())
        headers = {k.lower(): _mask(k.lower(), v) for k, v in request.headers.items()}
        entry: dict[str, Any] = {
            "seq": len(self.requests) + 1,
            "at": _now(),
            "method": request.method,
            "path": "/" + "/".join(segs),
            "raw_path": raw_path,
            "prefix": prefix,
            "query": dict(request.query_params),
            "headers": headers,
            "json": None,
            "status": None,
            "request_id": request_id,
            "traceparent": headers.get("traceparent"),
        }
        self.requests.append(entry)
        status, body, extra = await self._api(request, segs, entry)
        entry["status"] = status
        if isinstance(body, _Verbatim):  # a fault's custom body is sent as given
            body = body.body
        else:
            body = {**body, "took": round(perf_counter() - started, 3), "requestId": request_id}
        out = {"X-Request-ID": request_id, "X-Response-Time": f"{perf_counter() - started:.3f}"}
        if 200 <= status < 300:
            out["X-RateLimit-State"] = "OK"
        return JSONResponse(body, status_code=status, headers={**out, **extra})

    async def _api(self, request: Request, segs: list[str], entry: dict) -> tuple[int, Any, dict]:
        raw = await request.body()  # read before a hang: the request has fully arrived, only the answer is late
        bad_json = False
        try:
            entry["json"] = body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body, bad_json = None, True
        fault = self._take_fault(request.method)
        if fault and "hang" in fault:
            await self._hang(fault["hang"])
        elif fault:  # answered instead of processed: nothing is accepted
            headers = {**(THROTTLE_HEADERS if fault["status"] == 429 else {}), **fault["headers"]}
            if fault["body"] is not None:
                return fault["status"], _Verbatim(fault["body"]), headers
            return fault["status"], {"message": f"Emulated fault: HTTP {fault['status']}"}, headers
        method, n = request.method, len(segs)
        route = None
        if segs[:2] == ["v2", "heartbeats"] and n == 4 and segs[3] == "ping" and method in PING_METHODS:
            if self._authenticate(request.headers.get("authorization", "")) is None:
                return 401, {"message": "Could not authenticate"}, {}
            self.heartbeats.ping(segs[2], entry["at"])  # like OpsGenie: accepted whether it exists or not
            return 202, {"result": PONG}, {}
        if segs[:2] == ["v2", "alerts"]:
            if n == 2 and method in ("POST", "GET"):
                route = "create" if method == "POST" else "list"
            elif n == 4 and segs[2] == "requests" and method == "GET":
                route = "status"
            elif n == 3 and method == "GET":
                route = "get"
            elif n == 4 and segs[3] in ACTIONS and method == "POST":
                route = "action"
        if route is None:
            return 404, {"message": f"No API route for {method} {entry['path']}"}, {}
        key = self._authenticate(request.headers.get("authorization", ""))
        if key is None:
            return 401, {"message": "Could not authenticate"}, {}
        if self.ratelimit is not None and not self.ratelimit.take():
            return 429, RATE_LIMITED_BODY, self.ratelimit.headers()
        if bad_json:
            return 400, {"message": "Failed to parse request body: could not parse JSON"}, {}
        params = request.query_params
        if route == "list":
            return self._list_response(params)
        if route == "status":
            return self._status_response(segs[3])
        itype = params.get("identifierType", "id")
        if route in ("get", "action") and itype not in ("id", "alias", "tiny"):
            return (
                422,
                {"message": "Request is not valid", "errors": {"identifierType": "must be id, alias or tiny"}},
                {},
            )
        if route == "get":
            alert = self.find_alert(segs[2], itype)
            return (200, {"data": alert}, {}) if alert else (404, {"message": "Alert does not exist"}, {})
        if body is not None and not isinstance(body, dict):
            return 422, {"message": "Request body is not valid", "errors": {"body": "must be a JSON object"}}, {}
        body = body or {}
        if route == "create":
            errors = validate_create(body)
        else:
            errors = {}
            _validate_strings({k: body.get(k) for k in ("user", "source", "note")}, errors)
            if segs[3] == "notes" and not (isinstance(body.get("note"), str) and body["note"].strip()):
                errors["note"] = "Note can not be empty."
        if errors:
            return 422, {"message": "Request body is not valid", "errors": errors}, {}
        job = {
            "request_id": entry["request_id"],
            "verb": "create" if route == "create" else segs[3],
            "identifier": segs[2] if route == "action" else None,
            "identifier_type": itype,
            "body": body,
            "integration_id": str(uuid5(self._namespace, key)),
            "client": request.client.host if request.client else "",
        }
        self.statuses[job["request_id"]] = None
        self._enqueue(job)
        return 202, {"result": "Request will be processed"}, {}

    def _authenticate(self, header: str) -> str | None:
        scheme, _, key = header.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "geniekey" or not key:
            return None
        return key if self.api_keys is None or key in self.api_keys else None

    def _list_response(self, params: Any) -> tuple[int, Any, dict]:
        try:
            limit = int(params.get("limit", 100))
            if limit < 1:
                raise ValueError("limit must be a positive integer")
            return 200, {"data": self.list_alerts(params.get("query", ""), limit)}, {}
        except ValueError as exc:
            return 422, {"message": "Request is not valid", "errors": {"query": str(exc)}}, {}

    def _status_response(self, request_id: str) -> tuple[int, Any, dict]:
        if request_id not in self.statuses:
            return 404, {"message": "Request does not exist"}, {}
        data = self.statuses[request_id]
        if data is None:
            return 404, {"message": "Request not processed yet"}, {"X-Opsgenie-Errortype": "RequestNotProcessed"}
        return 200, {"data": data}, {}

    # ---- faults -----------------------------------------------------------------------------------------

    def _take_fault(self, method: str) -> dict | None:
        for fault in self.faults:
            if method in fault["methods"]:
                fault["count"] -= 1
                if fault["count"] <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def _hang(self, seconds: float) -> None:
        if self._release is None:
            self._release = asyncio.Event()
        try:
            await asyncio.wait_for(self._release.wait(), timeout=seconds)
        except TimeoutError:
            pass

    @staticmethod
    def parse_fault(body: Any) -> dict:
        """Validate a POST /_control/faults body; ValueError explains what is wrong."""
        if not isinstance(body, dict) or ("status" in body) == ("hang" in body):
            raise ValueError('give either "status" (an HTTP code) or "hang" (seconds)')
        count, methods = body.get("count", 1), body.get("methods", ["POST"])
        if not isinstance(count, int) or count < 1:
            raise ValueError('"count" must be a positive integer')
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ValueError('"methods" must be a list like ["POST", "GET"]')
        fault = {"count": count, "methods": [m.upper() for m in methods]}
        if "hang" in body:
            if not isinstance(body["hang"], (int, float)) or body["hang"] < 0:
                raise ValueError('"hang" must be a number of seconds >= 0')
            return {**fault, "hang": float(body["hang"])}
        status, headers = body["status"], body.get("headers", {})
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError('"status" must be an HTTP status code')
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError('"headers" must be an object of string to string')
        return {**fault, "status": status, "headers": headers, "body": body.get("body")}

    # ---- control ----------------------------------------------------------------------------------------

    async def _control(self, request: Request, segs: list[str]) -> JSONResponse:
        what, method = "/".join(segs), request.method
        if what == "" and method == "GET":
            return JSONResponse(
                {
                    "endpoints": [
                        "GET /_control/alerts",
                        "GET /_control/requests",
                        "POST /_control/reset",
                        "GET|POST|DELETE /_control/faults  "
                        "body: {status, count, headers?, body?, methods?} or {hang, count}",
                        "GET /_control/callbacks   POST /_control/callbacks  body: {url, headers?}",
                        "POST /_control/alerts/{id}/{acknowledge|unacknowledge|close|delete|notes|assign}  "
                        "body: {user, note?, owner?, identifierType?}  (what a human does in OpsGenie)",
                        "GET|POST|DELETE /_control/ratelimit  body: {per_minute, burst} (enforced on the Alert API)",
                        "GET /_control/heartbeats  (pings received by {p}/v2/heartbeats/{name}/ping)",
                    ]
                }
            )
        if what == "faults" and method == "POST":
            try:
                self.faults.append(self.parse_fault(json.loads(await request.body() or b"null")))
            except ValueError as exc:
                return JSONResponse({"message": str(exc)}, status_code=400)
            return JSONResponse({"faults": self.faults})
        if what == "faults" and method in ("GET", "DELETE"):
            if method == "DELETE":
                self.faults.clear()
            return JSONResponse({"faults": self.faults})
        if what == "ratelimit" and method in ("POST", "DELETE"):
            try:
                body = json.loads(await request.body() or b"null") if method == "POST" else None
                self.ratelimit = RateLimit.parse(body)
            except ValueError as exc:
                return JSONResponse({"message": str(exc)}, status_code=400)
        if what == "ratelimit" and method in ("GET", "POST", "DELETE"):
            return JSONResponse({"ratelimit": self.ratelimit.to_dict() if self.ratelimit else None})
        if what == "heartbeats" and method == "GET":
            return JSONResponse({"heartbeats": self.heartbeats.to_dict()})
        if what == "requests" and method == "GET":
            return JSONResponse({"requests": self.requests})
        if what == "reset" and method == "POST":
            self.reset()
            return JSONResponse({"reset": True})
        if what == "alerts" and method == "GET":
            status, body, _ = self._list_response(request.query_params)
            return JSONResponse(body, status_code=status)
        if what == "callbacks" and method == "GET":
            return JSONResponse({"url": self.callback_url, "callbacks": self.callbacks})
        if what == "callbacks" and method == "POST":
            body = json.loads(await request.body() or b"null")
            if not isinstance(body, dict) or not isinstance(body.get("url"), (str, type(None))):
                return JSONResponse({"message": 'give {"url": "http://...", "headers": {...}}'}, status_code=400)
            self.callback_url, self.callback_headers = body.get("url"), dict(body.get("headers") or {})
            return JSONResponse({"url": self.callback_url})
        if len(segs) == 3 and segs[0] == "alerts" and method == "POST":
            return self._human(segs[1], segs[2], json.loads(await request.body() or b"{}"))
        return JSONResponse({"message": f"No control route for {method} /_control/{what}"}, status_code=404)

    # ---- asynchronous processing (one worker per loop, strictly in arrival order) -------------------------

    def _enqueue(self, job: dict) -> None:
        loop = asyncio.get_running_loop()
        self._queue.append((loop.time() + self.processing_delay, job))
        if self._worker is None or self._worker.done() or self._worker_loop is not loop:
            self._worker_loop, self._worker = loop, loop.create_task(self._work())

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()  # runs as its own task, so even a 0 delay is after the 202
        while self._queue:
            due, job = self._queue[0]
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
                continue  # the queue may have been reset meanwhile
            self._queue.popleft()
            try:
                self._process(job)
            except Exception:  # never let one bad job stop the worker
                log.exception("emulator failed to process request %s", job["request_id"])
                action = "Create" if job["verb"] == "create" else ACTIONS[job["verb"]][0]
                self._finish(job, action, False, "Internal error", None)

    def _finish(self, job: dict, action: str, ok: bool, status: str, alert: dict | None) -> None:
        alias = alert["alias"] if alert else (job["identifier"] if job["identifier_type"] == "alias" else "")
        self.statuses[job["request_id"]] = {
            "success": ok,
            "action": action,
            "processedAt": _now(),
            "integrationId": job["integration_id"],
            "isSuccess": ok,
            "status": status,
            "alertId": alert["id"] if alert else "",
            "alias": alias or "",
        }

    def _process(self, job: dict) -> None:
        body, now = job["body"], _now()
        if job["verb"] == "create":
            alert = self.find_alert(body["alias"], "alias", open_only=True) if body.get("alias") else None
            if alert:  # dedup: message/description are NOT updated, and no callback (no alert action happened)
                alert["count"] += 1
                alert["lastOccurredAt"] = alert["updatedAt"] = now
            else:
                alert = self._new_alert(job, now)
                self._emit("Create", alert, username="System", source=self._api_source(job))
            log.debug("emulator: Create -> alert %s (count %d)", alert["id"], alert["count"])
            return self._finish(job, "Create", True, "Created alert", alert)
        action, done = ACTIONS[job["verb"]]
        alert = self.find_alert(job["identifier"], job["identifier_type"], open_only=True)
        if alert is None:
            return self._finish(job, action, False, "Alert does not exist", None)
        user = body.get("user") or ""
        report = alert["report"]
        if job["verb"] == "acknowledge":
            alert["acknowledged"] = True
            report.update(ackTime=_ms_since(alert["createdAt"]), acknowledgedBy=user)
        elif job["verb"] == "unacknowledge":
            alert["acknowledged"] = False
        elif job["verb"] == "close":
            alert["status"] = "closed"
            report.update(closeTime=_ms_since(alert["createdAt"]), closedBy=user)
        if body.get("note"):
            alert["notes"].append(
                {"note": body["note"], "user": user, "source": body.get("source") or "", "createdAt": now}
            )
        alert["updatedAt"] = now
        log.debug("emulator: %s -> alert %s", action, alert["id"])
        self._emit(action, alert, username=user or "System", source=self._api_source(job), note=body.get("note"))
        return self._finish(job, action, True, done, alert)

    def _new_alert(self, job: dict, now: str) -> dict:
        body = job["body"]
        self._tiny += 1
        alert_id = str(uuid4())
        alert = {
            "id": alert_id,
            "alertId": alert_id,
            "tinyId": str(self._tiny),
            "alias": body.get("alias") or alert_id,
            "message": body["message"],
            "status": "open",
            "acknowledged": False,
            "isSeen": False,
            "snoozed": False,
            "count": 1,
            "createdAt": now,
            "updatedAt": now,
            "lastOccurredAt": now,
            "description": body.get("description") or "",
            "tags": list(body.get("tags") or []),
            "details": dict(body.get("details") or {}),
            "entity": body.get("entity") or "",
            "source": body.get("source") or job["client"],
            "priority": body.get("priority") or "P3",
            "responders": list(body.get("responders") or []),
            "visibleTo": list(body.get("visibleTo") or []),
            "actions": list(body.get("actions") or []),
            "user": body.get("user") or "",
            "note": body.get("note") or "",
            "owner": "",
            "notes": [],
            "report": {},
            "integration": {"id": job["integration_id"], "name": "API", "type": "API"},
        }
        self.alerts[alert_id] = alert
        return alert

    # ---- callbacks ----------------------------------------------------------------------------------------

    @staticmethod
    def _api_source(job: dict) -> dict:
        return {"name": "API", "type": "API"}

    def _emit(
        self, action: str, alert: dict, *, username: str, source: dict, note: str | None = None, **extra: Any
    ) -> None:
        """Queue OpsGenie's callback for ``action`` on ``alert`` (sent in order by one task)."""
        if not self.callback_url:
            return
        created = datetime.fromisoformat(alert["createdAt"].replace("Z", "+00:00"))
        body_alert = {
            "updatedAt": time.time_ns(),
            "message": alert["message"],
            "alertId": alert["id"],
            "source": alert["source"],
            "alias": alert["alias"],
            "tinyId": alert["tinyId"],
            "createdAt": int(created.timestamp() * 1000),
            "entity": alert["entity"],
            "tags": list(alert["tags"]),
            "username": username,
            "userId": "" if username == "System" else str(uuid5(self._namespace, username)),
            **({"note": note} if note else {}),
            **extra,
        }
        payload = {
            "source": source,
            "alert": body_alert,
            "action": action,
            "integrationId": str(uuid5(self._namespace, "callbacks")),
            "integrationName": "alertbridge callbacks",
        }
        self._outgoing.append(payload)
        loop = asyncio.get_running_loop()
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_callbacks())

    async def _send_callbacks(self) -> None:
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        while self._outgoing:
            payload = self._outgoing[0]
            record: dict[str, Any] = {
                "at": _now(),
                "action": payload["action"],
                "alias": payload["alert"]["alias"],
                "body": payload,
            }
            try:
                response = await self._http.post(
                    str(self.callback_url), json=payload, headers={**self.callback_headers}
                )
                record["status"] = response.status_code
            except Exception as exc:  # the bridge may be down: recorded, not retried (OpsGenie's is best effort too)
                record["error"] = f"{type(exc).__name__}: {exc}"
            self.callbacks.append(record)
            self._outgoing.popleft()

    def _human(self, identifier: str, verb: str, body: Any) -> JSONResponse:
        """What a responder does in OpsGenie's UI: change the alert at once, then call back."""
        if not isinstance(body, dict) or not isinstance(body.get("user"), str) or not body["user"].strip():
            return JSONResponse({"message": 'give {"user": "name@example.com", ...}'}, status_code=400)
        verbs = {
            "acknowledge": "Acknowledge",
            "unacknowledge": "UnAcknowledge",
            "close": "Close",
            "delete": "Delete",
            "notes": "AddNote",
            "assign": "AssignOwnership",
        }
        if verb not in verbs:
            return JSONResponse({"message": f"verb must be one of {', '.join(verbs)}"}, status_code=404)
        alert = self.find_alert(identifier, body.get("identifierType", "id"))
        if alert is None:
            return JSONResponse({"message": "Alert does not exist"}, status_code=404)
        user, now = body["user"].strip(), _now()
        extra: dict[str, Any] = {}
        if verb == "acknowledge":
            alert["acknowledged"] = True
            alert["report"].update(ackTime=_ms_since(alert["createdAt"]), acknowledgedBy=user)
        elif verb == "unacknowledge":
            alert["acknowledged"] = False
        elif verb in ("close", "delete"):
            alert["status"] = "closed"
            alert["report"].update(closeTime=_ms_since(alert["createdAt"]), closedBy=user)
            if verb == "delete":
                self.alerts.pop(alert["id"], None)
        elif verb == "notes":
            if not isinstance(body.get("note"), str) or not body["note"].strip():
                return JSONResponse({"message": "give a note"}, status_code=400)
            alert["notes"].append({"note": body["note"], "user": user, "source": "web", "createdAt": now})
        elif verb == "assign":
            alert["owner"] = extra["owner"] = str(body.get("owner") or user)
        alert["updatedAt"] = now
        self._emit(
            verbs[verb], alert, username=user, source={"name": "", "type": "web"}, note=body.get("note"), **extra
        )
        return JSONResponse({"data": alert})

    async def aclose(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def build_app(
    api_keys: Iterable[str] | None = None,
    processing_delay: float = 0.05,
    callback_url: str | None = None,
    callback_headers: dict[str, str] | None = None,
) -> Starlette:
    """The emulator as an ASGI app; its state is ``app.state.emulator``. ``api_keys=None`` accepts any non-empty key.
    ``callback_url``: where to post OpsGenie-style callbacks (with ``callback_headers``), None: none are sent."""
    state = EmulatorState(api_keys, processing_delay, callback_url, callback_headers)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await state.aclose()

    app = Starlette(routes=[Route("/{path:path}", state.handle, methods=methods)], lifespan=lifespan)
    app.state.emulator = state
    return app
