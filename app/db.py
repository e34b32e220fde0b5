"""Connection pools, database-unavailable detection and migrations. No settings are read here.

Queries run on psycopg 3 directly (``psycopg_pool``): SQLAlchemy stays for the models and Alembic. Every
connection is in autocommit mode; ``Database.transaction()`` opens an explicit transaction. psycopg prepares a
statement on the server once it has run a few times on a connection, so hot statements are parsed once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import select
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from sqlalchemy import make_url

Connection = psycopg.AsyncConnection[dict[str, Any]]


def _migrations_dir() -> Path:
    spec = importlib.util.find_spec("alertbridge.migrations")
    assert spec is not None and spec.submodule_search_locations, "alertbridge.migrations is not installed"
    return Path(next(iter(spec.submodule_search_locations))).resolve()


#: The Alembic scripts, shipped inside the package (the repository's migrations/ folder).
MIGRATIONS_DIR = _migrations_dir()


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


#: How long a connection may take to appear while the pool has room for one, before the database counts as down.
FAIL_FAST_SECONDS = 1.0


class DatabaseBusy(Exception):
    """No pooled connection became free within the wait budget, and every connection of the pool is open and in
    use: Postgres is up, we are saturated. Not a database failure (``is_unavailable`` is False)."""


class DatabaseUnavailable(Exception):
    """No working connection within the wait budget while the pool is not full: Postgres cannot be reached."""


async def check_connection(conn: Connection) -> None:
    """The pool's check of a connection it hands out. psycopg_pool's own check is a round trip to the server at every
    checkout; here a connection whose socket has nothing to read is handed out as it is, and only one the server has
    written to while it was idle (a termination notice, or the end of the connection: Postgres stopped, restarted,
    or the backend was terminated) gets that round trip — which fails, and the pool replaces the connection. A
    statement on a connection that dies later fails as it always could, and is answered as the database being
    unavailable."""
    try:
        fd = conn.pgconn.socket
    except psycopg.OperationalError:
        await psycopg_pool.AsyncConnectionPool.check_connection(conn)  # closed: let the pool's check say so
        return
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        await psycopg_pool.AsyncConnectionPool.check_connection(conn)


class Database:
    """One pool of connections to one database. Build it, ``await open()``, use it, ``await close()``."""

    def __init__(
        self,
        url: str,
        *,
        size: int = 10,
        name: str = "alertbridge",
        wait_timeout: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.url = libpq_url(url)
        self.name = name
        self.size = size
        self.pool = psycopg_pool.AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=size,
            open=False,
            timeout=wait_timeout,
            name=name,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": max(1, round(connect_timeout)),
                "application_name": name,
            },
            check=check_connection,
            reconnect_timeout=0,  # keep trying to reconnect for as long as the process lives
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def in_use(self) -> int:
        stats = self.pool.get_stats()
        return int(stats.get("pool_size", 0)) - int(stats.get("pool_available", 0))

    @property
    def saturated(self) -> bool:
        """Every connection the pool may open is open and checked out."""
        stats = self.pool.get_stats()
        return int(stats.get("pool_size", 0)) >= self.size and int(stats.get("pool_available", 0)) == 0

    async def _getconn(self, timeout: float | None) -> Connection:
        """Wait for a connection: up to ``timeout`` while the pool is merely busy (load), but give up after a
        second when the pool has room for a connection and still cannot make one (the database is down)."""
        budget = timeout if timeout is not None else self.pool.timeout
        first = min(budget, FAIL_FAST_SECONDS)
        try:
            return await self.pool.getconn(timeout=first)
        except psycopg_pool.PoolTimeout as exc:
            if not self.saturated:
                raise DatabaseUnavailable(f"could not get a working database connection within {first:.1f}s") from exc
            if budget <= first:
                raise DatabaseBusy(f"all {self.size} database connections stayed busy for {budget:.1f}s") from exc
        try:
            return await self.pool.getconn(timeout=budget - first)
        except psycopg_pool.PoolTimeout as exc:
            if self.saturated:
                raise DatabaseBusy(f"all {self.size} database connections stayed busy for {budget:.1f}s") from exc
            raise DatabaseUnavailable(f"could not get a working database connection within {budget:.1f}s") from exc

    @contextlib.asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Connection]:
        """A pooled connection in autocommit mode (each statement is its own transaction). Waits in the pool's
        queue for up to ``timeout`` (default: the pool's ``wait_timeout``) while every connection is in use
        (then ``DatabaseBusy``: load, not a failure); ``DatabaseUnavailable`` when no connection can be made."""
        conn = await self._getconn(timeout)
        try:
            async with conn:
                yield conn
        finally:
            await self.pool.putconn(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection inside one transaction: committed when the block ends, rolled back on error."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    @contextlib.asynccontextmanager
    async def pipeline(self, timeout: float | None = None) -> AsyncIterator[Connection]:
        """A pooled connection inside one transaction in pipeline mode: statements are sent without waiting for
        each other; a round trip happens only when a result is read, and at the end, where COMMIT travels with the
        last statements. Any error of any statement rolls the whole transaction back (raised at the end or at the
        read that follows it)."""
        async with self.connection(timeout) as conn, conn.pipeline(), conn.transaction():
            yield conn


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_rows(rows: list[dict[str, Any]]) -> str:
    """Rows for ``json_to_recordset(%(rows)s::json) AS u(col type, ...)``: the set-based statements of a batch take
    all their rows as ONE JSON parameter. Serialising a batch with the json module (C) is several times cheaper than
    psycopg dumping one array per column (its array dumper quotes and escapes every element in Python, which was the
    largest single cost of a batch). datetime values become ISO 8601 strings (read back as timestamptz)."""
    return json.dumps(rows, default=_json_default, separators=(",", ":"))


def is_busy(exc: BaseException) -> bool:
    """True when ``exc`` means "Postgres is fine, but all our connections stayed in use" (load, not an outage)."""
    return isinstance(exc, DatabaseBusy)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means "the database cannot be reached" (a real failure: answer 503). Load is not:
    see ``is_busy``."""
    if isinstance(exc, DatabaseBusy):
        return False
    if isinstance(exc, DatabaseUnavailable | psycopg_pool.PoolTimeout | psycopg_pool.PoolClosed):
        return True
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | OSError | ConnectionError):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_unavailable(cause)


def describe(exc: BaseException) -> str:
    """What went wrong with the database, in one line a sender or an operator can read (no secrets: libpq's
    messages name host, port and user, never the password)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


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


def migrate(url: str, revision: str = "head") -> None:
    """Run the real Alembic migrations (synchronously) against ``url``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
