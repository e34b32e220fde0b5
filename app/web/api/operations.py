"""/api/v1 for stored webhooks (list, one, replay one, replay the failed ones since T), dead letters (list,
replay, discard with a reason), the alias search and timeline, and the admin audit."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from alertbridge.admin import replays, timeline
from alertbridge.admin.actor import Actor
from alertbridge.admin.errors import BadRequest, Invalid, NotFound
from alertbridge.models import InboundStatus
from alertbridge.store import audit, inbound
from alertbridge.web.api.base import body_of, db_of, endpoint, int_param, ok, registry_of


@endpoint()
async def list_inbound(request: Request, actor: Actor) -> Response:
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in set(InboundStatus):
        raise BadRequest(f"'status' must be one of {', '.join(InboundStatus)}")
    limit = int_param(request, "limit", 50, high=500)
    async with db_of(request).connection() as conn:
        if q.get("integration"):
            rows = await inbound.recent(conn, q["integration"], status=status, limit=limit)
        else:
            rows = await inbound.failed(conn, None, limit=limit)
    return ok({"inbound": rows})


@endpoint()
async def get_inbound(request: Request, actor: Actor) -> Response:
    inbound_id = request.path_params["id"]
    async with db_of(request).connection() as conn:
        rows = await inbound.by_ids(conn, [inbound_id])
        if not rows:
            raise NotFound(f"no stored webhook {inbound_id}")
        row = await inbound.get(conn, inbound_id)
        replayed = await inbound.replays_of(conn, [inbound_id])
    assert row is not None
    body = bytes(row["body"]).decode("utf-8", "replace") if row["body"] is not None else None
    return ok({**rows[0], "headers": row["headers"], "query": row["query"], "body": body, "replays": replayed})


@endpoint(write=True)
async def replay_one(request: Request, actor: Actor) -> Response:
    body = await body_of(request)
    force = body.get("force", False) is True
    result = await replays.replay_one(
        db_of(request), registry_of(request), actor, request.path_params["id"], force=force
    )
    return ok(result)


@endpoint(write=True)
async def replay_bulk(request: Request, actor: Actor) -> Response:
    body = await body_of(request)
    integration, since = body.get("integration"), body.get("since")
    if not isinstance(integration, str) or not isinstance(since, str):
        raise Invalid("give 'integration' and 'since' (an ISO 8601 time, e.g. 2026-12-01T10:00:00Z)")
    try:
        when = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid("'since' must be an ISO 8601 time, e.g. 2026-12-01T10:00:00Z") from None
    if when.tzinfo is None:
        raise Invalid("'since' needs a time zone (e.g. a trailing Z for UTC)")
    return ok(await replays.replay_failed(db_of(request), registry_of(request), actor, integration, when))


@endpoint()
async def list_dead(request: Request, actor: Actor) -> Response:
    integration = request.query_params.get("integration") or None
    limit = int_param(request, "limit", 200, high=1000)
    return ok({"dead_letters": await replays.dead_letters(db_of(request), integration, limit)})


@endpoint(write=True)
async def replay_dead(request: Request, actor: Actor) -> Response:
    body = await body_of(request)
    ids = await replays.requeue(db_of(request), actor, ids=body.get("ids"), integration=body.get("integration"))
    return ok({"requeued": ids})


@endpoint(write=True)
async def discard_dead(request: Request, actor: Actor) -> Response:
    body = await body_of(request)
    ids = await replays.discard(db_of(request), actor, body.get("ids"), body.get("reason"))
    return ok({"discarded": ids})


@endpoint()
async def alias_timeline(request: Request, actor: Actor) -> Response:
    q = request.query_params
    if not q.get("integration") or not q.get("alias"):
        raise BadRequest("give ?integration=NAME&alias=ALIAS")
    return ok(await timeline.timeline(db_of(request), q["integration"], q["alias"]))


@endpoint()
async def list_audit(request: Request, actor: Actor) -> Response:
    limit = int_param(request, "limit", 200, high=1000)
    async with db_of(request).connection() as conn:
        rows = await audit.listing(conn, target=request.query_params.get("target") or None, limit=limit)
    return ok({"audit": rows})
