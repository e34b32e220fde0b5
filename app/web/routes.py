"""Every URL of the bridge, in one list."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from alertbridge import __version__
from alertbridge.db import is_busy, is_unavailable
from alertbridge.web.webhooks import error, receive


async def index(request: Request) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    endpoints = request.app.state.endpoints
    body = {
        "name": "alertbridge",
        "version": __version__,
        "webhooks": {name: f"{base}/webhooks/{name}" for name, e in sorted(endpoints.items()) if e.enabled},
    }
    if request.app.state.emulator_mounted:
        body["emulator"] = {
            "alerts": f"{base}/emulator/_control/alerts",
            "requests": f"{base}/emulator/_control/requests",
        }
    return JSONResponse(body)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    try:
        async with request.app.state.db.connection() as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:
        if is_busy(exc):  # Postgres is up; every connection is at work
            return JSONResponse({"status": "ready", "database": "all connections busy"})
        if is_unavailable(exc):
            return error(503, "database_unavailable", "the database is unavailable")
        raise
    return JSONResponse({"status": "ready"})


def routes(emulator: Starlette | None = None) -> list[BaseRoute]:
    table: list[BaseRoute] = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/webhooks/{integration}", receive, methods=["POST"]),
    ]
    if emulator is not None:
        table.append(Mount("/emulator", app=emulator))
    return table
