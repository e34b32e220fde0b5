"""Composition: a Config (and a database URL) in, the running ASGI app out.

This is one of the few modules that builds engines and clients; settings are read by app.cli only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alertbridge import metrics
from alertbridge.admission import IngestGate
from alertbridge.committer import Committer
from alertbridge.config import Config, ConfigError
from alertbridge.core.circuit import CircuitPolicy
from alertbridge.core.retry import RetryPolicy
from alertbridge.db import Database
from alertbridge.delivery import Target, Worker, WorkerOptions
from alertbridge.ingest import Route
from alertbridge.opsgenie import Client
from alertbridge.refused import RefusedCounter
from alertbridge.registry import LiveEndpoints, Registry, Snapshot, auth_mode, from_config, policy_settings
from alertbridge.rendering import CompiledTemplate
from alertbridge.retention import run_sweeper
from alertbridge.secretbox import SecretBox
from alertbridge.store import integrations as integrations_store
from alertbridge.store import silences as silences_store
from alertbridge.sweeper import Sweeper
from alertbridge.web.routes import routes, worker_routes
from alertbridge.web.webhooks import Endpoint

log = logging.getLogger("alertbridge")
access_log = logging.getLogger("alertbridge.access")


@dataclass(frozen=True)
class Bridge:
    """Everything derived from the config file, ready to serve (the registry's first snapshot; once running,
    every process follows Postgres instead)."""

    config: Config
    endpoints: Mapping[str, Endpoint]
    routes: Mapping[str, Route]
    targets: Mapping[str, Target]
    templates: dict[str, CompiledTemplate]
    http: httpx.AsyncClient | None = None  # for SNS certificates and subscription confirmations
    snapshot: Snapshot | None = None


def build_bridge(config: Config, *, http: httpx.AsyncClient | None = None) -> Bridge:
    """Validate and compile what the config declares. ``http``: the client SNS integrations use to fetch
    certificates and confirm subscriptions (one is made when an SNS integration needs it)."""
    if http is None and any(i.signature and i.signature.kind == "sns" for i in config.integrations):
        http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
    snapshot, templates = from_config(config, http)
    return Bridge(config, snapshot.endpoints, snapshot.routes, snapshot.targets, templates, http, snapshot)


def worker_options(config: Config) -> WorkerOptions:
    d = config.delivery
    return WorkerOptions(
        max_in_flight=d.max_in_flight,
        poll_interval=d.poll_interval_seconds,
        lease_seconds=d.lease_seconds,
        shutdown_grace=d.shutdown_grace_seconds,
        confirm_creates=d.confirm_creates,
        record_retry=d.record_retry_seconds,
        follow_request_status=d.follow_request_status,
        circuit=CircuitPolicy(
            failures=d.circuit_failures,
            probe_base=min(1.0, d.circuit_probe_max_seconds),
            probe_max=d.circuit_probe_max_seconds,
        ),
        retry=RetryPolicy(
            backoff_base=d.backoff_base_seconds,
            backoff_max=d.backoff_max_seconds,
            max_age=d.max_age_seconds,
            config_error_retry=d.config_error_retry_seconds,
            config_error_max_age=d.config_error_max_age_seconds,
        ),
    )


def build_worker(bridge: Bridge, db: Database, *, name: str | None = None) -> Worker:
    d = bridge.config.delivery
    client = Client(timeout=d.timeout_seconds, max_in_flight=d.max_in_flight)
    return Worker(db, client, bridge.targets, worker_options(bridge.config), listen_url=db.url, name=name)


def registry_database(url: str) -> Database:
    """One connection for the registry's poll and reloads (its LISTEN has a connection of its own)."""
    return Database(url, size=1, name="alertbridge-registry", wait_timeout=2.0)


def worker_database(url: str, config: Config) -> Database:
    """Delivery has a pool of its own, so webhooks and deliveries never wait for each other's connections."""
    return Database(url, size=min(config.delivery.max_in_flight, 8) + 2, name="alertbridge-worker")


