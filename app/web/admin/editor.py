"""The template editor: (left) one of the last 50 stored webhooks, filterable by status (template errors first),
or a pasted payload; (middle) the template source; (right) the preview — per event the action, alias, decision
against the current alias state, every OpsGenie field, the exact HTTP request, and the limit report. Preview on
demand and about a second after typing stops (htmx); "test against recent traffic"; save with a comment."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from alertbridge.admin import integrations, preview, templates, traffic
from alertbridge.admin.errors import Invalid, ServiceError
from alertbridge.models import InboundStatus
from alertbridge.store import inbound
from alertbridge.web.admin.base import Session, body_text, db_of, form_of, page, redirect, registry_of, render

STATUSES = [s.value for s in InboundStatus if s != InboundStatus.HANDSHAKE]


async def _page(
    request: Request,
    session: Session,
    name: str,
    *,
    source: str | None = None,
    comment: str = "",
    status: int = 200,
    error: str | None = None,
    error_line: int | None = None,
) -> Response:
    db = db_of(request)
    integ = await integrations.detail(db, name)
    active = await templates.active(db, name)
    wanted = request.query_params.get("status") or None
    if wanted not in STATUSES:
        wanted = None
    async with db.connection() as conn:
        recent = await inbound.recent(conn, name, status=wanted, limit=50)
        chosen_id = _int(request.query_params.get("inbound"))
        if chosen_id is None and recent and request.query_params.get("paste") is None:
            chosen_id = recent[0]["id"]
        chosen = await inbound.get(conn, chosen_id) if chosen_id is not None else None
    if chosen is not None and chosen["integration"] != name:
        chosen = None
    return render(
        request,
        "editor.html",
        status=status,
        session=session,
        integ=integ,
        active=active,
        source=active["source"] if source is None else source,
        comment=comment,
        recent=recent,
        chosen=chosen,
        statuses=STATUSES,
        wanted=wanted,
        error=error,
        error_line=error_line,
        can_save=session.actor.is_admin and not integ["locked"],
    )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


@page()
async def editor(request: Request, session: Session) -> Response:
    return await _page(request, session, request.path_params["name"])


def _preview_body(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"source": str(form.get("source") or "")}
    inbound_id = _int(form.get("inbound_id"))
    if inbound_id is not None:
        body["inbound_id"] = inbound_id
    else:
        body["body"] = str(form.get("payload") or "")
    return body


@page()
async def preview_fragment(request: Request, session: Session) -> Response:
    """POST (htmx): the right pane. A preview reads alias states and writes nothing."""
    name = request.path_params["name"]
    form = await form_of(request)
    body = _preview_body(form)
    try:
        if "body" in body and not body["body"].strip():
            raise Invalid("Choose a stored webhook on the left, or paste a payload.")
        result = await preview.run(db_of(request), registry_of(request), name, body)
    except ServiceError as exc:
        return render(request, "preview.html", result=None, message=exc.message)
    extra = {}
    if result["inbound_id"] is not None:  # the left pane shows the payload this preview used
        async with db_of(request).connection() as conn:
            row = await inbound.get(conn, result["inbound_id"])
        extra["payload_text"] = body_text(row["body"] if row else None)
    return render(request, "preview.html", result=result, message=None, **extra)


@page()
async def test_fragment(request: Request, session: Session) -> Response:
    """POST (htmx): "test against recent traffic" — the draft and the active version over the last 200."""
    name = request.path_params["name"]
    form = await form_of(request)
    report = await traffic.run(db_of(request), registry_of(request), name, str(form.get("source") or ""))
    return render(request, "traffic.html", report=report, integration=name)


@page(write=True)
async def save(request: Request, session: Session) -> Response:
    name = request.path_params["name"]
    form = await form_of(request)
    source = str(form.get("source") or "")
    comment = str(form.get("comment") or "").strip()
    if not comment:
        return await _page(
            request, session, name, source=source, status=422, error="Say what you changed: a comment is required."
        )
    try:
        version = await templates.save(db_of(request), session.actor, name, source, comment)
    except Invalid as exc:
        line = (exc.extra.get("template_error") or {}).get("line")
        return await _page(
            request, session, name, source=source, comment=comment, status=422, error=exc.message, error_line=line
        )
    await registry_of(request).reload(db_of(request))
    back = f"?inbound={form.get('inbound_id')}" if _int(form.get("inbound_id")) is not None else ""
    return redirect(
        request,
        f"/integrations/{name}/editor{back}",
        f"Version {version['version']} saved: it is active now in every process.",
    )
