"""Prometheus metrics (the ``prometheus-client`` library), served at ``/metrics`` by ``serve`` and by the
standalone ``worker``'s own small HTTP server.

Three kinds of values:
- counters and histograms kept in the process (webhooks received, render time, delivery attempts, call time,
  accept-to-delivered time), updated by one-line hooks in the web layer, ingest and the worker;
- gauges read from Postgres when scraped (outbox rows by status, age of the oldest pending row, aliases by
  state): one short query batch under a statement timeout, at most once a second, never blocking the event loop;
- gauges of this process (connection pools in use, seconds since the worker's loop last turned).

Label values come from fixed sets (statuses, actions, outcomes; anything else is ``other``) or from the config's
integration names: no free text ever becomes a label.

Several processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (before start; an empty folder the processes share),
prometheus-client keeps the counters in memory-mapped files there and any process's ``/metrics`` shows the sum
over all of them (see docs/operations/metrics.md). Without it each process serves its own values.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio.to_thread
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from alertbridge.db import Database
from alertbridge.models import AliasState, OutboxStatus
from alertbridge.store import aliases as aliases_store
from alertbridge.store import outbox as outbox_store

log = logging.getLogger("alertbridge.metrics")

# The classic text format (every Prometheus 2.x and 3.x understands it; our names need no escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

OTHER = "other"
#: alertbridge_webhooks_received_total{status}: how a webhook was answered.
WEBHOOK_STATUSES = (
    "accepted",  # 202
    "invalid",  # 400: the body is not acceptable JSON (or the client went away)
    "template_error",  # 422: the template failed
    "payload_error",  # 422: the payload lacks what the template needs
    "unauthorized",  # 401: token or signature
    "too_large",  # 413
    "handshake",  # 200: a source's handshake (SNS subscription confirmation)
    "unavailable",  # 503: the database is unavailable
    "error",  # 500: an unexpected error
)
#: alertbridge_delivery_attempts_total{action}: what was sent (status_check: OpsGenie's request status API).
ACTIONS = ("create", "acknowledge", "close", "note", "status_check")
#: alertbridge_delivery_attempts_total{outcome}: how OpsGenie's answer was classified.
OUTCOMES = ("delivered", "retry", "config_error", "rejected", "waiting", "confirmed", "error")

WEBHOOKS = Counter(
    "alertbridge_webhooks_received",
    "Webhooks answered, by integration and outcome (accepted, invalid, template_error, ...)",
    ["integration", "status"],
)
RENDER_SECONDS = Histogram(
    "alertbridge_render_seconds",
    "Time to render a webhook with its integration's template (successful or not)",
    ["integration"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ATTEMPTS = Counter(
    "alertbridge_delivery_attempts",
    "HTTP calls to OpsGenie / JSM (every delivery_attempts row), by integration, action and outcome",
    ["integration", "action", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "alertbridge_delivery_seconds",
    "Duration of one HTTP call to OpsGenie / JSM",
    ["integration", "action"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
ACCEPT_TO_DELIVERED = Histogram(
    "alertbridge_accept_to_delivered_seconds",
    "From the webhook's acceptance (outbox row created) to OpsGenie's 2xx for that event",
    ["integration"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0),
)
#: alertbridge_policy_decisions_total{reason}: what a lifecycle policy did (core/policies.py; docs/policies.md).
POLICY_REASONS = (
    "silenced",
    "withheld_alert",
    "silence_over",
    "close_delayed",
    "flap",
    "flapping",
    "expired_close",
    "expired_note",
    "expired_resend",
    "expired_locally",
    "source_silent",
    "source_back",
    "paced",
)
POLICY = Counter(
    "alertbridge_policy_decisions",
    "Events a lifecycle policy decided (silenced, delayed, flaps, expiry, source heartbeats, paced rows)",
    ["integration", "reason"],
)
SWEEPS = Counter(
    "alertbridge_sweeper_runs",
    "Sweeper jobs this process ran (it held the job's lock), by job and outcome (ok, error)",
    ["job", "outcome"],
)
SWEEP_LAST = Gauge(
    "alertbridge_sweeper_last_run_timestamp_seconds",
    "When this process last ran a sweeper job (Unix time)",
    ["job"],
    multiprocess_mode="max",
)
HEARTBEAT_PINGS = Counter(
    "alertbridge_heartbeat_pings",
    "Pings of the bridge's own OpsGenie heartbeat, by outcome (ok, failed, unhealthy: not sent)",
    ["outcome"],
)
INGEST_BATCH = Histogram(
    "alertbridge_ingest_batch_size",
    "Webhooks stored together in one transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
POOL_IN_USE = Gauge(
    "alertbridge_db_pool_in_use",
    "Database connections checked out of this process's pools (web: webhooks, worker: delivery)",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "alertbridge_db_pool_max",
    "Maximum size of this process's database pools",
    ["pool"],
    multiprocess_mode="livesum",
)


def _bounded(value: str | None, allowed: Iterable[str]) -> str:
    return value if value is not None and value in allowed else OTHER


# --- hooks --------------------------------------------------------------------------------------------------


def webhook_status(http_status: int, error_code: str | None = None) -> str:
    """The ``status`` label of an answered webhook (pure)."""
    if http_status == 202:
        return "accepted"
    if http_status == 200:
        return "handshake"
    if http_status == 422:
        return "payload_error" if error_code == "payload_error" else "template_error"
    return {400: "invalid", 401: "unauthorized", 413: "too_large", 503: "unavailable"}.get(http_status, "error")


#: Labelled children, looked up once: ``labels()`` validates and locks on every call, which showed up at a few
#: percent of the CPU per webhook and per delivery (series are never removed, so a child stays valid).
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def webhook_received(integration: str, status: str) -> None:
    _child(WEBHOOKS, integration, _bounded(status, WEBHOOK_STATUSES)).inc()


def render_timer(integration: str) -> Any:
    """``with metrics.render_timer(name): render(...)``."""
    return _child(RENDER_SECONDS, integration).time()


def ingest_batch(size: int) -> None:
    INGEST_BATCH.observe(size)


class _Attempt(Protocol):
    kind: str
    outcome: str
    latency_ms: float


def attempt_recorded(integration: str, action: str, attempt: _Attempt) -> None:
    """After each HTTP call to OpsGenie is recorded (a delivery_attempts row)."""
    label = "status_check" if attempt.kind == "status_check" else _bounded(action, ACTIONS)
    _child(ATTEMPTS, integration, label, _bounded(attempt.outcome, OUTCOMES)).inc()
    _child(DELIVERY_SECONDS, integration, label).observe(max(attempt.latency_ms, 0.0) / 1000)


class _Row(Protocol):
    integration: str
    created_at: datetime | None


def delivered(row: _Row, now: datetime | None = None) -> None:
    """When OpsGenie accepted an outbox row: the time since the webhook was accepted."""
    if row.created_at is None:
        return
    seconds = ((now or datetime.now(UTC)) - row.created_at).total_seconds()
    _child(ACCEPT_TO_DELIVERED, row.integration).observe(max(seconds, 0.0))


def policy(integration: str, reason: str, n: int = 1) -> None:
    """A lifecycle policy decided ``n`` events (``reason``: a core.lifecycle.Reason value)."""
    if n:
        POLICY.labels(integration, _bounded(reason, POLICY_REASONS)).inc(n)


def policies_planned(integration: str, plan: Any) -> None:
    """The policy decisions of one webhook's plan (core.plan.Plan)."""
    for e in plan.events:
        if e.by_policy:
            policy(integration, e.decision.code.value)


