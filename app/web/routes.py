"""Every URL of the bridge, in one list."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from alertbridge import __version__
from alertbridge.db import is_unavailable
from alertbridge.web.api import base as api_base
from alertbridge.web.api import integrations as api_integrations
from alertbridge.web.api import operations as api_ops
from alertbridge.web.api import templates as api_templates
from alertbridge.web.webhooks import error, receive

I = "/api/v1/integrations/{name}"  # noqa: E741


def api_routes() -> list[BaseRoute]:
    """The admin API (docs/api.md): JSON, ``Authorization: Bearer <admin token>``; viewer tokens read only."""
    return [
        Route("/api/v1/integrations", api_integrations.list_integrations, methods=["GET"]),
        Route("/api/v1/integrations", api_integrations.create_integration, methods=["POST"]),
        Route(I, api_integrations.get_integration, methods=["GET"]),
        Route(I + "/tokens", api_integrations.add_token, methods=["POST"]),
        Route(I + "/tokens/{token_id:int}", api_integrations.remove_token, methods=["DELETE"]),
        Route(I + "/enable", api_integrations.enable, methods=["POST"]),
        Route(I + "/disable", api_integrations.disable, methods=["POST"]),
        Route(I + "/target", api_integrations.set_target, methods=["PUT"]),
        Route(I + "/template", api_templates.get_template, methods=["GET"]),
        Route(I + "/template", api_templates.put_template, methods=["PUT"]),
        Route(I + "/template/preview", api_templates.preview_template, methods=["POST"]),
        Route(I + "/template/test", api_templates.test_template, methods=["POST"]),
        Route(I + "/template/versions", api_templates.list_versions, methods=["GET"]),
        Route(I + "/template/versions/{n:int}", api_templates.get_version, methods=["GET"]),
        Route(I + "/template/versions/{n:int}/source", api_templates.version_source, methods=["GET"]),
        Route(I + "/template/versions/{n:int}/restore", api_templates.restore_version, methods=["POST"]),
        Route(I + "/template/diff", api_templates.diff_versions, methods=["GET"]),
        Route("/api/v1/inbound", api_ops.list_inbound, methods=["GET"]),
        Route("/api/v1/inbound/replay", api_ops.replay_bulk, methods=["POST"]),
        Route("/api/v1/inbound/{id:int}", api_ops.get_inbound, methods=["GET"]),
        Route("/api/v1/inbound/{id:int}/replay", api_ops.replay_one, methods=["POST"]),
        Route("/api/v1/dead-letters", api_ops.list_dead, methods=["GET"]),
        Route("/api/v1/dead-letters/replay", api_ops.replay_dead, methods=["POST"]),
        Route("/api/v1/dead-letters/discard", api_ops.discard_dead, methods=["POST"]),
        Route("/api/v1/aliases", api_ops.search_aliases, methods=["GET"]),
        Route("/api/v1/timeline", api_ops.alias_timeline, methods=["GET"]),
        Route("/api/v1/audit", api_ops.list_audit, methods=["GET"]),
        Route("/api/v1/export/integrations.toml", api_integrations.export_toml, methods=["GET"]),
        Route("/api/v1/{rest:path}", api_base.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


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
        *api_routes(),
    ]
    if emulator is not None:
        table.append(Mount("/emulator", app=emulator))
    return table
