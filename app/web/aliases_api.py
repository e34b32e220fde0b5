"""The alias read API: GET /api/v1/aliases/{integration}/{alias} and GET /api/v1/aliases (paged, filtered).

Two kinds of callers: a source (or its status page) with its integration's inbound token (as for webhooks: bearer,
X-Bridge-Token or its configured header, ?token=) reads its own aliases only, no other integration's; an admin or
viewer API token (`alertbridge admin create-token`) reads every integration's. A status page can mirror an
acknowledgement this way.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from alertbridge.admin import auth
from alertbridge.db import is_unavailable
from alertbridge.models import AliasState
from alertbridge.store import alias_reads
from alertbridge.web.auth import hash_matches, supplied_tokens, token_matches
from alertbridge.web.webhooks import Endpoint, error

MAX_LIMIT = 500


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


ALL = None  # an admin or viewer token: every integration


async def _allowed(request: Request) -> list[str] | None:
    """The integrations the request may read: those whose inbound token it presents (usually one), or ALL for an
    admin/viewer API token. [] when it presents neither."""
    endpoints: Mapping[str, Endpoint] = request.app.state.endpoints
    found = []
    for name in sorted(endpoints):
        endpoint = endpoints[name]
        supplied = supplied_tokens(request, endpoint.token_header or "x-bridge-token")
        if (endpoint.tokens or endpoint.token_hashes) and (
            token_matches(endpoint.tokens, supplied) | hash_matches(endpoint.token_hashes, supplied)
        ):
            found.append(name)
    if found:
        return found
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        if await auth.token_actor(request.app.state.db, token.strip()) is not None:
            return ALL
    return []


UNAUTHORIZED = (
    "send an integration's inbound token (Authorization: Bearer, X-Bridge-Token or ?token=), "
    "or an admin API token (Authorization: Bearer)"
)


async def get_alias(request: Request) -> JSONResponse:
    integration, alias = request.path_params["integration"], request.path_params["alias"]
    try:
        allowed = await _allowed(request)
        if allowed == []:
            return error(401, "unauthorized", UNAUTHORIZED)
        if allowed is not ALL and integration not in allowed:
            return error(403, "forbidden", f"this token does not belong to integration {integration!r}")
        async with request.app.state.db.connection() as conn:
            row = await alias_reads.one(conn, integration, alias)
    except Exception as exc:
        if is_unavailable(exc):
            return error(503, "database_unavailable", "the database is unavailable; retry later")
        raise
    if row is None:
        return error(404, "unknown_alias", f"integration {integration!r} has no alias {alias!r}")
    return JSONResponse(_json(row))


def _cursor(text: str) -> tuple[str, str]:
    try:
        value = json.loads(base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError("'cursor' is not one this API gave out") from exc
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError("'cursor' is not one this API gave out")
    return value[0], value[1]


def _make_cursor(row: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps([row["integration"], row["alias"]]).encode()).decode().rstrip("=")


async def list_aliases(request: Request) -> JSONResponse:
    try:
        allowed = await _allowed(request)
    except Exception as exc:
        if is_unavailable(exc):
            return error(503, "database_unavailable", "the database is unavailable; retry later")
        raise
    if allowed == []:
        return error(401, "unauthorized", UNAUTHORIZED)
    q = request.query_params
    try:
        wanted = q.get("integration") or None
        if wanted is not None and allowed is not ALL and wanted not in allowed:
            return error(403, "forbidden", f"this token does not belong to integration {wanted!r}")
        state = q.get("state")
        if state is not None and state not in {s.value for s in AliasState}:
            raise ValueError(f"'state' must be one of {', '.join(s.value for s in AliasState)}")
        since = datetime.fromisoformat(q["since"].replace("Z", "+00:00")) if q.get("since") else None
        if since is not None and since.tzinfo is None:
            raise ValueError("'since' needs a time zone, e.g. 2026-12-01T00:00:00Z")
        limit = int(q.get("limit", "100"))
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"'limit' must be between 1 and {MAX_LIMIT}")
        after = _cursor(q["cursor"]) if q.get("cursor") else None
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    try:
        async with request.app.state.db.connection() as conn:
            rows = await alias_reads.page(
                conn,
                integrations=[wanted] if wanted else allowed,
                state=state,
                since=since,
                after=after,
                limit=limit,
                alias=q.get("alias"),
                text=q.get("text"),
            )
    except Exception as exc:
        if is_unavailable(exc):
            return error(503, "database_unavailable", "the database is unavailable; retry later")
        raise
    body: dict[str, Any] = {"aliases": [_json(r) for r in rows]}
    if len(rows) == limit:
        body["next_cursor"] = _make_cursor(rows[-1])
    return JSONResponse(body)
