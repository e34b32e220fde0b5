"""Every URL of the bridge, in one list (and, below it, the three of the standalone worker's HTTP server)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from alertbridge import __version__, metrics
from alertbridge.db import is_busy, is_unavailable
from alertbridge.web.admin import editor, login, operations, silences, versions
from alertbridge.web.admin import integrations as pages
from alertbridge.web.aliases_api import get_alias, list_aliases
from alertbridge.web.api import base as api_base
from alertbridge.web.api import integrations as api_integrations
from alertbridge.web.api import operations as api_ops
from alertbridge.web.api import silences as api_silences
from alertbridge.web.api import templates as api_templates
from alertbridge.web.callbacks import receive_callback
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
        Route(I + "/policies", api_silences.get_policies, methods=["GET"]),
        Route(I + "/policies", api_silences.put_policies, methods=["PUT"]),
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
        # The alias read API (sources with their inbound token, admins and viewers): app/web/aliases_api.py
        Route("/api/v1/aliases", list_aliases, methods=["GET"]),
        Route("/api/v1/aliases/{integration}/{alias:path}", get_alias, methods=["GET"]),
        Route("/api/v1/timeline", api_ops.alias_timeline, methods=["GET"]),
        Route("/api/v1/audit", api_ops.list_audit, methods=["GET"]),
        Route("/api/v1/silences", api_silences.list_silences, methods=["GET"]),
        Route("/api/v1/silences", api_silences.create_silence, methods=["POST"]),
        Route("/api/v1/silences/{id:int}", api_silences.get_silence, methods=["GET"]),
        Route("/api/v1/silences/{id:int}/expire", api_silences.expire_silence, methods=["POST"]),
        Route("/api/v1/export/integrations.toml", api_integrations.export_toml, methods=["GET"]),
        Route("/api/v1/{rest:path}", api_base.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


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
        if is_busy(exc):  # Postgres is up; every connection is at work
            return JSONResponse({"status": "ready", "database": "all connections busy"})
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


C = "/console/integrations/{name}"


def console_routes() -> list[BaseRoute]:
    """The console (docs/console.md): server-rendered HTML; a session cookie, a CSRF token on every form."""
    return [
        Route("/console", login.home, methods=["GET"]),
        Route("/console/login", login.login_form, methods=["GET"]),
        Route("/console/login", login.login, methods=["POST"]),
        Route("/console/logout", login.logout, methods=["POST"]),
        Route("/console/integrations", pages.listing, methods=["GET"]),
        Route("/console/integrations", pages.create, methods=["POST"]),
        Route("/console/new-integration", pages.new, methods=["GET"]),
        Route(C, pages.detail, methods=["GET"]),
        Route(C + "/tokens", pages.add_token, methods=["POST"]),
        Route(C + "/tokens/{token_id:int}/remove", pages.remove_token, methods=["POST"]),
        Route(C + "/enable", pages.enable, methods=["POST"]),
        Route(C + "/disable", pages.disable, methods=["POST"]),
        Route(C + "/target", pages.set_target, methods=["POST"]),
        Route(C + "/editor", editor.editor, methods=["GET"]),
        Route(C + "/preview", editor.preview_fragment, methods=["POST"]),
        Route(C + "/test", editor.test_fragment, methods=["POST"]),
        Route(C + "/save", editor.save, methods=["POST"]),
        Route(C + "/versions", versions.listing, methods=["GET"]),
        Route(C + "/diff", versions.diff, methods=["GET"]),
        Route(C + "/versions/{n:int}/restore", versions.restore, methods=["POST"]),
        Route(C + "/versions/{n:int}.j2", versions.source, methods=["GET"]),
        Route("/console/failed", operations.failed, methods=["GET"]),
        Route("/console/failed/replay", operations.replay_one, methods=["POST"]),
        Route("/console/failed/replay-all", operations.replay_all, methods=["POST"]),
        Route("/console/dead", operations.dead, methods=["GET"]),
        Route("/console/dead/replay", operations.dead_replay, methods=["POST"]),
        Route("/console/dead/discard", operations.dead_discard, methods=["POST"]),
        Route("/console/timeline", operations.alias_timeline, methods=["GET"]),
        Route("/console/audit", operations.audit_log, methods=["GET"]),
        Route("/console/silences", silences.listing, methods=["GET"]),
        Route("/console/silences", silences.create, methods=["POST"]),
        Route("/console/silences/{id:int}/expire", silences.expire, methods=["POST"]),
        Route("/console/export/integrations.toml", operations.export_toml, methods=["GET"]),
        Mount("/console/static", app=StaticFiles(packages=[("alertbridge.web", "static")]), name="static"),
    ]


def routes(emulator: Starlette | None = None) -> list[BaseRoute]:
    table: list[BaseRoute] = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", prometheus),
        Route("/webhooks/{integration}", receive, methods=["POST"]),
        Route("/callbacks/opsgenie", receive_callback, methods=["POST"]),
        Route("/callbacks/opsgenie/{integration}", receive_callback, methods=["POST"]),
        *api_routes(),
        *console_routes(),
    ]
    if emulator is not None:
        table.append(Mount("/emulator", app=emulator))
    return table


def worker_routes() -> list[BaseRoute]:
    """The standalone worker's HTTP server."""
    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", prometheus)]
