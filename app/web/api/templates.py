"""/api/v1/integrations/{name}/template: the active version, save, preview, test against recent traffic, the
versions, one version, a diff of two, restore, a version as a .j2 file."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from alertbridge.admin import preview, templates, traffic
from alertbridge.admin.actor import Actor
from alertbridge.admin.errors import BadRequest
from alertbridge.web.api.base import body_of, db_of, endpoint, int_param, ok, registry_of


@endpoint()
async def get_template(request: Request, actor: Actor) -> Response:
    return ok(templates.public(await templates.active(db_of(request), request.path_params["name"])))


@endpoint(write=True)
async def put_template(request: Request, actor: Actor) -> Response:
    body = await body_of(request)
    name = request.path_params["name"]
    version = await templates.save(db_of(request), actor, name, body.get("source"), body.get("comment", ""))
    await registry_of(request).reload(db_of(request))
    return ok({"version": version["version"], "sha256": version["sha256"]}, 201)


@endpoint()
async def preview_template(request: Request, actor: Actor) -> Response:
    body = await body_of(request)
    return ok(await preview.run(db_of(request), registry_of(request), request.path_params["name"], body))


@endpoint()
async def test_template(request: Request, actor: Actor) -> Response:
    body = await body_of(request)
    limit = body.get("limit", traffic.LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise BadRequest("'limit' must be an integer")
    report = await traffic.run(
        db_of(request), registry_of(request), request.path_params["name"], body.get("source"), limit=limit
    )
    return ok(report)


@endpoint()
async def list_versions(request: Request, actor: Actor) -> Response:
    rows = await templates.listing(db_of(request), request.path_params["name"])
    return ok({"versions": [templates.public(r) for r in rows]})


@endpoint()
async def get_version(request: Request, actor: Actor) -> Response:
    row = await templates.get(db_of(request), request.path_params["name"], request.path_params["n"])
    return ok(templates.public(row))


@endpoint()
async def version_source(request: Request, actor: Actor) -> Response:
    name, n = request.path_params["name"], request.path_params["n"]
    row = await templates.get(db_of(request), name, n)
    return PlainTextResponse(
        row["source"],
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-v{n}.j2"'},
    )


@endpoint()
async def diff_versions(request: Request, actor: Actor) -> Response:
    name = request.path_params["name"]
    a = int_param(request, "from", 0, low=0, high=10**9)
    b = int_param(request, "to", 0, low=0, high=10**9)
    if not a or not b:
        raise BadRequest("give two versions: ?from=N&to=M")
    db = db_of(request)
    return ok(templates.diff(await templates.get(db, name, a), await templates.get(db, name, b)))


@endpoint(write=True)
async def restore_version(request: Request, actor: Actor) -> Response:
    body = await body_of(request)
    name = request.path_params["name"]
    version = await templates.restore(db_of(request), actor, name, request.path_params["n"], body.get("comment", ""))
    await registry_of(request).reload(db_of(request))
    return ok({"version": version["version"], "restored_from": version["restored_from"]}, 201)
