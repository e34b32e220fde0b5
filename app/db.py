"""Engine construction, database-unavailable detection and migrations. No settings are read here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy.exc
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def _migrations_dir() -> Path:
    spec = importlib.util.find_spec("alertbridge.migrations")
    assert spec is not None and spec.submodule_search_locations, "alertbridge.migrations is not installed"
    return Path(next(iter(spec.submodule_search_locations))).resolve()


#: The Alembic scripts, shipped inside the package (the repository's migrations/ folder).
MIGRATIONS_DIR = _migrations_dir()


def alembic_config(url: str | None = None) -> Any:
    """The Alembic configuration, built in code (no alembic.ini is needed at run time; the repository's
    alembic.ini is for running the `alembic` command by hand)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.attributes["url"] = sqlalchemy_url(url)
    return cfg


def sqlalchemy_url(url: str) -> str:
    """``postgresql://...`` (libpq form) -> ``postgresql+psycopg://...`` (SQLAlchemy with psycopg 3)."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        u = u.set(drivername="postgresql+psycopg")
    else:
        raise ValueError(f"unsupported database URL scheme {u.drivername!r}: use postgresql://")
    return u.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The URL in the form psql and psycopg understand."""
    return make_url(sqlalchemy_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
        pool_timeout=5,
        connect_args={"connect_timeout": 5, "application_name": "alertbridge"},
    )


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means "the database cannot be reached" (answer 503, retry later)."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return True
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # pool exhausted for pool_timeout seconds
        return True
    if isinstance(exc, psycopg.OperationalError | OSError | ConnectionError):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and isinstance(cause, psycopg.OperationalError | OSError)


def migrate(url: str, revision: str = "head") -> None:
    """Run the real Alembic migrations (synchronously) against ``url``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
