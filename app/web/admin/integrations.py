"""Console pages for integrations: the list (webhook URL, auth, target, active version, last 24 h), a new
console-managed integration, one integration (tokens: a new one shown once; target and API key; disable)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from alertbridge.admin import integrations as service
from alertbridge.admin.errors import ServiceError
from alertbridge.config import PRIORITIES, REGION_BASE_URLS
from alertbridge.rendering import builtin_template_names
from alertbridge.web.admin.base import Session, db_of, form_of, page, redirect, registry_of, render


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@page()
async def listing(request: Request, session: Session) -> Response:
    rows = await service.listing(db_of(request))
    return render(request, "integrations.html", session=session, integrations=rows, base=_base(request))


def _new_page(request: Request, session: Session, status: int = 200, **extra: object) -> Response:
    return render(
        request,
        "integration_new.html",
        status=status,
        session=session,
        templates=builtin_template_names(),
        regions=list(REGION_BASE_URLS),
        priorities=PRIORITIES,
        has_secret_key=request.app.state.secret_box is not None,
        **extra,
    )


@page(write=True)
async def new(request: Request, session: Session) -> Response:
    return _new_page(request, session, values={})


@page(write=True)
async def create(request: Request, session: Session) -> Response:
    form = await form_of(request)
    data = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    if data.get("target_kind") == "region":
        data.pop("base_url", None)
    else:
        data.pop("region", None)
    try:
        created = await service.create(db_of(request), session.actor, request.app.state.secret_box, data)
    except ServiceError as exc:
        if exc.status in (409, 422):
            return _new_page(request, session, status=exc.status, error=exc.message, values=data)
        raise
    await registry_of(request).reload(db_of(request))
    return await _render_detail(request, session, created["name"], new_token=created.get("token"), status=201)


async def _render_detail(
    request: Request, session: Session, name: str, *, new_token: str | None = None, status: int = 200, **extra: object
) -> Response:
    integ = await service.detail(db_of(request), name)
    return render(
        request,
        "integration.html",
        status=status,
        session=session,
        integ=integ,
        base=_base(request),
        new_token=new_token,
        regions=list(REGION_BASE_URLS),
        has_secret_key=request.app.state.secret_box is not None,
        **extra,
    )


@page()
async def detail(request: Request, session: Session) -> Response:
    return await _render_detail(request, session, request.path_params["name"])


@page(write=True)
async def add_token(request: Request, session: Session) -> Response:
    name = request.path_params["name"]
    form = await form_of(request)
    _, token = await service.add_token(db_of(request), session.actor, name, str(form.get("label") or ""))
    await registry_of(request).reload(db_of(request))
    return await _render_detail(request, session, name, new_token=token)


@page(write=True)
async def remove_token(request: Request, session: Session) -> Response:
    name = request.path_params["name"]
    await service.remove_token(db_of(request), session.actor, name, request.path_params["token_id"])
    await registry_of(request).reload(db_of(request))
    return redirect(request, f"/integrations/{name}", "Token removed: it no longer works.")


async def _set_enabled(request: Request, session: Session, enabled: bool, message: str) -> Response:
    name = request.path_params["name"]
    await service.set_enabled(db_of(request), session.actor, name, enabled)
    await registry_of(request).reload(db_of(request))
    return redirect(request, f"/integrations/{name}", message)


@page(write=True)
async def enable(request: Request, session: Session) -> Response:
    return await _set_enabled(request, session, True, "Enabled: webhooks are accepted again.")


@page(write=True)
async def disable(request: Request, session: Session) -> Response:
    return await _set_enabled(request, session, False, "Disabled: its webhooks are answered 404.")


@page(write=True)
async def set_target(request: Request, session: Session) -> Response:
    name = request.path_params["name"]
    form = await form_of(request)
    data = {k: str(v) for k, v in form.items() if k != "csrf_token" and str(v).strip()}
    try:
        await service.set_target(db_of(request), session.actor, request.app.state.secret_box, name, data)
    except ServiceError as exc:
        if exc.status == 422:
            return await _render_detail(request, session, name, status=422, target_error=exc.message)
        raise
    await registry_of(request).reload(db_of(request))
    return redirect(request, f"/integrations/{name}", "Target saved.")
