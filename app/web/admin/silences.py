"""Console page for silences and maintenance windows: what is active or waiting (and, on demand, what is over),
a form to make one, and "Expire now" on each. Every change is audited (app/admin/silences.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from alertbridge.admin import silences
from alertbridge.admin.errors import Invalid, ServiceError
from alertbridge.web.admin.base import Session, db_of, form_of, page, redirect, registry_of, render


async def _page(request: Request, session: Session, *, error: str | None = None, form: object = None) -> Response:
    show_all = request.query_params.get("all") == "1"
    rows = await silences.listing(db_of(request), include_over=show_all)
    names = sorted(registry_of(request).current.endpoints)
    return render(
        request,
        "silences.html",
        status=422 if error else 200,
        session=session,
        rows=rows,
        show_all=show_all,
        integrations=names,
        error=error,
        form=form or {},
    )


@page()
async def listing(request: Request, session: Session) -> Response:
    return await _page(request, session)


@page(write=True)
async def create(request: Request, session: Session) -> Response:
    form = await form_of(request)
    body = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    try:
        row = await silences.create(db_of(request), session.actor, body)
    except Invalid as exc:  # the form again, as typed, with what is wrong
        return await _page(request, session, error=exc.message, form=body)
    return redirect(request, "/silences", f"Silence #{row['id']} created ({row['state']}).")


@page(write=True)
async def expire(request: Request, session: Session) -> Response:
    silence_id = request.path_params["id"]
    try:
        await silences.expire(db_of(request), session.actor, silence_id)
    except ServiceError:
        raise
    return redirect(
        request, "/silences", f"Silence #{silence_id} expired: what it withheld and still fires is sent now."
    )
