"""``alertbridge`` command line: serve | worker | migrate | check | render | replay | emulator | db-url | psql.

A thin layer over library functions. This module (with app.main and migrations/env.py) is where settings are
read and engines and clients are built.

Every exit path ends in a normal interpreter exit, so the embedded PostgreSQL's exit handler runs (app.process:
signals, a closed stdout); errors users can fix are one line (`CliError`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from alertbridge import __version__, cli_admin, process

log = logging.getLogger("alertbridge")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class CliError(Exception):
    """A user-facing error: printed as one line per problem, exit status `status` (2 unless said)."""

    def __init__(self, message: str, *, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _setup_logging(level: str, fmt: str = "text") -> None:
    """One logging configuration for everything in the process (uvicorn's and Alembic's loggers too), as text
    or as one JSON object per line (ALERTBRIDGE_LOG_FORMAT)."""
    from alertbridge import logs

    if fmt not in logs.FORMATS:
        print(
            f"alertbridge: ALERTBRIDGE_LOG_FORMAT must be one of {', '.join(logs.FORMATS)} (got {fmt!r})",
            file=sys.stderr,
        )
        raise SystemExit(2)
    logs.configure(level, fmt, sys.stderr)


def _load_config(args: argparse.Namespace, *, host: str = "127.0.0.1", port: int = 8080) -> tuple[Any, bool]:
    """The Config to run with, and whether it is the demo (no config file: targets the mounted emulator)."""
    from alertbridge import settings
    from alertbridge.config import ConfigError, demo_config, load_config

    path = getattr(args, "config", None) or settings.CONFIG_PATH
    try:
        if path:
            return load_config(path, settings.ENV), False
        return demo_config(f"http://{host}:{port}/emulator", data_dir=Path(".alertbridge"), env=settings.ENV), True
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _database_url(config: Any) -> str:
    """[database].url (ALERTBRIDGE_DATABASE_URL, then DATABASE_URL, win over the file), else the embedded
    PostgreSQL in [database].data_dir (ALERTBRIDGE_DATABASE_DATA_DIR / ALERTBRIDGE_DATA_DIR)."""
    from alertbridge import embedded

    if config.database.url is not None:
        return str(config.database.url)
    data_dir = Path(config.database.data_dir)
    log.info("embedded PostgreSQL: %s", embedded.pgdata_of(data_dir))
    with process.signals_held():
        return embedded.start(data_dir)


def _migrate(url: str) -> None:
    from alertbridge.db import migrate

    try:
        migrate(url)
    except Exception as exc:
        log.debug("migration failed", exc_info=True)
        raise CliError(f"database migration failed: {_one_line(exc)}") from None


def _prepare(args: argparse.Namespace, loaded: tuple[Any, bool] | None = None) -> tuple[Any, Any, str, bool]:
    """Config (loaded here unless given), the bridge built from it, the database URL (migrated)."""
    from alertbridge.config import ConfigError
    from alertbridge.main import build_bridge

    config, demo = loaded or _load_config(args)
    try:
        bridge = build_bridge(config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    url = _database_url(config)
    if not getattr(args, "no_migrate", False):
        _migrate(url)
    return config, bridge, url, demo


# --- commands -------------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    # The demo's emulator URL needs the address; a config file's [server] gives it when flags do not.
    loaded = _load_config(args, host=args.host or "127.0.0.1", port=args.port or 8080)
    host = args.host or loaded[0].server.host
    port = args.port or loaded[0].server.port
    workers = args.workers or loaded[0].server.workers
    if workers > 1 and (loaded[1] or args.mount_emulator):
        raise CliError("--workers > 1 cannot serve the mounted emulator (the demo): each process would have its own")
    if workers > 1:
        _shared_metrics_dir()  # before the metrics module is imported (by _prepare)
    config, bridge, url, demo = _prepare(args, loaded)
    if workers <= 1:
        return _serve_process(args, config, bridge, url, demo, host, port, index=0)
    from alertbridge import metrics
    from alertbridge.supervisor import reuseport_socket, run_processes

    try:
        probe = reuseport_socket(host, port, listen=False)  # the address is free (or ours): say so before forking
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    deliver = not args.no_worker

    def child(index: int) -> int:
        if index == workers:  # the delivery process (the kernel gives it its share of the CPU)
            asyncio.run(_deliver(args, config, bridge, url, None))
            return 0
        sock = reuseport_socket(host, port)
        return _serve_process(args, config, bridge, url, demo, host, port, index=index, sock=sock)

    try:
        return run_processes(
            workers + (1 if deliver else 0), child, on_exit=metrics.process_exited, on_started=probe.close
        )
    finally:
        probe.close()


def _shared_metrics_dir() -> None:
    """Several serve processes sum their metrics through PROMETHEUS_MULTIPROC_DIR (docs/operations/metrics.md):
    made here (and removed at exit) unless the environment names one."""
    import atexit
    import os
    import shutil
    import tempfile

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    if "alertbridge.metrics" in sys.modules:  # too late to switch (only when called from within a process)
        log.warning("serve --workers: metrics stay per process (PROMETHEUS_MULTIPROC_DIR was not set at start)")
        return
    folder = tempfile.mkdtemp(prefix="alertbridge-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    parent = os.getpid()
    atexit.register(lambda: os.getpid() == parent and shutil.rmtree(folder, ignore_errors=True))


def _serve_process(
    args: argparse.Namespace,
    config: Any,
    bridge: Any,
    url: str,
    demo: bool,
    host: str,
    port: int,
    *,
    index: int,
    sock: Any = None,
) -> int:
    """One serving process: the app, uvicorn on ``sock`` (one of several on the same address) or on host:port.
    Alone, it delivers too (unless --no-worker); one of several (``sock``) leaves delivery to a process of its own."""
    from alertbridge import settings
    from alertbridge.config import DEMO_API_KEY
    from alertbridge.emulator import build_app as build_emulator
    from alertbridge.main import build_app
    from alertbridge.secretbox import SecretKeyError
    from alertbridge.web.server import serve as serve_forever
    from alertbridge.web.server import uvicorn_config

    emulator = None
    if demo or args.mount_emulator:
        # The demo wires OpsGenie's other half too: the emulator calls back to this bridge, as a human's ack would.
        from alertbridge.config import DEMO_CALLBACK_TOKEN

        callback = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/callbacks/opsgenie"
        emulator = build_emulator(
            api_keys=[DEMO_API_KEY],
            callback_url=callback if demo else None,
            callback_headers={"X-Bridge-Token": DEMO_CALLBACK_TOKEN},
        )
    try:
        app = build_app(
            bridge,
            url,
            run_worker=not args.no_worker and sock is None,
            emulator=emulator,
            demo=demo,
            secret_key=_secret_key(),
            reload_config=_config_reloader(args),
            on_started=_demo_admin(host, port) if demo and index == 0 else None,
        )
    except SecretKeyError as exc:
        raise CliError(str(exc)) from None
    if demo and index == 0:
        log.info(
            "demo mode: no config file; integrations %s (token 'demo-token') deliver to the emulator at "
            "http://%s:%s/emulator",
            ", ".join(bridge.routes),
            host,
            port,
        )
    uv = uvicorn_config(
        app,
        config.server,
        host=host,
        port=port,
        access_log=False,
        log_config=None,  # our logging configuration (app.logs) formats uvicorn's lines too
        log_level=settings.LOG_LEVEL.lower(),
        timeout_graceful_shutdown=config.delivery.shutdown_grace_seconds + 5,
        lifespan="on",
    )
    server = process.graceful_server(uv)
    asyncio.run(serve_forever(server, sockets=[sock] if sock is not None else None))
    # A graceful shutdown on SIGTERM exits 0 (what service managers expect), on SIGINT 130 (a shell's Ctrl-C).
    return 128 + signal.SIGINT if signal.SIGINT in server.stopped_by else 0


DEMO_ADMIN = "admin"


def _demo_admin(host: str, port: int) -> Any:
    """The demo's console user: "admin" with a new password at every start, printed so a newcomer can log in."""

    async def create(app: Any) -> None:
        import secrets

        from alertbridge.admin import auth

        password = secrets.token_urlsafe(12)
        await auth.create_user(app.state.db, DEMO_ADMIN, password, "admin", actor="demo")
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        log.info(
            "console: http://%s:%s/console (demo mode) log in as %r with the password %s",
            shown,
            port,
            DEMO_ADMIN,
            password,
        )

    return create


