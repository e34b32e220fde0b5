"""``alertbridge`` command line: serve | worker | migrate | render | replay | emulator | db-url | psql.

A thin layer over library functions. This module (with app.main and migrations/env.py) is where settings are
read and engines and clients are built.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from alertbridge import __version__

log = logging.getLogger("alertbridge")

DEMO_API_KEY = "demo-key"


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines print full URLs
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _load_config(args: argparse.Namespace, *, host: str = "127.0.0.1", port: int = 8080) -> tuple[Any, bool]:
    """The Config to run with, and whether it is the demo (no config file: targets the mounted emulator)."""
    from alertbridge import settings
    from alertbridge.config import ConfigError, demo_config, load_config

    path = getattr(args, "config", None) or settings.CONFIG_PATH
    try:
        if path:
            return load_config(path, settings.ENV), False
        return demo_config(f"http://{host}:{port}/emulator", data_dir=Path(".alertbridge")), True
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _database_url(config: Any, *, start_embedded: bool = True) -> str:
    """ALERTBRIDGE_DATABASE_URL (or DATABASE_URL), else [database].url, else the embedded PostgreSQL."""
    from alertbridge import embedded, settings

    if settings.DATABASE_URL is not None:
        return str(settings.DATABASE_URL)
    if config.database.url is not None:
        return str(config.database.url)
    if not start_embedded:
        raise CliError("no database configured (ALERTBRIDGE_DATABASE_URL or [database].url)")
    data_dir = settings.DATA_DIR or config.database.data_dir
    log.info("embedded PostgreSQL: %s", Path(data_dir).resolve() / "pgdata")
    return embedded.start(Path(data_dir))


def _prepare(args: argparse.Namespace, loaded: tuple[Any, bool] | None = None) -> tuple[Any, Any, str, bool]:
    """Config (loaded here unless given), the bridge built from it, the database URL (migrated)."""
    from alertbridge.config import ConfigError
    from alertbridge.db import migrate
    from alertbridge.main import build_bridge

    config, demo = loaded or _load_config(args)
    try:
        bridge = build_bridge(config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    url = _database_url(config)
    if not getattr(args, "no_migrate", False):
        migrate(url)
    return config, bridge, url, demo


# --- commands -------------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from alertbridge import settings
    from alertbridge.emulator import build_app as build_emulator
    from alertbridge.main import build_app
    from alertbridge.web.server import serve as serve_forever
    from alertbridge.web.server import uvicorn_config

    # The demo's emulator URL needs the address; a config file's [server] gives it when flags do not.
    loaded = _load_config(args, host=args.host or "127.0.0.1", port=args.port or 8080)
    host = args.host or loaded[0].server.host
    port = args.port or loaded[0].server.port
    config, bridge, url, demo = _prepare(args, loaded)
    emulator = build_emulator(api_keys=[DEMO_API_KEY]) if (demo or args.mount_emulator) else None
    app = build_app(bridge, url, run_worker=not args.no_worker, emulator=emulator)
    if demo:
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
        log_level=settings.LOG_LEVEL.lower(),
        timeout_graceful_shutdown=config.delivery.shutdown_grace_seconds + 5,
        lifespan="on",
    )
    # uvicorn handles SIGTERM (graceful shutdown) and re-raises it afterwards; with this handler in place the
    # re-raised signal is a no-op, so a clean shutdown exits 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    asyncio.run(serve_forever(uv))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from alertbridge.main import build_worker, worker_database

    config, bridge, url, _ = _prepare(args)

    async def run() -> None:
        db = worker_database(url, config)
        await db.open()
        worker = build_worker(bridge, db)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        log.info("worker %s delivering for %s", worker.name, ", ".join(bridge.routes) or "no integrations")
        try:
            await worker.run_forever()
        finally:
            await worker.client.aclose()
            await db.close()
            if bridge.http is not None:
                await bridge.http.aclose()

    asyncio.run(run())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from alertbridge.db import migrate

    config, _ = _load_config(args)
    url = _database_url(config)
    migrate(url)
    print("database is at the latest revision")
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    from alertbridge.db import libpq_url

    config, _ = _load_config(args)
    print(libpq_url(_database_url(config)))
    return 0


def cmd_psql(args: argparse.Namespace) -> int:
    import shutil
    import subprocess

    from alertbridge.db import libpq_url
    from alertbridge.embedded import psql_path

    config, _ = _load_config(args)
    url = libpq_url(_database_url(config, start_embedded=True))
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
    from alertbridge.store.outbox import requeue_dead

    config, bridge, url, _ = _prepare(args)

    async def run() -> int:
        db = Database(url, size=2, name="alertbridge-replay")
        await db.open()
        status = 0
        try:
            if args.dead or args.outbox:
                async with db.transaction() as conn:
                    ids = await requeue_dead(conn, ids=args.outbox or None, integration=args.integration)
                print(json.dumps({"requeued": ids}))
                return 0 if ids or not args.outbox else 1
            if not args.event_ids:
                raise CliError("name inbound event ids, or --dead / --outbox ID")
            for event_id in args.event_ids:
                try:
                    result = await replay(db, bridge.routes, event_id, force=args.force)
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
    uvicorn.run(app, host=args.host, port=args.port, log_level=settings.LOG_LEVEL.lower(), access_log=False)
    return 0


# --- parser ---------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alertbridge", description="Webhooks in, OpsGenie / JSM Ops alerts out.")
    p.add_argument("--version", action="version", version=f"alertbridge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", "-c", help="TOML config file (default: $ALERTBRIDGE_CONFIG; none: demo mode)")

    s = sub.add_parser("serve", help="run the bridge: webhook receiver + delivery worker (default command)")
    with_config(s)
    s.add_argument("--host", help="listen address (default: [server].host, 127.0.0.1)")
    s.add_argument("--port", type=int, help="listen port (default: [server].port, 8080)")
    s.add_argument("--no-worker", action="store_true", help="only receive; run `alertbridge worker` elsewhere")
    s.add_argument("--no-migrate", action="store_true", help="do not apply database migrations at start-up")
    s.add_argument("--mount-emulator", action="store_true", help="also serve the OpsGenie emulator at /emulator")
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="run only the delivery worker (several may share one database)")
    with_config(w)
    w.add_argument("--no-migrate", action="store_true")
    w.set_defaults(func=cmd_worker)

    m = sub.add_parser("migrate", help="apply database migrations and exit")
    with_config(m)
    m.set_defaults(func=cmd_migrate)

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

    e = sub.add_parser("emulator", help="run the OpsGenie/JSM emulator alone")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, default=8900)
    e.add_argument("--api-key", action="append", help="accepted GenieKey (repeatable; default: any)")
    e.add_argument("--processing-delay", type=float, default=0.05, help="seconds before a request is processed")
    e.set_defaults(func=cmd_emulator)

    d = sub.add_parser("db-url", help="print the database URL in use (starts the embedded PostgreSQL if needed)")
    with_config(d)
    d.set_defaults(func=cmd_db_url)

    q = sub.add_parser("psql", help="open psql on the database in use; other arguments go to psql (e.g. -c 'SQL')")
    q.add_argument("--config", help="TOML config file (default: $ALERTBRIDGE_CONFIG)")
    q.set_defaults(func=cmd_psql)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from alertbridge import settings

    _setup_logging(settings.LOG_LEVEL)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["psql"]:  # everything after `psql` (but --config) is for psql itself
        args, rest = parser().parse_known_args(argv)
        args.psql_args = rest
    else:
        args = parser().parse_args(argv)
    if args.command is None:
        args = parser().parse_args(["serve", *argv])
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"alertbridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
