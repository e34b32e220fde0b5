"""Console login and logout. The login form carries a CSRF token too (double submit: a cookie and the form);
attempts are rate-limited in Postgres; the session id lives only in an HttpOnly cookie (its hash in Postgres)."""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from alertbridge.admin import auth
from alertbridge.admin.errors import TooMany, Unauthorized
from alertbridge.web.admin.base import (
    LOGIN_CSRF_COOKIE,
    PREFIX,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    Session,
    db_of,
    error_page,
    form_of,
    page,
    redirect,
    render,
    secure,
    session_of,
)


def _safe_next(value: str | None) -> str:
    """Only a console path (never another site) after login."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value[len(PREFIX) :]
    return "/integrations"


def _login_page(request: Request, status: int = 200, message: str | None = None, name: str = "") -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        status=status,
        csrf=token,
        message=message,
        name=name,
        next=request.query_params.get("next", ""),
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, path=PREFIX, httponly=True, samesite="lax", secure=secure(request), max_age=3600
    )
    return response


async def login_form(request: Request) -> Response:
    if await session_of(request) is not None:
        return redirect(request, "/integrations")
    return _login_page(request)


async def login(request: Request) -> Response:
    form = await form_of(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, str(form.get("csrf_token") or "")):
        return error_page(request, 403, "The login form's CSRF token is missing or wrong: reload the page.")
    name = str(form.get("name") or "")
    client = request.client.host if request.client else None
    try:
        session_id, _ = await auth.login(db_of(request), name, str(form.get("password") or ""), client)
    except Unauthorized as exc:
        return _login_page(request, 401, exc.message, name)
    except TooMany as exc:
        response = _login_page(request, 429, exc.message, name)
        response.headers["Retry-After"] = str(exc.extra.get("retry_after", 900))
        return response
    response = redirect(request, _safe_next(request.query_params.get("next") or str(form.get("next") or "")))
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure(request),
        max_age=int(auth.SESSION_TTL),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return response


@page()
async def logout(request: Request, session: Session) -> Response:
    await auth.logout(db_of(request), request.cookies.get(SESSION_COOKIE, ""))
    response = redirect(request, "/login", "You are logged out.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def home(request: Request) -> Response:
    return redirect(request, "/integrations")


__all__ = ["SECURITY_HEADERS", "home", "login", "login_form", "logout"]