def _secret_key() -> str | None:
    from alertbridge import settings
    from alertbridge.secretbox import ENV_NAME

    return settings.ENV.get(ENV_NAME)


def _config_reloader(args: argparse.Namespace) -> Any:
    """What SIGHUP re-reads: the config file this process was started with (the demo has none)."""
    from alertbridge import settings
    from alertbridge.config import ConfigError, load_config

    path = getattr(args, "config", None) or settings.CONFIG_PATH

    def load() -> Any:
        if not path:
            raise ConfigError("no config file (demo mode): nothing to reload")
        return load_config(path, settings.ENV)

    return load


def cmd_worker(args: argparse.Namespace) -> int:
    loaded = _load_config(args)
    host = args.metrics_host or loaded[0].worker.metrics_host
    port = loaded[0].worker.metrics_port if args.metrics_port is None else args.metrics_port
    http = _MetricsServer(host, port)
    http.bind()  # before the database and migrations: a port in use is a one-line error
    config, bridge, url, _ = _prepare(args, loaded)
    asyncio.run(_deliver(args, config, bridge, url, http))
    return 0


async def _deliver(args: argparse.Namespace, config: Any, bridge: Any, url: str, http: _MetricsServer | None) -> None:
    """The delivery worker until SIGTERM/SIGINT: `alertbridge worker` (with its metrics server ``http``), or the
    delivery process of `serve --workers N` (none: the serving processes expose its metrics)."""
    from alertbridge.main import (
        apply_config,
        build_worker,
        build_worker_app,
        follow_targets,
        on_sighup,
        registry_database,
        sync_integrations,
        worker_database,
    )
    from alertbridge.registry import Registry
    from alertbridge.secretbox import SecretBox, SecretKeyError
    from alertbridge.sweeper import Sweeper

    try:
        box = SecretBox.from_env(_secret_key())
    except SecretKeyError as exc:
        raise CliError(str(exc)) from None
    reload_config = _config_reloader(args)
    db = worker_database(url, config)
    await db.open()
    registry = Registry(config, initial=bridge.snapshot, http=bridge.http, box=box)
    worker = build_worker(bridge, db)
    follower = sweeping = None
    sweeper = Sweeper(db, registry, config, worker=worker, stuck_after=config.worker.stuck_after_seconds)
    rdb = registry_database(url)  # the registry polls on a connection of its own
    try:
        await sync_integrations(db, bridge)
        await registry.reload(db, force=True)
        follow_targets(registry, worker)
        await rdb.open()
        follower = asyncio.create_task(registry.follow(rdb, rdb.url))
        sweeping = asyncio.create_task(sweeper.run_forever())  # the policies' background work (app/sweeper.py)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        on_sighup(lambda: apply_config(db, registry, reload_config))
        log.info("worker %s delivering for %s", worker.name, ", ".join(worker.targets) or "no integrations")
        if http is not None:
            await http.start(build_worker_app(db, worker, config.worker.stuck_after_seconds))
        await worker.run_forever()
    finally:
        if http is not None:
            await http.stop()
        for task in (follower, sweeping):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await sweeper.aclose()
        await rdb.close()
        await worker.client.aclose()
        await db.close()
        if bridge.http is not None:
            await bridge.http.aclose()


