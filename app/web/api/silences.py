"""/api/v1/silences: list (active and waiting ones; ``?all=1`` also those that are over), one, create, expire early;
and an integration's lifecycle policies (/api/v1/integrations/{name}/policies). The JSON is documented in
docs/api.md; the meaning of each field in docs/policies.md."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from alertbridge.admin import policies, silences
from alertbridge.admin.actor import Actor
from alertbridge.web.api.base import body_of, db_of, endpoint, ok


@endpoint()
async def list_silences(request: Request, actor: Actor) -> Response:
    q = request.query_params
    rows = await silences.listing(
        db_of(request), integration=q.get("integration") or None, include_over=q.get("all") in ("1", "true")
    )
    return ok({"silences": rows})


@endpoint()
async def get_silence(request: Request, actor: Actor) -> Response:
    return ok(await silences.get(db_of(request), request.path_params["id"]))


@endpoint(write=True)
async def create_silence(request: Request, actor: Actor) -> Response:
    return ok(await silences.create(db_of(request), actor, await body_of(request)), status=201)


@endpoint(write=True)
async def expire_silence(request: Request, actor: Actor) -> Response:
    return ok(await silences.expire(db_of(request), actor, request.path_params["id"]))


@endpoint()
async def get_policies(request: Request, actor: Actor) -> Response:
    return ok(await policies.get(db_of(request), request.path_params["name"]))


@endpoint(write=True)
async def put_policies(request: Request, actor: Actor) -> Response:
    return ok(await policies.put(db_of(request), actor, request.path_params["name"], await body_of(request)))
