"""Console pages for template versions: the list (who, when, comment), a diff of any two (everything escaped:
authors and sources are untrusted), restore (a new version), and a version as a .j2 download."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from alertbridge.admin import integrations, templates
from alertbridge.admin.errors import BadRequest
from alertbridge.web.admin.base import SECURITY_HEADERS, Session, db_of, form_of, page, redirect, registry_of, render


@page()
async def listing(request: Request, session: Session) -> Response:
    name = request.path_params["name"]
    db = db_of(request)
    integ = await integrations.detail(db, name)
    rows = await templates.listing(db, name)
    return render(request, "versions.html", session=session, integ=integ, versions=rows)


def _number(request: Request, key: str) -> int:
    try:
        return int(request.query_params.get(key, ""))
    except ValueError:
        raise BadRequest("choose two versions to compare") from None


@page()
async def diff(request: Request, session: Session) -> Response:
    name = request.path_params["name"]
    db = db_of(request)
    a, b = _number(request, "from"), _number(request, "to")
    old, new = await templates.get(db, name, a), await templates.get(db, name, b)
    integ = await integrations.detail(db, name)
    return render(request, "diff.html", session=session, integ=integ, old=old, new=new, diff=templates.diff(old, new))


@page(write=True)
async def restore(request: Request, session: Session) -> Response:
    name, n = request.path_params["name"], request.path_params["n"]
    form = await form_of(request)
    version = await templates.restore(db_of(request), session.actor, name, n, str(form.get("comment") or ""))
    await registry_of(request).reload(db_of(request))
    return redirect(
        request,
        f"/integrations/{name}/versions",
        f"Version {n} restored as version {version['version']}: it is active now in every process.",
    )


@page()
async def source(request: Request, session: Session) -> Response:
    name, n = request.path_params["name"], request.path_params["n"]
    row = await templates.get(db_of(request), name, n)
    return PlainTextResponse(
        row["source"],
        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}-v{n}.j2"'},
    )