def paced(integration: str, n: int) -> None:
    policy(integration, "paced", n)


def sweep(job: str, outcome: str) -> None:
    SWEEPS.labels(job, outcome).inc()
    SWEEP_LAST.labels(job).set(time.time())


def heartbeat_ping(outcome: str) -> None:
    HEARTBEAT_PINGS.labels(outcome).inc()


def declare(integrations: Iterable[str], *, webhooks: bool = True) -> None:
    """Create the series every integration has, at zero, so rates and alerts see them before the first event
    (``webhooks=False``: a worker only delivers)."""
    for name in integrations:
        for status in WEBHOOK_STATUSES if webhooks else ():
            WEBHOOKS.labels(name, status)
        for action in ACTIONS:
            for outcome in ("delivered", "retry", "config_error", "rejected"):
                ATTEMPTS.labels(name, action, outcome)


# --- the worker's heartbeat ---------------------------------------------------------------------------------

_heartbeats: dict[str, float] = {}


def worker_heartbeat(worker: str) -> None:
    """Called by the worker at every turn of its loop."""
    _heartbeats[worker] = time.monotonic()


def loop_age(worker: str) -> float | None:
    """Seconds since the worker's loop last turned; None if it never did."""
    last = _heartbeats.get(worker)
    return None if last is None else time.monotonic() - last


def forget_worker(worker: str) -> None:
    _heartbeats.pop(worker, None)


# --- values read at scrape time ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DbSnapshot:
    up: bool
    outbox: Mapping[str, int] = field(default_factory=dict)
    oldest_pending_seconds: float = 0.0
    aliases: Mapping[tuple[str, str], int] = field(default_factory=dict)
    withheld: int = 0  # live aliases whose create a silence withheld
    held_closes: int = 0  # closes waiting for close_delay


async def read_database(db: Database, timeout: float = 2.0) -> DbSnapshot:
    """Outbox and alias counts, under a statement timeout; ``up=False`` when the database does not answer."""

    async def query() -> DbSnapshot:
        async with db.connection() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
            counts = await outbox_store.count_by_status(conn)
            oldest = await outbox_store.oldest_pending_seconds(conn)
            aliases = await aliases_store.count_by_state(conn)
            withheld, held = await aliases_store.policy_counts(conn)
        return DbSnapshot(True, counts, oldest, aliases, withheld, held)

    try:
        return await asyncio.wait_for(query(), timeout + 0.5)
    except Exception as exc:  # any failure: the gauges are left out, alertbridge_database_up is 0
        log.debug("metrics: database not read (%s)", type(exc).__name__)
        return DbSnapshot(False)


