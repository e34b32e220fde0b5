"""What every console page shares: its own Jinja environment (autoescaped; separate from the payload sandbox),
the session (an HttpOnly, SameSite=Lax cookie; Secure behind https), the CSRF check on every POST, roles, flash
messages, security headers, and service errors shown as pages (never a stack trace)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from alertbridge import __version__
from alertbridge.admin import auth
from alertbridge.admin.actor import Actor
from alertbridge.admin.errors import BadRequest, ServiceError
from alertbridge.db import Database, is_unavailable
from alertbridge.registry import Registry

log = logging.getLogger("alertbridge.console")

SESSION_COOKIE = "alertbridge_session"
LOGIN_CSRF_COOKIE = "alertbridge_login_csrf"
FLASH_COOKIE = "alertbridge_flash"
PREFIX = "/console"
MAX_FORM = 2_097_152

SECURITY_HEADERS = {
    # No inline script or style anywhere: a payload that sneaks markup into a page still cannot run.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return "—" if value is None else str(value)
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def body_text(body: Any) -> str:
    """A stored body as readable text: pretty JSON when it parses, else the text itself."""
    if body is None:
        return ""
    raw = bytes(body).decode("utf-8", "replace")
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw


env = Environment(
    loader=PackageLoader("alertbridge.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(
    when=_when,
    pretty=_pretty,
    compact=_compact,
    body_text=body_text,
    urlpart=lambda s: quote(str(s), safe=""),
    unquote=unquote,
)
env.globals.update(version=__version__, prefix=PREFIX)


@dataclass(frozen=True)
class Session:
    actor: Actor
    csrf: str


def db_of(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def registry_of(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def session_of(request: Request) -> Session | None:
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if not session_id:
        return None
    actor = await auth.session_actor(db_of(request), session_id)
    return Session(actor, auth.csrf_token(session_id)) if actor else None


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    flash = request.cookies.get(FLASH_COOKIE)
    html = env.get_template(template).render(request=request, flash=flash, **context)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path=PREFIX)
    return response


def redirect(request: Request, path: str, flash: str | None = None) -> RedirectResponse:
    response = RedirectResponse(PREFIX + path, status_code=303, headers=SECURITY_HEADERS)
    if flash:
        response.set_cookie(
            FLASH_COOKIE, quote(flash[:300]), path=PREFIX, httponly=True, samesite="lax", secure=secure(request)
        )
    return response


def error_page(request: Request, status: int, message: str, session: Session | None = None) -> HTMLResponse:
    titles = {400: "Bad request", 401: "Log in", 403: "Not allowed", 404: "Not found", 409: "Conflict"}
    return render(
        request,
        "error.html",
        status=status,
        title=titles.get(status, "Error"),
        message=message,
        session=session,
    )


async def form_of(request: Request) -> FormData:
    """The posted form (application/x-www-form-urlencoded: every console form and htmx request), parsed once and
    kept on the request. Capped in size; anything else is refused."""
    cached = request.scope.get("alertbridge.form")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", ""):
        raise BadRequest("the console accepts only application/x-www-form-urlencoded forms")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM:
            raise BadRequest(f"the form is larger than {MAX_FORM} bytes")
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=500, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form is not valid UTF-8 form data") from None
    form = FormData(pairs)
    request.scope["alertbridge.form"] = form
    return form


Page = Callable[[Request, Session], Awaitable[Response]]


def page(*, write: bool = False) -> Callable[[Page], Callable[[Request], Awaitable[Response]]]:
    """A console route: needs a session (else the login page), a CSRF token on every POST, the admin role for
    changes (a viewer gets 403)."""

    def wrap(handler: Page) -> Callable[[Request], Awaitable[Response]]:
        @wraps(handler)
        async def run(request: Request) -> Response:
            session: Session | None = None
            try:
                session = await session_of(request)
                if session is None:
                    if request.method == "GET":
                        return redirect(request, "/login?next=" + quote(request.url.path, safe=""))
                    return error_page(request, 401, "Your session has ended: log in again.")
                if request.method == "POST":
                    form = await form_of(request)
                    supplied = str(form.get("csrf_token") or request.headers.get("x-csrf-token") or "")
                    if not auth.csrf_ok(session.csrf, supplied):
                        return error_page(request, 403, "The form's CSRF token is missing or wrong: reload the page.")
                if write and not session.actor.is_admin:
                    return error_page(request, 403, "Your role is viewer: you can read everything and change nothing.")
                return await handler(request, session)
            except ServiceError as exc:
                return error_page(request, exc.status, exc.message, session)
            except Exception as exc:
                if is_unavailable(exc):
                    return error_page(request, 503, "The database is unavailable; try again in a moment.", session)
                log.exception("console %s %s failed", request.method, request.url.path)
                return error_page(request, 500, "Unexpected error; see the bridge's log.", session)

        return run

    return wrap
