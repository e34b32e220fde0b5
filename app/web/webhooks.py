"""POST /webhooks/{integration}: authenticate, read the body with a cap and a deadline, wait for an ingest slot,
hand it to ingest, answer JSON."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from alertbridge import redact
from alertbridge.admission import IngestGate, Overloaded
from alertbridge.db import Database, describe, is_busy, is_unavailable
from alertbridge.ingest import Inbound, Route, ingest, record_handshake, record_too_large
from alertbridge.signatures import SignatureError
from alertbridge.sns import HANDSHAKE_TYPES, SnsVerifier
from alertbridge.web.auth import BodyCheck, supplied_tokens, token_matches

log = logging.getLogger("alertbridge.webhooks")

#: Requests refused before ingest, by reason (``body_too_large``: answered 413 and the connection closed without
#: reading the rest; ``body_timeout``: 408; ``busy``: 503, no capacity within the wait budget). For metrics.
refused: Counter[str] = Counter()
BODY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Endpoint:
    """One integration as the web layer sees it: its ingest route and how its sender authenticates."""

    route: Route
    tokens: tuple[bytes, ...]  # revealed token values, compared in constant time
    allow_unauthenticated: bool = False
    enabled: bool = True
    token_header: str | None = None  # lower-cased
    signature: BodyCheck | None = None

    def authenticated(self, request: Request) -> bool:
        """The token part of authentication (the signature part needs the body)."""
        if not self.tokens:
            return self.allow_unauthenticated or self.signature is not None
        return token_matches(self.tokens, supplied_tokens(request, self.token_header))


def error(status: int, code: str, message: str, *, close: bool = False, **extra: Any) -> JSONResponse:
    """A JSON error. ``close``: end the connection after it (the rest of the request body is not read)."""
    headers = {"Retry-After": "5"} if status == 503 else {}
    if close:
        headers["Connection"] = "close"
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status, headers=headers or None)


UNAUTHORIZED = (
    "missing or wrong token: send 'Authorization: Bearer <token>', basic auth with the token as password, "
    "or '?token=<token>'"
)


class BodyTimeout(Exception):
    pass


async def _read_capped(request: Request, limit: int, deadline: float = BODY_TIMEOUT) -> bytes | None:
    """The body, or None as soon as it exceeds ``limit`` bytes (the rest is not read). ``BodyTimeout`` when the
    whole body has not arrived within ``deadline`` seconds (uvicorn has no body read timeout of its own)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(deadline):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"the body did not arrive within {deadline:g}s ({size} bytes received)") from None
    return b"".join(chunks)


def _too_large(status: int, body: dict[str, Any]) -> JSONResponse:
    """413, and the connection is closed after it: the rest of a huge body is not read and discarded."""
    refused["body_too_large"] += 1
    return JSONResponse(body, status_code=status, headers={"Connection": "close"})


async def receive(request: Request) -> JSONResponse:
    name = request.path_params["integration"]
    endpoints: dict[str, Endpoint] = request.app.state.endpoints
    db: Database = request.app.state.db
    max_body: int = request.app.state.max_body_bytes
    endpoint = endpoints.get(name)
    # Refused before the body is read: close the connection rather than read and discard a body nobody wants.
    unread = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if endpoint is None or not endpoint.enabled:
        return error(
            404,
            "unknown_integration",
            f"no integration named {name!r} is configured",
            close=unread,
            integrations=sorted(n for n, e in endpoints.items() if e.enabled),
        )
    if not endpoint.authenticated(request):
        where = f", or the {endpoint.token_header} header" if endpoint.token_header else ""
        return error(401, "unauthorized", UNAUTHORIZED + where, close=unread)

    inbound_meta = Inbound(
        body=b"",
        content_type=request.headers.get("content-type"),
        headers=redact.headers(request.headers.items()),
        query=redact.query(request.query_params.multi_items()),
        remote_addr=request.client.host if request.client else None,
        traceparent=request.headers.get("traceparent"),
    )
    gate: IngestGate | None = getattr(request.app.state, "ingest_gate", None)
    deadline: float = getattr(request.app.state, "body_timeout", BODY_TIMEOUT)
    try:
        declared = request.headers.get("content-length")
        declared_size = int(declared) if declared and declared.isdigit() else None
        body = None
        if declared_size is None or declared_size <= max_body:
            body = await _read_capped(request, max_body, deadline)
        async with gate.slot() if gate is not None else contextlib.nullcontext():
            if body is None:
                if not endpoint.tokens and endpoint.signature is not None:  # not authenticated yet: store nothing
                    return _too_large(
                        413, {"error": "body_too_large", "message": f"body is larger than {max_body} bytes"}
                    )
                result = await record_too_large(db, endpoint.route, inbound_meta, declared_size, max_body)
                return _too_large(result.status, result.body)
            inbound = replace(inbound_meta, body=body)
            message = None
            if endpoint.signature is not None:
                try:
                    message = await endpoint.signature.verify(body, request.headers)  # case-insensitive
                except SignatureError as exc:
                    log.info("signature refused for %s: %s", name, exc.message)
                    return error(401, "bad_signature", exc.message)
            if isinstance(endpoint.signature, SnsVerifier) and message and message.get("Type") in HANDSHAKE_TYPES:
                answer = await endpoint.signature.handshake(message)
                result = await record_handshake(db, endpoint.route, inbound, answer)
            else:
                result = await ingest(db, endpoint.route, inbound)
    except ClientDisconnect:
        return error(400, "client_disconnected", "the client went away before the body was complete")
    except BodyTimeout as exc:
        refused["body_timeout"] += 1
        return error(408, "body_timeout", f"{exc}; nothing was stored", close=True)
    except Overloaded as exc:
        refused["busy"] += 1
        log.warning("no ingest capacity for %s: %s", name, exc)
        return error(503, "busy", f"the bridge is at capacity: {exc}; nothing was stored: retry later")
    except Exception as exc:
        if is_busy(exc):  # Postgres is up: every connection stayed at work for the whole wait budget
            refused["busy"] += 1
            log.warning("database connections busy; answering 503 busy to %s", name)
            return error(503, "busy", f"the bridge is at capacity: {exc}; nothing was stored: retry later")
        if is_unavailable(exc):
            log.warning("database unavailable; answering 503 to %s: %s", name, describe(exc))
            return error(
                503,
                "database_unavailable",
                "the database is unavailable; nothing was stored: retry later",
                cause=describe(exc),
            )
        log.exception("unexpected error while ingesting a webhook for %s", name)
        return error(500, "internal_error", "unexpected error; nothing was stored; see the bridge's log")
    return JSONResponse(result.body, status_code=result.status)
