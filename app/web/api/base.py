"""What every admin API route shares: bearer-token authentication (admin | viewer), JSON in and out, service
errors as JSON with their status (never a 500 for bad input), 503 when the database is unavailable."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from alertbridge.admin import auth
from alertbridge.admin.actor import Actor
from alertbridge.admin.errors import BadRequest, ServiceError, Unauthorized
from alertbridge.db import Database, is_unavailable
from alertbridge.registry import Registry

log = logging.getLogger("alertbridge.api")

MAX_JSON = 2_097_152
Handler = Callable[[Request, Actor], Awaitable[Response]]


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return None  # bodies are not part of API answers
    raise TypeError(type(value).__name__)


class ApiResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, default=_default, separators=(",", ":")).encode("utf-8")


def ok(content: Any, status: int = 200) -> ApiResponse:
    return ApiResponse(content, status_code=status)


def db_of(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def registry_of(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


async def body_of(request: Request) -> dict[str, Any]:
    data = await request.body()
    if len(data) > MAX_JSON:
        raise BadRequest(f"the request body is larger than {MAX_JSON} bytes")
    try:
        parsed = json.loads(data or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise BadRequest("the request body must be a JSON object")
    return parsed


async def _actor(request: Request) -> Actor:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send an admin API token as 'Authorization: Bearer <token>' (alertbridge admin create-token)"
        )
    actor = await auth.token_actor(db_of(request), token.strip())
    if actor is None:
        raise Unauthorized("unknown or revoked admin API token")
    return actor


def endpoint(*, write: bool = False) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """An API route: authenticated (a viewer token may only read: 403 on writes), errors as JSON."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @wraps(handler)
        async def run(request: Request) -> Response:
            try:
                actor = await _actor(request)
                if write:
                    actor.require_admin()
                return await handler(request, actor)
            except ServiceError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                return ApiResponse(exc.to_dict(), status_code=exc.status, headers=headers)
            except Exception as exc:
                if is_unavailable(exc):
                    return ApiResponse(
                        {"error": "database_unavailable", "message": "the database is unavailable; retry later"},
                        status_code=503,
                        headers={"Retry-After": "5"},
                    )
                log.exception("admin API %s %s failed", request.method, request.url.path)
                return ApiResponse(
                    {"error": "internal_error", "message": "unexpected error; see the bridge's log"}, status_code=500
                )

        return run

    return wrap


def int_param(request: Request, key: str, default: int, *, low: int = 1, high: int = 1000) -> int:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {key!r} must be an integer") from None
    return max(low, min(high, value))


async def not_found(request: Request) -> Response:
    return ApiResponse(
        {"error": "not_found", "message": f"no admin API route {request.method} {request.url.path}"}, status_code=404
    )