def file_integrations(bridge: Bridge) -> list[integrations_store.FileIntegration]:
    rows = []
    for integ in bridge.config.integrations:
        t = integ.target
        settings: dict[str, Any] = {
            "default_team": t.default_team,
            "default_priority": t.default_priority,
            "default_source": t.default_source,
            "scope_aliases": t.scope_aliases,
            "forward_unknown": integ.forward_unknown,
            "tokens": len(integ.tokens),
        }
        template = bridge.templates[integ.name]
        rows.append(
            integrations_store.FileIntegration(
                name=integ.name,
                template=integ.template,
                template_source=template.source,
                template_sha256=template.sha256,
                target_base_url=t.base_url,
                target_region=t.region,
                settings=settings,
                enabled=integ.enabled,
                auth_mode=auth_mode(integ),
                token_header=integ.token_header,
                default_team=t.default_team,
                default_priority=t.default_priority,
                default_source=t.default_source,
                scope_aliases=t.scope_aliases,
                forward_unknown=integ.forward_unknown,
                priorities=dict(integ.priorities),
                locked=integ.locked,
                policies=policy_settings(integ).to_dict(),
            )
        )
    return rows


def file_silences(config: Config) -> list[silences_store.NewSilence]:
    return [
        silences_store.NewSilence(
            created_by=s.created_by,
            integration=s.integration,
            alias=s.alias,
            tags=s.tags,
            priorities=s.priorities,
            details=dict(s.details),
            starts_at=s.starts_at,
            ends_at=s.ends_at,
            every=s.every,
            timezone=s.timezone,
            comment=s.comment,
        )
        for s in config.silences
    ]


async def sync_integrations(db: Database, bridge: Bridge) -> bool:
    """Provisioning, Grafana style: file-managed rows follow the file (templates become versions, author
    "config file"); ones no longer in it are disabled. No secret is written (tokens and API keys stay in the
    file / environment). Announces the change to every process. True when something changed."""
    async with db.transaction() as conn:
        changed = await integrations_store.sync_from_file(conn, file_integrations(bridge), origin=bridge.config.source)
        return await silences_store.sync_from_file(conn, file_silences(bridge.config)) or changed


async def apply_config(db: Database, registry: Registry, load: Callable[[], Config]) -> bool:
    """SIGHUP: re-read and validate the config file; on any error log one line and keep everything as it is;
    else provision it into Postgres (which every process follows) and reload this process at once."""
    try:
        config = load()
        bridge = build_bridge(config, http=registry.http)
    except ConfigError as exc:
        log.error("config reload refused, the running configuration stays: %s", exc)
        return False
    try:
        await sync_integrations(db, bridge)
    except Exception as exc:
        log.error("config reload failed while writing to the database (%s); the running configuration stays", exc)
        return False
    registry.config = config
    await registry.reload(db, force=True)
    log.info("config reloaded from %s", config.source)
    return True


def on_sighup(callback: Callable[[], Awaitable[Any]]) -> Callable[[], None]:
    """Install ``callback`` as this process's SIGHUP handler (main thread only); returns the uninstaller."""
    loop = asyncio.get_running_loop()
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    tasks: set[asyncio.Task[Any]] = set()

    def fire() -> None:
        task = loop.create_task(callback())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, fire)
    return lambda: loop.remove_signal_handler(signal.SIGHUP)


PROBES = frozenset({"/metrics", "/healthz", "/readyz"})


