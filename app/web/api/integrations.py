"""/api/v1/integrations: list, one, create (console-managed), tokens, enable/disable, target; export."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from alertbridge.admin import export
from alertbridge.admin import integrations as service
from alertbridge.admin.actor import Actor
from alertbridge.web.api.base import body_of, db_of, endpoint, ok, registry_of


@endpoint()
async def list_integrations(request: Request, actor: Actor) -> Response:
    return ok({"integrations": await service.listing(db_of(request))})


@endpoint()
async def get_integration(request: Request, actor: Actor) -> Response:
    return ok(await service.detail(db_of(request), request.path_params["name"]))


@endpoint(write=True)
async def create_integration(request: Request, actor: Actor) -> Response:
    created = await service.create(db_of(request), actor, request.app.state.secret_box, await body_of(request))
    await registry_of(request).reload(db_of(request))
    return ok(created, 201)


@endpoint(write=True)
async def add_token(request: Request, actor: Actor) -> Response:
    body = await body_of(request)
    label = body.get("label") if isinstance(body.get("label"), str) else None
    token, secret = await service.add_token(db_of(request), actor, request.path_params["name"], label)
    await registry_of(request).reload(db_of(request))
    return ok({**token, "token": secret}, 201)


@endpoint(write=True)
async def remove_token(request: Request, actor: Actor) -> Response:
    await service.remove_token(db_of(request), actor, request.path_params["name"], request.path_params["token_id"])
    await registry_of(request).reload(db_of(request))
    return ok({"removed": request.path_params["token_id"]})


@endpoint(write=True)
async def enable(request: Request, actor: Actor) -> Response:
    await service.set_enabled(db_of(request), actor, request.path_params["name"], True)
    await registry_of(request).reload(db_of(request))
    return ok({"enabled": True})


@endpoint(write=True)
async def disable(request: Request, actor: Actor) -> Response:
    await service.set_enabled(db_of(request), actor, request.path_params["name"], False)
    await registry_of(request).reload(db_of(request))
    return ok({"enabled": False})


@endpoint(write=True)
async def set_target(request: Request, actor: Actor) -> Response:
    name = request.path_params["name"]
    await service.set_target(db_of(request), actor, request.app.state.secret_box, name, await body_of(request))
    await registry_of(request).reload(db_of(request))
    return ok(await service.detail(db_of(request), name))


@endpoint()
async def export_toml(request: Request, actor: Actor) -> Response:
    text = await export.integrations_toml(db_of(request))
    return PlainTextResponse(
        text,
        media_type="application/toml",
        headers={"Content-Disposition": 'attachment; filename="alertbridge-integrations.toml"'},
    )