class _MetricsServer:
    """The standalone worker's HTTP server (/metrics, /healthz, /readyz) on uvicorn, inside the worker's event
    loop. Signals stay with the worker: SIGTERM stops the worker, which then stops this server."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock: Any = None
        self.server: Any = None
        self.task: asyncio.Task[None] | None = None

    def bind(self) -> None:
        import socket

        if not self.port:
            return
        try:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError as exc:
            raise CliError(f"worker: cannot serve /metrics on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self.sock = sock

    async def start(self, app: Any) -> None:

        import uvicorn

        from alertbridge import settings

        if self.sock is None:
            return

        class Server(uvicorn.Server):
            def capture_signals(self):  # type: ignore[no-untyped-def,override]
                return contextlib.nullcontext()  # the worker's handlers stay in place

        config = uvicorn.Config(
            app, access_log=False, log_config=None, log_level=settings.LOG_LEVEL.lower(), lifespan="off"
        )
        self.server = Server(config)
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        log.info("worker metrics on http://%s:%s/metrics (/healthz, /readyz)", self.host, self.port)

    async def stop(self) -> None:
        if self.task is not None:
            self.server.should_exit = True
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def cmd_migrate(args: argparse.Namespace) -> int:
    config, _ = _load_config(args)
    _migrate(_database_url(config))
    print("database is at the latest revision")
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    """The configured URL as it is (password included: it is for psql, and it is the caller's own setting), or the
    URL of the embedded server a running `serve` keeps up. Never starts a server: it would stop again when this
    command exits, and the URL would point at nothing."""
    from alertbridge import embedded
    from alertbridge.db import libpq_url

    config, _ = _load_config(args)
    if config.database.url is not None:
        print(libpq_url(str(config.database.url)))
        return 0
    url = embedded.running_url(Path(config.database.data_dir))
    if url is None:
        raise CliError(
            f"no embedded PostgreSQL is running in {embedded.pgdata_of(Path(config.database.data_dir))}: start "
            "`alertbridge serve` (from the same folder, or with the same config or ALERTBRIDGE_DATA_DIR) and run "
            "this again, or use `alertbridge psql`, which starts the server for its session; with an external "
            "database, set ALERTBRIDGE_DATABASE_URL",
            status=1,
        )
    print(url)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from alertbridge import settings
    from alertbridge.check import check_file

    path = args.config or settings.CONFIG_PATH
    if not path:
        raise CliError("name the config file to check: alertbridge check --config FILE (or set ALERTBRIDGE_CONFIG)")
    result = check_file(path, settings.ENV)
    for problem in result.problems:
        print(problem)
    print(result.summary(path))
    return 1 if result.problems else 0


def cmd_psql(args: argparse.Namespace) -> int:
    import shutil
    import subprocess

    from alertbridge.db import libpq_url
    from alertbridge.embedded import psql_path

    config, _ = _load_config(args)
    url = libpq_url(_database_url(config))
    psql = str(psql_path() or shutil.which("psql") or "")
    if not psql:
        raise CliError("psql not found")
    # A child process, not exec: this process must exit normally so the embedded server is stopped
    # when nobody else uses it.
    return subprocess.call([psql, url, *args.psql_args])


def cmd_render(args: argparse.Namespace) -> int:
    """Dry run: the events a template makes of a payload, and the exact OpsGenie requests (the same plan step as
    ingest, against empty alias state: nothing is read or written)."""
    from alertbridge.ingest import Inbound, Route, preview
    from alertbridge.rendering import TemplateError, compile_template, load_template_source

    try:
        name, source = load_template_source(args.template, Path.cwd())
        template = compile_template(source, name)
    except TemplateError as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise CliError(f"template {args.template}: {exc.message}{where}") from None
    route = Route(name=args.integration or "render", template=template, scope_aliases=False)
    if args.config:
        from alertbridge import settings
        from alertbridge.config import ConfigError, load_config
        from alertbridge.main import build_bridge

        try:
            bridge = build_bridge(load_config(args.config, settings.ENV))
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        if args.integration and args.integration not in bridge.routes:
            raise CliError(f"integration {args.integration!r} is not in {args.config}")
        if args.integration:  # its defaults, priorities, alias scoping and target, with the template under test
            route = replace(bridge.routes[args.integration], template=template)
    if args.base_url:
        route = replace(route, base_url=args.base_url)
    body = Path(args.payload).read_bytes() if args.payload != "-" else sys.stdin.buffer.read()
    prepared, plan = asyncio.run(preview(None, route, Inbound(body=body, content_type="application/json")))
    if prepared.error is not None or plan is None:
        print(json.dumps({"status": prepared.status.value, "error": prepared.error}, indent=2, ensure_ascii=False))
        return 1
    print(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from alertbridge.db import Database
    from alertbridge.ingest import ReplayError, replay
    from alertbridge.models import HistoryOrigin
    from alertbridge.store import history
    from alertbridge.store.outbox import replay_dead

    config, bridge, url, _ = _prepare(args)

    async def run() -> int:
        db = Database(url, size=2, name="alertbridge-replay")
        await db.open()
        status = 0
        try:
            if args.dead or args.outbox:
                async with db.transaction() as conn:
                    steps = await replay_dead(conn, ids=args.outbox or None, integration=args.integration)
                    ids = [st.id for st in steps if st.requeue]
                    await history.about_outbox_rows(
                        conn,
                        ids,
                        origin=HistoryOrigin.CONSOLE,
                        action="dead_letter.replay",
                        decision="requeue",
                        reason="dead letter sent again (alertbridge replay)",
                        actor="cli",
                    )
                # What was re-queued, and what was not (and why: newer history makes sending it wrong now).
                others = [
                    {"id": st.id, "verdict": st.verdict.value, "reason": st.reason} for st in steps if not st.requeue
                ]
                print(json.dumps({"requeued": ids, **({"not_requeued": others} if others else {})}))
                return 0 if ids or not args.outbox else 1
            if not args.event_ids:
                raise CliError("name inbound event ids, or --dead / --outbox ID")
            # The active versions in Postgres, after applying the config file as serve does at start-up (a fixed
            # template file becomes the active version; a console edit of an unchanged file template stays).
            from alertbridge.main import sync_integrations
            from alertbridge.registry import Registry

            await sync_integrations(db, bridge)
            registry = Registry(config, initial=bridge.snapshot, http=bridge.http)
            await registry.reload(db, force=True)
            for event_id in args.event_ids:
                try:
                    result = await replay(db, registry.current.routes, event_id, force=args.force)
                except ReplayError as exc:
                    print(json.dumps({"id": event_id, "error": str(exc)}))
                    status = 1
                    continue
                print(json.dumps({"http_status": result.status, **result.body}, ensure_ascii=False))
                if result.status >= 400:
                    status = 1
        finally:
            await db.close()
            if bridge.http is not None:
                await bridge.http.aclose()
        return status

    return asyncio.run(run())


def cmd_prune(args: argparse.Namespace) -> int:
    """Remove what is older than [retention] allows, now; with --dry-run only count it."""
    from alertbridge.db import Database
    from alertbridge.retention import PACE, current_cutoffs, prune

    config, _ = _load_config(args)
    url = _database_url(config)
    if not args.no_migrate:
        from alertbridge.db import migrate

        migrate(url)
    retention = config.retention
    c = current_cutoffs(retention)

    def show(step: str, done: int, total: int | None) -> None:
        print(f"\r{step}: {done}/{total if total is not None else '?'}", end="", file=sys.stderr, flush=True)

    async def run() -> dict[str, int]:
        async with Database(url, size=2, name="alertbridge-prune") as db:
            pace = 0.0 if args.no_pace else PACE
            return await prune(db, retention, dry_run=args.dry_run, progress=None if args.dry_run else show, pace=pace)

    result = asyncio.run(run())
    if not args.dry_run and any(result.values()):
        print(file=sys.stderr)
    when = {k: (v.isoformat() if v else None) for k, v in c.__dict__.items()}
    print(json.dumps({"dry_run": args.dry_run, "older_than": when, "rows": result}, indent=2))
    return 0


def cmd_audit_grant(args: argparse.Namespace) -> int:
    """Create or update a read-only role that can read the audit views and nothing else."""
    import psycopg
    from psycopg import sql

    from alertbridge.db import libpq_url

    config, _ = _load_config(args)
    url = _database_url(config)
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    role = sql.Identifier(args.role)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        dbname = conn.info.dbname
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (args.role,)).fetchone()
        with conn.transaction():
            if not exists:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
            if password:
                conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(password)))
            conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(role))
            conn.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {}").format(role))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), role))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA audit TO {}").format(role))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA audit TO {}").format(role))
            conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA audit GRANT SELECT ON TABLES TO {}").format(role))
    login = (
        "can log in with the password given"
        if password
        else "NOLOGIN (grant it to a login role, or use --password-stdin)"
    )
    print(f"role {args.role!r} reads the audit views of {dbname!r} and nothing else; {login}")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    import uvicorn

    from alertbridge import settings
    from alertbridge.emulator import build_app as build_emulator

    app = build_emulator(api_keys=args.api_key or None, processing_delay=args.processing_delay)
    log.info(
        "OpsGenie emulator on http://%s:%s (GenieKey: %s)",
        args.host,
        args.port,
        "any" if not args.api_key else f"{len(args.api_key)} configured key(s)",
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        log_level=settings.LOG_LEVEL.lower(),
        access_log=False,
    )
    return 0


# --- parser ---------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alertbridge", description="Webhooks in, OpsGenie / JSM Ops alerts out.")
    p.add_argument("--version", action="version", version=f"alertbridge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", "-c", help="TOML config file (default: $ALERTBRIDGE_CONFIG; none: demo mode)")

    s = sub.add_parser("serve", help="run the bridge: webhook receiver + delivery worker")
    with_config(s)
    s.add_argument("--host", help="listen address (default: [server].host, 127.0.0.1)")
    s.add_argument("--port", type=int, help="listen port (default: [server].port, 8080)")
    s.add_argument("--no-worker", action="store_true", help="only receive; run `alertbridge worker` elsewhere")
    s.add_argument(
        "--workers",
        type=int,
        choices=range(1, 65),
        metavar="N",
        help="serving processes sharing the port (default: [server].workers, 1); the first one delivers",
    )
    s.add_argument("--no-migrate", action="store_true", help="do not apply database migrations at start-up")
    s.add_argument("--mount-emulator", action="store_true", help="also serve the OpsGenie emulator at /emulator")
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="run only the delivery worker (several may share one database)")
    with_config(w)
    w.add_argument("--no-migrate", action="store_true")
    w.add_argument(
        "--metrics-port",
        type=int,
        help="port of /metrics, /healthz, /readyz (default: [worker].metrics_port, 9108; 0: off)",
    )
    w.add_argument("--metrics-host", help="address of that server (default: [worker].metrics_host, 127.0.0.1)")
    w.set_defaults(func=cmd_worker)

    m = sub.add_parser("migrate", help="apply database migrations and exit")
    with_config(m)
    m.set_defaults(func=cmd_migrate)

    c = sub.add_parser(
        "check",
        help="check a config file: every error at once, every template compiled, built-in samples rendered",
    )
    c.add_argument("--config", "-c", help="TOML config file (default: $ALERTBRIDGE_CONFIG)")
    c.set_defaults(func=cmd_check)

    r = sub.add_parser("render", help="dry run: print the events and OpsGenie requests a template makes of a payload")
    r.add_argument("--template", "-t", required=True, help="built-in template name or path to a .j2 file")
    r.add_argument("--payload", "-p", required=True, help="JSON file with the webhook body ('-' for stdin)")
    r.add_argument("--config", "-c", help="take defaults and alias scoping from this config's integration")
    r.add_argument("--integration", "-i", help="integration name in --config")
    r.add_argument("--base-url", help="OpsGenie base URL for the printed requests (default: the US API)")
    r.set_defaults(func=cmd_render)

    rp = sub.add_parser(
        "replay", help="re-run stored webhooks through the current template, or re-queue dead deliveries"
    )
    with_config(rp)
    rp.add_argument("event_ids", nargs="*", type=int, metavar="EVENT_ID", help="inbound_events.id to replay")
    rp.add_argument("--force", action="store_true", help="replay webhooks that were processed already")
    rp.add_argument("--dead", action="store_true", help="re-queue every dead delivery (with --integration: of one)")
    rp.add_argument("--outbox", type=int, nargs="+", metavar="OUTBOX_ID", help="re-queue these dead deliveries")
    rp.add_argument("--integration", help="limit --dead to one integration")
    rp.add_argument("--no-migrate", action="store_true")
    rp.set_defaults(func=cmd_replay)

    cli_admin.add_parser(sub, with_config)

    e = sub.add_parser("emulator", help="run the OpsGenie/JSM emulator alone")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, default=8900)
    e.add_argument("--api-key", action="append", help="accepted GenieKey (repeatable; default: any)")
    e.add_argument("--processing-delay", type=float, default=0.05, help="seconds before a request is processed")
    e.set_defaults(func=cmd_emulator)

    pr = sub.add_parser("prune", help="remove data older than [retention] allows (the running bridge also does)")
    with_config(pr)
    pr.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    pr.add_argument("--no-pace", action="store_true", help="run flat out (default: pause between batches for ingest)")
    pr.add_argument("--no-migrate", action="store_true")
    pr.set_defaults(func=cmd_prune)

    au = sub.add_parser("audit", help="the audit views: `audit grant ROLE` makes a read-only role for them")
    au_sub = au.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    ag = au_sub.add_parser("grant", help="create or update a role that reads the audit views and nothing else")
    ag.add_argument("role", help="role name (created NOLOGIN if it does not exist)")
    ag.add_argument("--password-stdin", action="store_true", help="read a password from stdin; the role can log in")
    with_config(ag)
    ag.set_defaults(func=cmd_audit_grant)

    d = sub.add_parser("db-url", help="print the database URL in use (the embedded one only while `serve` runs)")
    with_config(d)
    d.set_defaults(func=cmd_db_url)

    q = sub.add_parser("psql", help="open psql on the database in use; other arguments go to psql (e.g. -c 'SQL')")
    q.add_argument("--config", help="TOML config file (default: $ALERTBRIDGE_CONFIG)")
    q.set_defaults(func=cmd_psql)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from alertbridge import settings

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["psql"]:  # everything after `psql` (but --config) is for psql itself
        args, rest = parser().parse_known_args(argv)
        args.psql_args = rest
    else:
        args = parser().parse_args(argv)
    if args.command is None:
        parser().print_help(sys.stderr)
        return 2
    if settings.LOG_LEVEL not in LOG_LEVELS:
        print(
            f"alertbridge: ALERTBRIDGE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} "
            f"(got {settings.ENV.get('ALERTBRIDGE_LOG_LEVEL', '').strip()!r})",
            file=sys.stderr,
        )
        return 2
    _setup_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    process.terminate_on_signals()
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # here, so that a closed pipe is caught below
        return status
    except CliError as exc:
        for line in str(exc).splitlines():
            print(f"alertbridge: {line}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return process.stdout_closed()


if __name__ == "__main__":
    # Run the importable module's main, so `python -m alertbridge.cli` has one copy of its classes (CliError)
    # shared with the modules it imports (alertbridge.cli_admin).
    from alertbridge.cli import main as _main

    sys.exit(_main())
