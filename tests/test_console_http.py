"""The console over plain HTTP (no browser): sessions, cookies, CSRF, the login rate limit across processes, roles,
error pages. What the browser shows is in test_console_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from alertbridge.config import parse_config
from alertbridge.main import build_app, build_bridge
from tests.admin_harness import Console, console_config_text, make_user, running_console
from tests.harness import FIXTURES
from tests.servers import serve_app

PASSWORD = "alice-password-1"


@pytest.fixture
def console(database_url: str) -> Iterator[Console]:
    with running_console(database_url, run_worker=False) as c:
        make_user(database_url, "alice", PASSWORD, "admin")
        make_user(database_url, "victor", PASSWORD, "viewer")
        yield c


def client(base: str, **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=base, follow_redirects=False, timeout=10, **kw)


def login(c: httpx.Client, name: str = "alice", password: str = PASSWORD, **kw: Any) -> httpx.Response:
    page = c.get("/console/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, page.text
    return c.post("/console/login", data={"name": name, "password": password, "csrf_token": csrf.group(1)}, **kw)


def csrf_of(c: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', c.get(path).text)
    assert found
    return found.group(1)


def test_session_cookie_logout_and_expiry(console: Console, db: psycopg.Connection) -> None:
    with client(console.base_url) as c:
        assert c.get("/console/integrations").headers["location"] == "/console/login?next=%2Fconsole%2Fintegrations"
        r = login(c)
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "alertbridge_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain http
        session_id = c.cookies["alertbridge_session"]
        assert session_id not in str(db.execute("SELECT * FROM admin_sessions").fetchall())  # stored hashed
        page = c.get("/console/integrations")
        assert page.status_code == 200
        assert page.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
        assert page.headers["x-frame-options"] == "DENY"
        assert c.post("/console/logout", data={"csrf_token": csrf_of(c, "/console/integrations")}).status_code == 303
        assert db.execute("SELECT count(*) FROM admin_sessions").fetchone() == (0,)
        assert c.get("/console/integrations").status_code == 303
        login(c)
        db.execute("UPDATE admin_sessions SET expires_at = now() - interval '1 second'")
        assert c.get("/console/integrations").status_code == 303  # expired


def test_secure_cookie_behind_https(console: Console) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a TLS-terminating proxy on the same host).
    with client(console.base_url, headers={"X-Forwarded-Proto": "https"}) as c:
        page = c.get("/console/login")
        assert "Secure" in page.headers["set-cookie"]  # the login form's CSRF cookie too
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = c.post(
            "/console/login",
            data={"name": "alice", "password": PASSWORD, "csrf_token": token},
            headers={"Cookie": f"alertbridge_login_csrf={token}"},  # httpx keeps Secure cookies for https only
        )
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


def test_login_attempts_are_limited_across_processes(
    console: Console, database_url: str, db: psycopg.Connection
) -> None:
    config = parse_config(console_config_text("http://127.0.0.1:9"), {}, source="test.toml", base_dir=FIXTURES)
    other = build_app(build_bridge(config), database_url, run_worker=False)
    with serve_app(other, lifespan="on") as second, client(console.base_url) as a, client(second.base_url) as b:
        for _ in range(5):
            assert login(a, password="wrong-password").status_code == 401
        r = login(b)  # the right password, on another process: still refused for the window
        assert r.status_code == 429 and r.headers["retry-after"] == "900" and "too many failed logins" in r.text
        assert login(b, name="victor").status_code == 303  # other names are not locked out
        assert db.execute("SELECT count(*) FROM login_failures WHERE name = 'alice'").fetchone() == (5,)
        assert PASSWORD not in str(db.execute("SELECT * FROM login_failures").fetchall())


def test_csrf_roles_and_error_pages(console: Console, db: psycopg.Connection) -> None:
    with client(console.base_url) as admin, client(console.base_url) as viewer:
        login(admin)
        login(viewer, name="victor")
        token = csrf_of(admin, "/console/integrations/generic/versions")
        assert admin.post("/console/integrations/generic/versions/1/restore", data={}).status_code == 403
        assert (
            admin.post("/console/integrations/generic/versions/1/restore", data={"csrf_token": token}).status_code
            == 303
        )
        # The CSRF token may come as a header too (htmx sends it so).
        r = admin.post(
            "/console/integrations/generic/preview",
            data={"source": "{{", "payload": "{}"},
            headers={"X-CSRF-Token": token},
        )
        assert r.status_code == 200 and "Template error" in r.text
        vtoken = csrf_of(viewer, "/console/integrations/generic/versions")
        r = viewer.post("/console/integrations/generic/versions/1/restore", data={"csrf_token": vtoken})
        assert r.status_code == 403 and "viewer" in r.text
        r = viewer.post("/console/failed/replay", data={"csrf_token": vtoken, "inbound_id": "1"})
        assert r.status_code == 403
        assert viewer.get("/console/new-integration").status_code == 403
        # Bad input is a page, never a 500.
        assert admin.get("/console/integrations/nope").status_code == 404
        assert admin.get("/console/integrations/generic/versions/99.j2").status_code == 404
        assert admin.get("/console/integrations/generic/diff?from=x&to=1").status_code == 400
        r = admin.post("/console/failed/replay", data={"csrf_token": token, "inbound_id": "12345"})
        assert r.status_code == 404
        r = admin.post(
            "/console/integrations/generic/save",
            content=b"--x\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert r.status_code in (400, 403)
        r = admin.post("/console/integrations/pinned/save", data={"csrf_token": token, "source": "{}", "comment": "c"})
        assert r.status_code == 409 and "locked = true" in r.text
        r = admin.post(
            "/console/integrations/generic/save", data={"csrf_token": token, "source": "{% if %}", "comment": "c"}
        )
        assert r.status_code == 422 and "does not compile" in r.text and "line 1" in r.text
        r = admin.post("/console/integrations/generic/save", data={"csrf_token": token, "source": "{}", "comment": " "})
        assert r.status_code == 422 and "a comment is required" in r.text
        # Exports: a version as .j2, the integrations as TOML.
        r = admin.get("/console/integrations/generic/versions/1.j2")
        assert r.status_code == 200 and "generic-v1.j2" in r.headers["content-disposition"]
    assert db.execute("SELECT count(*) FROM template_versions WHERE integration = 'generic'").fetchone() == (2,)


def test_an_api_key_needs_the_secret_key(database_url: str, db: psycopg.Connection) -> None:
    with running_console(database_url, secret_key=None, run_worker=False) as console, client(console.base_url) as c:
        make_user(database_url, "alice", PASSWORD, "admin")
        login(c)
        page = c.get("/console/new-integration")
        assert "ALERTBRIDGE_SECRET_KEY is not set" in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = c.post(
            "/console/integrations",
            data={
                "csrf_token": token,
                "name": "cron",
                "target_kind": "region",
                "region": "eu",
                "api_key": "secret-key-1",
            },
        )
        assert r.status_code == 422 and "ALERTBRIDGE_SECRET_KEY is not set" in r.text
        assert db.execute("SELECT count(*) FROM integrations WHERE name = 'cron'").fetchone() == (0,)
        assert "secret-key-1" not in r.text


def test_disable_and_enable_an_integration_in_the_console(console: Console, db: psycopg.Connection) -> None:
    created = console.api(
        "POST", "/integrations", json={"name": "cron", "template": "generic", "base_url": console.emulator.base_url}
    )
    assert created.status_code == 201, created.text
    source = created.json()["token"]
    body = {"action": "create", "alias": "toggle", "message": "m"}
    with client(console.base_url) as c:
        login(c)
        token = csrf_of(c, "/console/integrations/cron")
        r = c.post("/console/integrations/cron/disable", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"].startswith("/console/integrations/cron")
        assert "Disabled" in c.get(r.headers["location"]).text
        assert console.webhook("cron", body, token=source).status_code == 404
        r = c.post("/console/integrations/cron/enable", data={"csrf_token": token})
        assert r.status_code == 303
        assert "Enabled" in c.get(r.headers["location"]).text
        assert console.webhook("cron", body, token=source).status_code == 202
        # What the config file declares stays the file's: the console refuses, and says so.
        assert c.post("/console/integrations/generic/disable", data={"csrf_token": token}).status_code == 409
    actions = [a for (a,) in db.execute("SELECT action FROM admin_audit ORDER BY id")]
    assert actions[-2:] == ["integration.disable", "integration.enable"], actions