class _Snapshot(Collector):
    def __init__(self, snap: DbSnapshot, loop_age: float | None, has_worker: bool) -> None:
        self.snap, self.loop_age, self.has_worker = snap, loop_age, has_worker

    def collect(self) -> Iterable[GaugeMetricFamily]:
        snap = self.snap
        yield GaugeMetricFamily(
            "alertbridge_database_up", "1 when this scrape could read the database", value=int(snap.up)
        )
        rows = GaugeMetricFamily("alertbridge_outbox_rows", "Outbox rows by status", labels=["status"])
        aliases = GaugeMetricFamily(
            "alertbridge_aliases", "Aliases by integration and state", labels=["integration", "state"]
        )
        oldest = GaugeMetricFamily(
            "alertbridge_outbox_oldest_pending_seconds",
            "Age of the oldest outbox row waiting for delivery (pending or in flight; 0 when none)",
        )
        if snap.up:
            for status in OutboxStatus:
                rows.add_metric([status.value], snap.outbox.get(status.value, 0))
            oldest.add_metric([], snap.oldest_pending_seconds)
            integrations = sorted({integration for integration, _ in snap.aliases})
            for integration in integrations:
                for state in AliasState:
                    aliases.add_metric([integration, state.value], snap.aliases.get((integration, state.value), 0))
        yield rows
        yield oldest
        yield aliases
        if snap.up:
            yield GaugeMetricFamily(
                "alertbridge_aliases_withheld",
                "Live aliases whose create a silence withheld (sent when the silence ends, if they still fire)",
                value=snap.withheld,
            )
            yield GaugeMetricFamily(
                "alertbridge_closes_held",
                "Closes waiting for close_delay (flap damping): delivered when the delay ends unless they flap",
                value=snap.held_closes,
            )
        if self.has_worker:
            yield GaugeMetricFamily(
                "alertbridge_worker_loop_age_seconds",
                "Seconds since this process's delivery worker last turned its loop (/readyz fails when too long)",
                value=self.loop_age if self.loop_age is not None else float("inf"),
            )


_multiprocess_registry: CollectorRegistry | None = None


def _registry() -> CollectorRegistry:
    """The registry to expose: the process's own, or (multi-process mode) the sum over the shared folder plus
    this process's process/platform collectors."""
    global _multiprocess_registry
    if MULTIPROC_DIR is None:
        return REGISTRY
    if _multiprocess_registry is None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        _multiprocess_registry = registry
    return _multiprocess_registry


def process_exited(pid: int | None = None) -> None:
    """Multi-process mode: drop this process's live gauges from the shared folder (runs at exit)."""
    if MULTIPROC_DIR is not None:
        multiprocess.mark_process_dead(pid or os.getpid())


if MULTIPROC_DIR is not None:
    atexit.register(process_exited)


class Exporter:
    """What one process exposes at /metrics: the registry, the database gauges, its pools and worker."""

    min_interval = 1.0  # seconds between two reads of the database (concurrent scrapes share one)

    def __init__(
        self,
        db: Database,
        *,
        pools: Mapping[str, Database] | None = None,
        worker: str | None = None,
        db_timeout: float = 2.0,
    ) -> None:
        self.db = db
        self.pools = dict(pools or {})
        self.worker = worker
        self.db_timeout = db_timeout
        self._lock = asyncio.Lock()
        self._last: tuple[float, DbSnapshot] | None = None

    def sample_pools(self) -> None:
        for name, pool in self.pools.items():
            POOL_IN_USE.labels(name).set(pool.in_use)
            POOL_SIZE.labels(name).set(pool.size)

    async def snapshot(self) -> DbSnapshot:
        async with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._last[0] >= self.min_interval:
                self._last = (time.monotonic(), await read_database(self.db, self.db_timeout))
            return self._last[1]

    async def render(self) -> bytes:
        snap = await self.snapshot()
        self.sample_pools()
        extra = CollectorRegistry(auto_describe=False)
        age = loop_age(self.worker) if self.worker else None
        extra.register(_Snapshot(snap, age, self.worker is not None))

        def generate() -> bytes:
            return generate_latest(_registry()) + generate_latest(extra)

        return await anyio.to_thread.run_sync(generate)

    @contextlib.asynccontextmanager
    async def sampling(self, interval: float = 5.0) -> AsyncIterator[None]:
        """Multi-process mode: keep this process's pool gauges fresh in the shared folder, for scrapes that
        another process answers. (A single process samples them when scraped.)"""
        if MULTIPROC_DIR is None:
            yield
            return

        async def loop() -> None:
            while True:
                self.sample_pools()
                await asyncio.sleep(interval)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