class AccessLog:
    """One log line per request: method, path (never the query string, which may carry ?token=), status, ms.
    Prometheus scrapes and health probes are logged at DEBUG."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            client = scope.get("client")
            access_log.log(
                logging.DEBUG if scope["path"] in PROBES else logging.INFO,  # scrapes and probes every few seconds
                '%s "%s %s" %s %.1fms',
                client[0] if client else "-",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - start) * 1000,
            )


def build_app(
    bridge: Bridge,
    database_url: str,
    *,
    run_worker: bool = True,
    emulator: Starlette | None = None,
    demo: bool = False,
    secret_key: str | None = None,
    reload_config: Callable[[], Config] | None = None,
    registry_poll: float = 1.0,
    on_started: Callable[[Starlette], Awaitable[None]] | None = None,
) -> Starlette:
    """The bridge as an ASGI app. The lifespan opens the pools, provisions integrations, loads the registry from
    Postgres and follows it, runs the worker and the background sweepers. ``reload_config``: how SIGHUP re-reads
    the config file. ``demo``: the no-config demo (the index and the 404 list the integrations)."""
    box = SecretBox.from_env(secret_key)
    registry = Registry(bridge.config, initial=bridge.snapshot, http=bridge.http, box=box, poll_interval=registry_poll)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if emulator is not None:  # a mounted app's own lifespan does not run
                stack.push_async_callback(emulator.state.emulator.aclose)
            if bridge.http is not None:
                stack.push_async_callback(bridge.http.aclose)
            server = bridge.config.server
            db = await stack.enter_async_context(
                Database(database_url, size=10, name="alertbridge-web", wait_timeout=server.ingest_wait_seconds)
            )
            app.state.db = db
            committer = Committer(
                db,
                max_batch=server.ingest_batch_size,
                concurrency=server.ingest_transactions,
                wait_seconds=server.ingest_wait_seconds,
            )
            app.state.committer = committer
            stack.push_async_callback(committer.aclose)
            await sync_integrations(db, bridge)
            await registry.reload(db, force=True)
            # The registry polls on a connection of its own, so it never competes with webhooks for the pool.
            rdb = await stack.enter_async_context(registry_database(database_url))
            follower = asyncio.create_task(registry.follow(rdb, rdb.url))

            async def stop_following() -> None:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)

            stack.push_async_callback(stop_following)
            if reload_config is not None:

                async def reload() -> None:
                    if await apply_config(db, registry, reload_config):
                        app.state.max_body_bytes = registry.config.server.max_body_bytes

                stack.callback(on_sighup(reload))
            background = [
                asyncio.create_task(app.state.refused.run(db)),
                asyncio.create_task(run_sweeper(db, bridge.config.retention)),
            ]

            async def stop_background() -> None:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)

            stack.push_async_callback(stop_background)
            app.state.worker = None
            pools = {"web": db}
            if run_worker:
                wdb = await stack.enter_async_context(worker_database(database_url, bridge.config))
                pools["worker"] = wdb
                worker = build_worker(bridge, wdb)
                follow_targets(registry, worker)
                stack.push_async_callback(worker.client.aclose)
                worker.on_lag = app.state.ingest_gate.report_lag  # delivery keeps its share of this process
                task = asyncio.create_task(worker.run_forever())
                app.state.worker = worker

                async def stop_worker() -> None:
                    worker.stop()
                    await task
                    metrics.forget_worker(worker.name)

                stack.push_async_callback(stop_worker)
            # The lifecycle policies' background work (one process per job across replicas: app/sweeper.py).
            sweeper = Sweeper(db, registry, bridge.config, worker=app.state.worker, stuck_after=app.state.stuck_after)
            sweeping = asyncio.create_task(sweeper.run_forever())

            async def stop_sweeper() -> None:
                sweeping.cancel()
                await asyncio.gather(sweeping, return_exceptions=True)
                await sweeper.aclose()

            stack.push_async_callback(stop_sweeper)
            app.state.sweeper = sweeper
            app.state.exporter = metrics.Exporter(
                db, pools=pools, worker=app.state.worker.name if app.state.worker else None
            )
            await stack.enter_async_context(app.state.exporter.sampling())
            if on_started is not None:
                await on_started(app)
            yield

    metrics.declare(bridge.endpoints)
    app = Starlette(routes=routes(emulator), lifespan=lifespan, middleware=[Middleware(AccessLog)])
    app.state.registry = registry
    app.state.endpoints = LiveEndpoints(registry)
    app.state.max_body_bytes = bridge.config.server.max_body_bytes
    app.state.body_timeout = bridge.config.server.body_timeout_seconds
    app.state.ingest_gate = IngestGate(
        limit=bridge.config.server.ingest_concurrency, wait_seconds=bridge.config.server.ingest_wait_seconds
    )
    app.state.emulator_mounted = emulator is not None
    app.state.callbacks = bridge.config.callbacks
    app.state.refused = RefusedCounter()
    app.state.demo = demo
    app.state.stuck_after = bridge.config.worker.stuck_after_seconds
    app.state.secret_box = box
    return app


def build_worker_app(db: Database, worker: Worker, stuck_after: float) -> Starlette:
    """The standalone worker's small HTTP server: /metrics, /healthz, /readyz (its pool, its loop)."""
    app = Starlette(routes=worker_routes())
    app.state.db = db
    app.state.worker = worker
    app.state.stuck_after = stuck_after
    app.state.exporter = metrics.Exporter(db, pools={"worker": db}, worker=worker.name)
    metrics.declare(worker.targets, webhooks=False)
    return app


def follow_targets(registry: Registry, worker: Worker) -> None:
    """The worker delivers with the registry's current targets (API keys, base URLs), swapped on every reload."""
    worker.targets = dict(registry.current.targets)
    registry.listeners.append(lambda snapshot: setattr(worker, "targets", dict(snapshot.targets)))
