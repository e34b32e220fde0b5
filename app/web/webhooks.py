"""POST /webhooks/{integration}: authenticate, read the body with a cap, hand it to ingest, answer JSON."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from alertbridge import logs, metrics, redact
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
    # Lower-cased header names whose value is always redacted (the token header, the signature header).
    secret_headers: frozenset[str] = frozenset()
    # Every configured secret (tokens, signature secrets, API keys): any header or query value carrying one is
    # redacted, whatever its name.
    secrets: redact.SecretValues = field(default_factory=lambda: redact.SecretValues(()))

    def is_secret_value(self, value: str) -> bool:
        """Does ``value`` carry a configured secret (alone, as "Bearer <s>", in Basic credentials, in a list)?
        Compared in constant time."""
        return self.secrets(value)

    def redacted_headers(self, request: Request) -> dict[str, str]:
        return redact.headers(request.headers.items(), is_secret=self.is_secret_value, names=self.secret_headers)

    def redacted_query(self, request: Request) -> dict[str, str]:
        return redact.query(request.query_params.multi_items(), is_secret=self.is_secret_value)

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


async def read_capped(request: Request, limit: int) -> bytes | None:
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
    endpoint = endpoints.get(name)
    remote = request.client.host if request.client else None
    if endpoint is None or not endpoint.enabled:
        request.app.state.refused.add(name, remote, "unknown_integration")
        # Integration names are listed only in demo mode: elsewhere they would tell a stranger what to attack.
        names = sorted(n for n, e in endpoints.items() if e.enabled) if request.app.state.demo else None
        extra = {"integrations": names} if names is not None else {}
        return error(404, "unknown_integration", f"no integration named {name!r} is configured", **extra)
    with logs.context(integration=name, traceparent=request.headers.get("traceparent")):
        status, body = await _receive(request, name, endpoint)
        label = metrics.webhook_status(status, body.get("error"))
        metrics.webhook_received(name, label)
        with logs.context(inbound_id=body.get("id")):
            if label in ("template_error", "payload_error"):
                where = f" (line {body['line']})" if body.get("line") else ""
                log.warning("webhook stored as %s: %s%s", label, str(body.get("message", ""))[:500], where)
            elif label == "unauthorized":
                log.info("webhook refused: %s", body.get("error"))
    return JSONResponse(body, status_code=status, headers={"Retry-After": "5"} if status == 503 else None)


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": code, "message": message}


async def _receive(request: Request, name: str, endpoint: Endpoint) -> tuple[int, dict[str, Any]]:
    db: Database = request.app.state.db
    max_body: int = request.app.state.max_body_bytes
    remote = request.client.host if request.client else None
    if not endpoint.authenticated(request):
        request.app.state.refused.add(name, remote, "unauthorized")
        where = f", or the {endpoint.token_header} header" if endpoint.token_header else ""
        return _error(401, "unauthorized", UNAUTHORIZED + where)

    inbound_meta = Inbound(
        body=b"",
        content_type=request.headers.get("content-type"),
        headers=endpoint.redacted_headers(request),
        query=endpoint.redacted_query(request),
        remote_addr=request.client.host if request.client else None,
        traceparent=request.headers.get("traceparent"),
    )
    try:
        declared = request.headers.get("content-length")
        declared_size = int(declared) if declared and declared.isdigit() else None
        body = None if declared_size is not None and declared_size > max_body else await read_capped(request, max_body)
        if body is None:
            if not endpoint.tokens and endpoint.signature is not None:  # not authenticated yet: store nothing
                return _error(413, "body_too_large", f"body is larger than {max_body} bytes")
            result = await record_too_large(db, endpoint.route, inbound_meta, declared_size, max_body)
            return result.status, result.body
        inbound = replace(inbound_meta, body=body)
        message = None
        if endpoint.signature is not None:
            try:
                message = await endpoint.signature.verify(body, request.headers)  # case-insensitive
            except SignatureError as exc:
                log.info("signature refused for %s: %s", name, exc.message)
                request.app.state.refused.add(name, remote, "bad_signature")
                return _error(401, "bad_signature", exc.message)
        if isinstance(endpoint.signature, SnsVerifier) and message and message.get("Type") in HANDSHAKE_TYPES:
            answer = await endpoint.signature.handshake(message)
            result = await record_handshake(db, endpoint.route, inbound, answer)
        else:
            result = await ingest(db, endpoint.route, inbound)
    except ClientDisconnect:
        return _error(400, "client_disconnected", "the client went away before the body was complete")
    except Exception as exc:
        if is_unavailable(exc):
            log.warning("database unavailable; answering 503 to %s", name)
            return _error(503, "database_unavailable", "the database is unavailable; nothing was stored: retry later")
        log.exception("unexpected error while ingesting a webhook for %s", name)
        return _error(500, "internal_error", "unexpected error; nothing was stored; see the bridge's log")
    return result.status, result.body
