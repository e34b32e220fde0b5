"""POST /webhooks/{integration}: authenticate, read the body with a cap and a deadline, wait for an ingest slot,
hand it to ingest, answer JSON."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from alertbridge import logs, metrics, redact
from alertbridge.admission import IngestGate, Overloaded
from alertbridge.committer import Committer
from alertbridge.db import Database, describe, is_busy, is_unavailable
from alertbridge.ingest import Inbound, Route, ingest, record_handshake, record_too_large
from alertbridge.signatures import SignatureError
from alertbridge.sns import HANDSHAKE_TYPES, SnsVerifier
from alertbridge.web.auth import BodyCheck, hash_matches, supplied_tokens, token_matches

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


def error(status: int, code: str, message: str, *, close: bool = False, **extra: Any) -> JSONResponse:
    """A JSON error. ``close``: end the connection after it (the rest of the request body is not read)."""
    return _Answer(status, {"error": code, "message": message, **extra}, close).response()


@dataclass(frozen=True)
class _Answer:
    """What a webhook is answered: status, JSON body, and whether to close the connection after it."""

    status: int
    body: dict[str, Any]
    close: bool = False

    def response(self) -> JSONResponse:
        headers = {"Retry-After": "5"} if self.status == 503 else {}
        if self.close:
            headers["Connection"] = "close"
        return JSONResponse(self.body, status_code=self.status, headers=headers or None)


def _error(status: int, code: str, message: str, *, close: bool = False, **extra: Any) -> _Answer:
    return _Answer(status, {"error": code, "message": message, **extra}, close)


UNAUTHORIZED = (
    "missing or wrong token: send 'Authorization: Bearer <token>', basic auth with the token as password, "
    "or '?token=<token>'"
)


class BodyTimeout(Exception):
    pass


async def read_capped(request: Request, limit: int, deadline: float = BODY_TIMEOUT) -> bytes | None:
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


def _too_large(status: int, body: dict[str, Any]) -> _Answer:
    """413, and the connection is closed after it: the rest of a huge body is not read and discarded."""
    refused["body_too_large"] += 1
    return _Answer(status, body, close=True)


async def receive(request: Request) -> JSONResponse:
    name = request.path_params["integration"]
    endpoints: dict[str, Endpoint] = request.app.state.endpoints
    endpoint = endpoints.get(name)
    remote = request.client.host if request.client else None
    # Refused before the body is read: close the connection rather than read and discard a body nobody wants.
    unread = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if endpoint is None or not endpoint.enabled:
        request.app.state.refused.add(name, remote, "unknown_integration")
        # Integration names are listed only in demo mode: elsewhere they would tell a stranger what to attack.
        names = sorted(n for n, e in endpoints.items() if e.enabled) if request.app.state.demo else None
        extra = {"integrations": names} if names is not None else {}
        return error(404, "unknown_integration", f"no integration named {name!r} is configured", close=unread, **extra)
    with logs.context(integration=name, traceparent=request.headers.get("traceparent")):
        answer = await _receive(request, name, endpoint, unread)
        label = metrics.webhook_status(answer.status, answer.body.get("error"))
        metrics.webhook_received(name, label)
        with logs.context(inbound_id=answer.body.get("id")):
            if label in ("template_error", "payload_error"):
                where = f" (line {answer.body['line']})" if answer.body.get("line") else ""
                log.warning("webhook stored as %s: %s%s", label, str(answer.body.get("message", ""))[:500], where)
            elif label == "unauthorized":
                log.info("webhook refused: %s", answer.body.get("error"))
    return answer.response()


async def _receive(request: Request, name: str, endpoint: Endpoint, unread: bool) -> _Answer:
    db: Database = request.app.state.db
    max_body: int = request.app.state.max_body_bytes
    remote = request.client.host if request.client else None
    if not endpoint.authenticated(request):
        request.app.state.refused.add(name, remote, "unauthorized")
        where = f", or the {endpoint.token_header} header" if endpoint.token_header else ""
        return _error(401, "unauthorized", UNAUTHORIZED + where, close=unread)

    inbound_meta = Inbound(
        body=b"",
        content_type=request.headers.get("content-type"),
        headers=endpoint.redacted_headers(request),
        query=endpoint.redacted_query(request),
        remote_addr=remote,
        traceparent=request.headers.get("traceparent"),
    )
    gate: IngestGate | None = getattr(request.app.state, "ingest_gate", None)
    deadline: float = getattr(request.app.state, "body_timeout", BODY_TIMEOUT)
    try:
        declared = request.headers.get("content-length")
        declared_size = int(declared) if declared and declared.isdigit() else None
        body = None
        if declared_size is None or declared_size <= max_body:
            body = await read_capped(request, max_body, deadline)
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
                    request.app.state.refused.add(name, remote, "bad_signature")
                    return _error(401, "bad_signature", exc.message)
            if isinstance(endpoint.signature, SnsVerifier) and message and message.get("Type") in HANDSHAKE_TYPES:
                answer = await endpoint.signature.handshake(message)
                result = await record_handshake(db, endpoint.route, inbound, answer)
            else:
                committer: Committer | None = getattr(request.app.state, "committer", None)
                if committer is not None:  # group commit: shares a transaction with the webhooks around it
                    result = await committer.ingest(endpoint.route, inbound)
                else:
                    result = await ingest(db, endpoint.route, inbound)
    except ClientDisconnect:
        return _error(400, "client_disconnected", "the client went away before the body was complete")
    except BodyTimeout as exc:
        refused["body_timeout"] += 1
        return _error(408, "body_timeout", f"{exc}; nothing was stored", close=True)
    except Overloaded as exc:
        refused["busy"] += 1
        log.warning("no ingest capacity for %s: %s", name, exc)
        return _error(503, "busy", f"the bridge is at capacity: {exc}; nothing was stored: retry later")
    except Exception as exc:
        if is_busy(exc):  # Postgres is up: every connection stayed at work for the whole wait budget
            refused["busy"] += 1
            log.warning("database connections busy; answering 503 busy to %s", name)
            return _error(503, "busy", f"the bridge is at capacity: {exc}; nothing was stored: retry later")
        if is_unavailable(exc):
            log.warning("database unavailable; answering 503 to %s: %s", name, describe(exc))
            return _error(
                503,
                "database_unavailable",
                "the database is unavailable; nothing was stored: retry later",
                cause=describe(exc),
            )
        log.exception("unexpected error while ingesting a webhook for %s", name)
        return _error(500, "internal_error", "unexpected error; nothing was stored; see the bridge's log")
    return _Answer(result.status, result.body)
