"""POST /webhooks/{integration}: authenticate, read the body with a cap, hand it to ingest, answer JSON."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from app import redact
from app.db import is_unavailable
from app.ingest import Inbound, Route, ingest, record_too_large

log = logging.getLogger("alertbridge.webhooks")


@dataclass(frozen=True)
class Endpoint:
    """One integration as the web layer sees it: its ingest route and its inbound credentials."""

    route: Route
    tokens: tuple[bytes, ...]  # revealed token values, compared in constant time
    allow_unauthenticated: bool = False
    enabled: bool = True


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status, headers=headers)


def _supplied_token(request: Request) -> bytes | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip().encode()
    token = request.query_params.get("token")
    return token.encode() if token else None


def authenticated(endpoint: Endpoint, request: Request) -> bool:
    if endpoint.allow_unauthenticated:
        return True
    supplied = _supplied_token(request)
    if supplied is None:
        return False
    ok = False
    for token in endpoint.tokens:  # no early exit: every token is compared
        ok |= hmac.compare_digest(supplied, token)
    return ok


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds ``limit`` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def receive(request: Request) -> JSONResponse:
    name = request.path_params["integration"]
    endpoints: dict[str, Endpoint] = request.app.state.endpoints
    engine: AsyncEngine = request.app.state.engine
    max_body: int = request.app.state.max_body_bytes
    endpoint = endpoints.get(name)
    if endpoint is None or not endpoint.enabled:
        return error(
            404,
            "unknown_integration",
            f"no integration named {name!r} is configured",
            integrations=sorted(n for n, e in endpoints.items() if e.enabled),
        )
    if not authenticated(endpoint, request):
        return error(
            401, "unauthorized", "missing or wrong token: send 'Authorization: Bearer <token>' or '?token=<token>'"
        )

    inbound_meta = Inbound(
        body=b"",
        content_type=request.headers.get("content-type"),
        headers=redact.headers(request.headers.items()),
        query=redact.query(request.query_params.multi_items()),
        remote_addr=request.client.host if request.client else None,
        traceparent=request.headers.get("traceparent"),
    )
    try:
        declared = request.headers.get("content-length")
        declared_size = int(declared) if declared and declared.isdigit() else None
        body = None if declared_size is not None and declared_size > max_body else await _read_capped(request, max_body)
        if body is None:
            result = await record_too_large(engine, endpoint.route, inbound_meta, declared_size, max_body)
        else:
            result = await ingest(engine, endpoint.route, Inbound(**{**inbound_meta.__dict__, "body": body}))
    except ClientDisconnect:
        return error(400, "client_disconnected", "the client went away before the body was complete")
    except Exception as exc:
        if is_unavailable(exc):
            log.warning("database unavailable; answering 503 to %s", name)
            return error(503, "database_unavailable", "the database is unavailable; nothing was stored: retry later")
        log.exception("unexpected error while ingesting a webhook for %s", name)
        return error(500, "internal_error", "unexpected error; nothing was stored; see the bridge's log")
    return JSONResponse(result.body, status_code=result.status)
