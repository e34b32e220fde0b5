"""Every URL of the bridge, in one list (and, below it, the three of the standalone worker's HTTP server)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from alertbridge import __version__, metrics
from alertbridge.db import is_unavailable
from alertbridge.web.aliases_api import get_alias, list_aliases
from alertbridge.web.callbacks import receive_callback
from alertbridge.web.webhooks import error, receive


async def index(request: Request) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    endpoints = request.app.state.endpoints
    body: dict[str, Any] = {"name": "alertbridge", "version": __version__}
    if request.app.state.demo:  # elsewhere the names would tell a stranger where to knock
        body["webhooks"] = {name: f"{base}/webhooks/{name}" for name, e in sorted(endpoints.items()) if e.enabled}
    if request.app.state.emulator_mounted:
        body["emulator"] = {
            "alerts": f"{base}/emulator/_control/alerts",
            "requests": f"{base}/emulator/_control/requests",
        }
    return JSONResponse(body)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """503 with a JSON reason when the database does not answer, or when this process's delivery worker has not
    turned its loop for [worker].stuck_after_seconds."""
    try:
        async with request.app.state.db.connection() as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:
        if is_unavailable(exc):
            return error(503, "database_unavailable", "the database is unavailable")
        raise
    worker = request.app.state.worker
    if worker is not None:
        age = metrics.loop_age(worker.name)
        limit = request.app.state.stuck_after
        if age is None or age > limit:
            since = "has not started" if age is None else f"has not turned its loop for {age:.0f}s"
            return error(503, "worker_stuck", f"the delivery worker {since} (limit {limit:g}s)")
    return JSONResponse({"status": "ready"})


async def prometheus(request: Request) -> Response:
    exporter: metrics.Exporter = request.app.state.exporter
    return Response(await exporter.render(), media_type=metrics.CONTENT_TYPE)


def routes(emulator: Starlette | None = None) -> list[BaseRoute]:
    table: list[BaseRoute] = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", prometheus),
        Route("/webhooks/{integration}", receive, methods=["POST"]),
        Route("/callbacks/opsgenie", receive_callback, methods=["POST"]),
        Route("/api/v1/aliases", list_aliases),
        Route("/api/v1/aliases/{integration}/{alias:path}", get_alias),
        Route("/callbacks/opsgenie/{integration}", receive_callback, methods=["POST"]),
    ]
    if emulator is not None:
        table.append(Mount("/emulator", app=emulator))
    return table


def worker_routes() -> list[BaseRoute]:
    """The standalone worker's HTTP server."""
    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", prometheus)]
