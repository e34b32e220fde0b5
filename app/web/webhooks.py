"""POST /webhooks/{integration}: authenticate, read the body with a cap, hand it to ingest, answer JSON."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from alertbridge import redact
from alertbridge.db import Database, is_unavailable
from alertbridge.ingest import Inbound, Route, ingest, record_handshake, record_too_large
from alertbridge.signatures import SignatureError
from alertbridge.sns import HANDSHAKE_TYPES, SnsVerifier
from alertbridge.web.auth import BodyCheck, hash_matches, supplied_tokens, token_matches

log = logging.getLogger("alertbridge.webhooks")


@dataclass(frozen=True)
class Endpoint:
    """One integration as the web layer sees it: its ingest route and how its sender authenticates."""

    route: Route
    tokens: tuple[bytes, ...]  # revealed token values, compared in constant time
    allow_unauthenticated: bool = False
    enabled: bool = True
    token_header: str | None = None  # lower-cased
    signature: BodyCheck | None = None
    token_hashes: tuple[bytes, ...] = ()  # SHA-256 digests of console-made tokens (integration_tokens)

    def authenticated(self, request: Request) -> bool:
        """The token part of authentication (the signature part needs the body)."""
        if not self.tokens and not self.token_hashes:
            return self.allow_unauthenticated or self.signature is not None
        supplied = supplied_tokens(request, self.token_header)
        return token_matches(self.tokens, supplied) | hash_matches(self.token_hashes, supplied)


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status, headers=headers)


UNAUTHORIZED = (
    "missing or wrong token: send 'Authorization: Bearer <token>', basic auth with the token as password, "
    "or '?token=<token>'"
)


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
    db: Database = request.app.state.db
    max_body: int = request.app.state.max_body_bytes
    endpoint = endpoints.get(name)
    if endpoint is None or not endpoint.enabled:
        return error(
            404,
            "unknown_integration",
            f"no integration named {name!r} is configured",
            integrations=sorted(n for n, e in endpoints.items() if e.enabled),
        )
    if not endpoint.authenticated(request):
        where = f", or the {endpoint.token_header} header" if endpoint.token_header else ""
        return error(401, "unauthorized", UNAUTHORIZED + where)

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
            if not endpoint.tokens and endpoint.signature is not None:  # not authenticated yet: store nothing
                return error(413, "body_too_large", f"body is larger than {max_body} bytes")
            result = await record_too_large(db, endpoint.route, inbound_meta, declared_size, max_body)
            return JSONResponse(result.body, status_code=result.status)
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
    except Exception as exc:
        if is_unavailable(exc):
            log.warning("database unavailable; answering 503 to %s", name)
            return error(503, "database_unavailable", "the database is unavailable; nothing was stored: retry later")
        log.exception("unexpected error while ingesting a webhook for %s", name)
        return error(500, "internal_error", "unexpected error; nothing was stored; see the bridge's log")
    return JSONResponse(result.body, status_code=result.status)
