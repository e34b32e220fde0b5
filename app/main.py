"""Composition: a Config (and a database URL) in, the running ASGI app out.

This is one of the few modules that builds engines and clients; settings are read by app.cli only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alertbridge.admission import IngestGate
from alertbridge.config import Config, ConfigError, IntegrationConfig
from alertbridge.core.circuit import CircuitPolicy
from alertbridge.core.retry import RetryPolicy
from alertbridge.db import Database
from alertbridge.delivery import Target, Worker, WorkerOptions
from alertbridge.ingest import Route
from alertbridge.limits import Defaults
from alertbridge.opsgenie import Client
from alertbridge.rendering import CompiledTemplate, RenderLimits, TemplateError, compile_template, load_template_source
from alertbridge.sns import CertStore, SnsVerifier
from alertbridge.store import integrations as integrations_store
from alertbridge.web.auth import BodyCheck, HmacCheck
from alertbridge.web.routes import routes
from alertbridge.web.webhooks import Endpoint

log = logging.getLogger("alertbridge")
access_log = logging.getLogger("alertbridge.access")


def load_template(integration: IntegrationConfig, index: int, config: Config) -> CompiledTemplate:
    try:
        name, source = load_template_source(integration.template, config.base_dir)
        return compile_template(source, name)
    except TemplateError as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise ConfigError(f"{config.source}: integrations[{index}].template: {exc.message}{where}") from None


@dataclass(frozen=True)
class Bridge:
    """Everything derived from the config, ready to serve."""

    config: Config
    endpoints: dict[str, Endpoint]
    routes: dict[str, Route]
    targets: dict[str, Target]
    templates: dict[str, CompiledTemplate]
    http: httpx.AsyncClient | None = None  # for SNS certificates and subscription confirmations


def body_check(integ: IntegrationConfig, http: httpx.AsyncClient | None) -> BodyCheck | None:
    sig = integ.signature
    if sig is None:
        return None
    if sig.kind in ("hmac-sha256", "sentry"):  # Sentry: header defaults filled in by the config parser
        assert sig.secret is not None and sig.header is not None
        return HmacCheck(
            str(sig.secret),
            sig.header,
            sig.timestamp_header,
            sign_timestamp=sig.kind != "sentry",
            max_skew=sig.max_skew_seconds,
        )
    return SnsVerifier(
        certs=CertStore(http, local_file=sig.signing_cert_file),
        topic_arns=frozenset(sig.topic_arns),
        confirm_subscriptions=sig.confirm_subscriptions,
        http=http,
    )


def build_bridge(config: Config, *, http: httpx.AsyncClient | None = None) -> Bridge:
    """``http``: the client SNS integrations use to fetch certificates and confirm subscriptions (one is made
    when an SNS integration needs it)."""
    if http is None and any(i.signature and i.signature.kind == "sns" for i in config.integrations):
        http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
    limits = RenderLimits(
        timeout_seconds=config.rendering.timeout_seconds,
        max_output_bytes=config.rendering.max_output_bytes,
        max_events=config.rendering.max_events,
    )
    endpoints: dict[str, Endpoint] = {}
    routes_: dict[str, Route] = {}
    targets: dict[str, Target] = {}
    templates: dict[str, CompiledTemplate] = {}
    for i, integ in enumerate(config.integrations):
        template = load_template(integ, i, config)
        t = integ.target
        route = Route(
            name=integ.name,
            template=template,
            defaults=Defaults(team=t.default_team, priority=t.default_priority, source=t.default_source),
            scope_aliases=t.scope_aliases,
            forward_unknown=integ.forward_unknown,
            render_limits=limits,
            max_json_depth=config.server.max_json_depth,
            priorities=integ.priorities,
            base_url=t.base_url,
        )
        routes_[integ.name] = route
        templates[integ.name] = template
        endpoints[integ.name] = Endpoint(
            route=route,
            tokens=tuple(str(tok).encode() for tok in integ.tokens),
            allow_unauthenticated=integ.allow_unauthenticated,
            enabled=integ.enabled,
            token_header=integ.token_header,
            signature=body_check(integ, http),
        )
        targets[integ.name] = Target(base_url=t.base_url, api_key=str(t.api_key))
    return Bridge(config, endpoints, routes_, targets, templates, http)


def worker_options(config: Config) -> WorkerOptions:
    d = config.delivery
    return WorkerOptions(
        max_in_flight=d.max_in_flight,
        poll_interval=d.poll_interval_seconds,
        lease_seconds=d.lease_seconds,
        shutdown_grace=d.shutdown_grace_seconds,
        confirm_creates=d.confirm_creates,
        record_retry=d.record_retry_seconds,
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


def worker_database(url: str, config: Config) -> Database:
    """Delivery has a pool of its own, so webhooks and deliveries never wait for each other's connections."""
    return Database(url, size=min(config.delivery.max_in_flight, 8) + 2, name="alertbridge-worker")


async def sync_integrations(db: Database, bridge: Bridge) -> None:
    """Provisioning, Grafana style: file-managed rows follow the file; ones no longer in it are disabled.
    No secret is written (tokens and API keys stay in the file / environment)."""
    rows = []
    for integ in bridge.config.integrations:
        settings: dict[str, Any] = {
            "default_team": integ.target.default_team,
            "default_priority": integ.target.default_priority,
            "default_source": integ.target.default_source,
            "scope_aliases": integ.target.scope_aliases,
            "forward_unknown": integ.forward_unknown,
            "tokens": len(integ.tokens),
        }
        rows.append(
            integrations_store.FileIntegration(
                name=integ.name,
                template=integ.template,
                template_sha256=bridge.routes[integ.name].template.sha256,
                target_base_url=integ.target.base_url,
                target_region=integ.target.region,
                settings=settings,
                enabled=integ.enabled,
            )
        )
    async with db.transaction() as conn:
        await integrations_store.sync_from_file(conn, rows)


class AccessLog:
    """One log line per request: method, path (never the query string, which may carry ?token=), status, ms."""

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
            access_log.info(
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
) -> Starlette:
    """The bridge as an ASGI app. The lifespan opens the pools, provisions integrations, runs the worker."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if bridge.http is not None:
                stack.push_async_callback(bridge.http.aclose)
            server = bridge.config.server
            db = await stack.enter_async_context(
                Database(database_url, size=10, name="alertbridge-web", wait_timeout=server.ingest_wait_seconds)
            )
            app.state.db = db
            await sync_integrations(db, bridge)
            app.state.worker = None
            if run_worker:
                wdb = await stack.enter_async_context(worker_database(database_url, bridge.config))
                worker = build_worker(bridge, wdb)
                stack.push_async_callback(worker.client.aclose)
                worker.on_lag = app.state.ingest_gate.report_lag  # delivery keeps its share of this process
                task = asyncio.create_task(worker.run_forever())
                app.state.worker = worker

                async def stop_worker() -> None:
                    worker.stop()
                    await task

                stack.push_async_callback(stop_worker)
            yield

    app = Starlette(routes=routes(emulator), lifespan=lifespan, middleware=[Middleware(AccessLog)])
    app.state.endpoints = bridge.endpoints
    app.state.max_body_bytes = bridge.config.server.max_body_bytes
    app.state.body_timeout = bridge.config.server.body_timeout_seconds
    app.state.ingest_gate = IngestGate(
        limit=bridge.config.server.ingest_concurrency, wait_seconds=bridge.config.server.ingest_wait_seconds
    )
    app.state.emulator_mounted = emulator is not None
    return app
