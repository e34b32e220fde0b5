"""Console pages for operations: failed webhooks (with their replays; replay one or all), dead letters (replay,
discard with a reason), the alias timeline, the admin audit, and the integrations as TOML."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from alertbridge.admin import export, replays, timeline
from alertbridge.admin.errors import Invalid, NotFound
from alertbridge.store import audit, inbound
from alertbridge.web.admin.base import SECURITY_HEADERS, Session, db_of, form_of, page, redirect, registry_of, render

SINCE = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


@page()
async def failed(request: Request, session: Session) -> Response:
    integration = request.query_params.get("integration") or None
    async with db_of(request).connection() as conn:
        rows = await inbound.failed(conn, integration, limit=100)
        replayed = await inbound.replays_of(conn, [r["id"] for r in rows]) if rows else []
    by_id: dict[int, list[dict[str, object]]] = {}
    for r in replayed:
        by_id.setdefault(int(r["inbound_id"]), []).append(r)
    names = sorted(registry_of(request).current.endpoints)
    return render(
        request,
        "failed.html",
        session=session,
        rows=rows,
        replays=by_id,
        integration=integration,
        integrations=names,
        since=list(SINCE),
    )


@page(write=True)
async def replay_one(request: Request, session: Session) -> Response:
    form = await form_of(request)
    try:
        inbound_id = int(str(form.get("inbound_id") or ""))
    except ValueError:
        raise Invalid("which webhook? (inbound_id)") from None
    result = await replays.replay_one(db_of(request), registry_of(request), session.actor, inbound_id)
    outcome = "accepted" if result["http_status"] == 202 else f"still failing ({result.get('message', '')})"
    back = f"?integration={form.get('integration')}" if form.get("integration") else ""
    return redirect(request, f"/failed{back}", f"Webhook {inbound_id} replayed with the active version: {outcome}.")


@page(write=True)
async def replay_all(request: Request, session: Session) -> Response:
    form = await form_of(request)
    integration = str(form.get("integration") or "")
    window = SINCE.get(str(form.get("since") or "24h"))
    if not integration or window is None:
        raise Invalid("choose an integration and a time window")
    result = await replays.replay_failed(
        db_of(request), registry_of(request), session.actor, integration, datetime.now(UTC) - window
    )
    return redirect(
        request,
        f"/failed?integration={integration}",
        f"Replayed {result['replayed']} failed webhooks of {integration}: {result['fixed']} accepted now.",
    )


@page()
async def dead(request: Request, session: Session) -> Response:
    integration = request.query_params.get("integration") or None
    rows = await replays.dead_letters(db_of(request), integration)
    names = sorted(registry_of(request).current.endpoints)
    return render(request, "dead.html", session=session, rows=rows, integration=integration, integrations=names)


def _ids(form: object) -> list[int]:
    values = form.getlist("ids")  # type: ignore[attr-defined]
    try:
        return [int(v) for v in values]
    except ValueError:
        raise Invalid("bad outbox id") from None


@page(write=True)
async def dead_replay(request: Request, session: Session) -> Response:
    form = await form_of(request)
    ids = _ids(form)
    if ids:
        done = await replays.requeue(db_of(request), session.actor, ids=ids)
    else:
        done = await replays.requeue(db_of(request), session.actor, integration=str(form.get("integration") or ""))
    return redirect(request, "/dead", f"{len(done)} dead letter(s) queued again: the worker sends them now.")


@page(write=True)
async def dead_discard(request: Request, session: Session) -> Response:
    form = await form_of(request)
    done = await replays.discard(db_of(request), session.actor, _ids(form), str(form.get("reason") or ""))
    return redirect(request, "/dead", f"{len(done)} dead letter(s) discarded.")


@page()
async def alias_timeline(request: Request, session: Session) -> Response:
    q = request.query_params
    integration, alias, text = q.get("integration") or None, q.get("alias") or None, q.get("text") or None
    found = await timeline.search(db_of(request), integration=integration, alias=alias, text=text)
    shown = None
    if integration and alias:
        try:
            shown = await timeline.timeline(db_of(request), integration, alias)
        except NotFound:
            shown = None
    names = sorted(registry_of(request).current.endpoints)
    return render(
        request,
        "timeline.html",
        session=session,
        found=found,
        shown=shown,
        integration=integration,
        alias=alias,
        text=text,
        integrations=names,
    )


@page()
async def audit_log(request: Request, session: Session) -> Response:
    async with db_of(request).connection() as conn:
        rows = await audit.listing(conn, target=request.query_params.get("target") or None, limit=300)
    return render(request, "audit.html", session=session, rows=rows, target=request.query_params.get("target"))


@page()
async def export_toml(request: Request, session: Session) -> Response:
    text = await export.integrations_toml(db_of(request))
    return PlainTextResponse(
        text,
        media_type="application/toml",
        headers={**SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="alertbridge-integrations.toml"'},
    )
