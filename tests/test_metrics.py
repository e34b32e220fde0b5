"""GET /metrics: the Prometheus text format, with real values after real traffic (webhooks through the bridge,
deliveries to the emulator, gauges read from Postgres), and /readyz failing when the worker is stuck."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alertbridge import metrics
from tests.emulator_server import RunningEmulator, run_emulator
from tests.harness import API_KEY, FIXTURES, TOKEN, config_text, fixture_bytes, wait_for
from tests.servers import RunningServer

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        yield emu


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> tuple[str, Samples]:
    r = httpx.get(f"{base_url}/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return r.text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def serve(config: str, database_url: str, **kwargs: object) -> object:
    from alertbridge.config import parse_config
    from tests.harness import run_bridge

    return run_bridge(parse_config(config, {}, source="t.toml", base_dir=FIXTURES), database_url, **kwargs)


def settled(db: psycopg.Connection) -> bool:
    return db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone() == (0,)


def test_metrics_after_traffic(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.j2"
    broken.write_text('{"action": "create", "alias": "x", "message": "{{ 1 // 0 }}"}')
    config = config_text(
        emulator.base_url,
        integrations=(("m-am", "alertmanager"), ("m-broken", str(broken))),
        server="[server]\nmax_body_bytes = 20000\n",
    )
    with serve(config, database_url) as bridge:
        assert isinstance(bridge, RunningServer)
        url = f"{bridge.base_url}/webhooks/"
        firing = fixture_bytes("alertmanager/01_firing_two_alerts.json")
        assert httpx.post(url + "m-am", content=firing, headers=AUTH).status_code == 202
        assert httpx.post(url + "m-am", content=b"{nope", headers=AUTH).status_code == 400
        assert (
            httpx.post(url + "m-am", content=firing, headers={"Authorization": "Bearer wrong-0000"}).status_code == 401
        )
        assert httpx.post(url + "m-am", content=b" " * 30000, headers=AUTH).status_code == 413
        assert httpx.post(url + "m-broken", content=b"{}", headers=AUTH).status_code == 422
        assert httpx.post(url + "m-unknown", content=b"{}", headers=AUTH).status_code == 404
        wait_for(lambda: settled(db), what="deliveries")
        text, s = scrape(bridge.base_url)

    def webhooks(integration: str, status: str) -> float | None:
        return value(s, "alertbridge_webhooks_received_total", integration=integration, status=status)

    assert webhooks("m-am", "accepted") == 1
    assert webhooks("m-am", "invalid") == 1
    assert webhooks("m-am", "unauthorized") == 1
    assert webhooks("m-am", "too_large") == 1
    assert webhooks("m-am", "template_error") == 0  # declared at zero, so rates and alerts see the series
    assert webhooks("m-broken", "template_error") == 1
    assert "m-unknown" not in text  # an unknown name never becomes a label value
    assert value(s, "alertbridge_render_seconds_count", integration="m-am") == 1  # the 400 never rendered
    assert value(s, "alertbridge_render_seconds_count", integration="m-broken") == 1
    assert (
        value(s, "alertbridge_delivery_attempts_total", integration="m-am", action="create", outcome="delivered") == 2
    )
    assert value(s, "alertbridge_delivery_seconds_count", integration="m-am", action="create") == 2
    assert value(s, "alertbridge_accept_to_delivered_seconds_count", integration="m-am") == 2
    accepted = value(s, "alertbridge_accept_to_delivered_seconds_sum", integration="m-am")
    assert accepted is not None and 0 < accepted < 60
    # Read from Postgres at scrape time (a fresh database per test)
    assert value(s, "alertbridge_database_up") == 1
    assert value(s, "alertbridge_outbox_rows", status="delivered") == 2
    assert value(s, "alertbridge_outbox_rows", status="pending") == 0
    assert value(s, "alertbridge_outbox_oldest_pending_seconds") == 0
    assert value(s, "alertbridge_aliases", integration="m-am", state="open") == 2
    assert value(s, "alertbridge_aliases", integration="m-am", state="closed") == 0
    # This process: pools and worker
    assert value(s, "alertbridge_db_pool_in_use", pool="web") is not None
    assert value(s, "alertbridge_db_pool_max", pool="worker") is not None
    age = value(s, "alertbridge_worker_loop_age_seconds")
    assert age is not None and 0 <= age < 30
    # The default process and platform collectors
    assert any(name == "process_cpu_seconds_total" for name, _ in s)
    assert any(name == "python_info" for name, _ in s)


def test_backlog_and_config_errors_show(emulator: RunningEmulator, database_url: str, db: psycopg.Connection) -> None:
    """OpsGenie answers 401 (a wrong API key): the attempts count as config_error, the rows wait in the outbox."""
    config = config_text(emulator.base_url, integrations=(("m-401", "alertmanager"),)).replace(
        f'api_key = "{API_KEY}"', 'api_key = "not-the-key"'
    )
    with serve(config, database_url) as bridge:
        assert isinstance(bridge, RunningServer)
        firing = fixture_bytes("alertmanager/01_firing_two_alerts.json")
        assert httpx.post(f"{bridge.base_url}/webhooks/m-401", content=firing, headers=AUTH).status_code == 202

        def config_errors() -> float:
            _, s = scrape(bridge.base_url)
            n = value(
                s, "alertbridge_delivery_attempts_total", integration="m-401", action="create", outcome="config_error"
            )
            return n if n and n >= 2 else 0

        wait_for(config_errors, what="config_error attempts")
        metrics.Exporter.min_interval = 0.0  # no caching of the database read between these scrapes
        try:
            wait_for(
                lambda: (value(scrape(bridge.base_url)[1], "alertbridge_outbox_oldest_pending_seconds") or 0) > 0.2
            )
            _, s = scrape(bridge.base_url)
        finally:
            metrics.Exporter.min_interval = 1.0
    assert value(s, "alertbridge_outbox_rows", status="pending") == 2 or value(
        s, "alertbridge_outbox_rows", status="in_flight"
    )
    assert value(s, "alertbridge_outbox_rows", status="delivered") == 0
    assert (
        value(s, "alertbridge_delivery_attempts_total", integration="m-401", action="create", outcome="delivered") == 0
    )


def test_database_gauges_are_left_out_when_the_database_does_not_answer(
    emulator: RunningEmulator, database_url: str, pg_admin_url: str
) -> None:
    """A scrape never hangs on Postgres: when the database is gone the gauges are missing and database_up is 0."""
    config = config_text(emulator.base_url, integrations=(("m-down", "alertmanager"),))
    with serve(config, database_url, run_worker=False) as bridge:
        assert isinstance(bridge, RunningServer)
        assert value(scrape(bridge.base_url)[1], "alertbridge_database_up") == 1
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
            try:
                metrics.Exporter.min_interval = 0.0
                text, s = scrape(bridge.base_url)
            finally:
                metrics.Exporter.min_interval = 1.0
                admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    assert value(s, "alertbridge_database_up") == 0
    assert value(s, "alertbridge_outbox_rows", status="pending") is None
    assert "# TYPE alertbridge_outbox_rows gauge" in text  # the family is still described


def test_readyz_fails_while_the_worker_is_stuck(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    """A worker blocked in the database (here: the outbox table locked by another session) stops turning its
    loop; /readyz answers 503 with the reason, and 200 again once the worker moves."""
    config = config_text(emulator.base_url, integrations=(("m-stuck", "alertmanager"),))
    config += "\n[worker]\nstuck_after_seconds = 0.5\n"
    with serve(config, database_url) as bridge:
        assert isinstance(bridge, RunningServer)
        ready = f"{bridge.base_url}/readyz"
        wait_for(lambda: httpx.get(ready).status_code == 200, what="ready")
        with db.transaction():
            db.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
            r = wait_for(lambda: (resp := httpx.get(ready)).status_code == 503 and resp, what="503")
            assert r.json()["error"] == "worker_stuck"
            assert "has not turned its loop" in r.json()["message"]
            # A scrape does not hang on the lock either: the database gauges give up after their timeout.
            metrics.Exporter.min_interval = 0.0
            try:
                _, s = scrape(bridge.base_url)
            finally:
                metrics.Exporter.min_interval = 1.0
            assert value(s, "alertbridge_database_up") == 0
            assert value(s, "alertbridge_outbox_rows", status="pending") is None
            age = value(s, "alertbridge_worker_loop_age_seconds")
            assert age is not None and age > 0.5
        wait_for(lambda: httpx.get(ready).status_code == 200, what="ready again")


def test_readyz_without_a_worker_ignores_the_worker(emulator: RunningEmulator, database_url: str) -> None:
    config = config_text(emulator.base_url, integrations=(("m-noworker", "alertmanager"),))
    with serve(config, database_url, run_worker=False) as bridge:
        assert isinstance(bridge, RunningServer)
        assert httpx.get(f"{bridge.base_url}/readyz").json() == {"status": "ready"}
        _, s = scrape(bridge.base_url)
    assert value(s, "alertbridge_worker_loop_age_seconds") is None


@pytest.mark.parametrize(
    ("http_status", "error", "label"),
    [
        (202, None, "accepted"),
        (200, None, "handshake"),
        (400, "invalid_body", "invalid"),
        (400, "client_disconnected", "invalid"),
        (401, "unauthorized", "unauthorized"),
        (401, "bad_signature", "unauthorized"),
        (413, "body_too_large", "too_large"),
        (422, "template_error", "template_error"),
        (422, "payload_error", "payload_error"),
        (503, "database_unavailable", "unavailable"),
        (500, "internal_error", "error"),
        (418, "teapot", "error"),
    ],
)
def test_webhook_status_labels(http_status: int, error: str | None, label: str) -> None:
    assert metrics.webhook_status(http_status, error) == label
    assert label in metrics.WEBHOOK_STATUSES


def test_labels_are_bounded() -> None:
    """Free text never becomes a label value: unknown outcomes and actions are `other`."""

    class Attempt:
        kind = "send"
        outcome = "something new: with text"
        latency_ms = 12.0

    metrics.attempt_recorded("m-bounded", "explode", Attempt())
    metrics.webhook_received("m-bounded", "a brand new status")
    text = httpx.Response(200, content=metrics.generate_latest(metrics.REGISTRY)).text
    lines = [line for line in text.splitlines() if "m-bounded" in line and not line.startswith("#")]
    assert lines and all("something" not in line and "explode" not in line and "brand" not in line for line in lines)
    assert 'alertbridge_delivery_attempts_total{action="other",integration="m-bounded",outcome="other"} 1.0' in lines
    assert math.isclose(
        metrics.DELIVERY_SECONDS.labels("m-bounded", "other")._sum.get(),  # type: ignore[attr-defined]
        0.012,
    )
