"""The standalone `alertbridge worker` process: its own small HTTP server (/metrics, /healthz, /readyz), its
metrics after real deliveries, a clean SIGTERM; and prometheus-client's multi-process mode across processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.emulator_server import run_emulator
from tests.harness import API_KEY, TOKEN, config_text, fixture_bytes, make_config, run_bridge, wait_for
from tests.test_cli import cli_env, free_port

pytestmark = pytest.mark.slow


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_standalone_worker_serves_metrics_health_and_readiness(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    port = free_port()
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        cfg = tmp_path / "alertbridge.toml"
        cfg.write_text(config_text(emu.base_url, integrations=(("w-am", "alertmanager"),)))
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "alertbridge.cli", "worker", "--config", str(cfg), "--metrics-port", str(port)],
                env=cli_env(ALERTBRIDGE_DATABASE_URL=database_url),
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            base = f"http://127.0.0.1:{port}"

            def up() -> bool:
                try:
                    return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
                except httpx.TransportError:
                    assert proc.poll() is None, log.read_text()
                    return False

            wait_for(up, timeout=60, what="the worker's HTTP server")
            assert httpx.get(f"{base}/readyz").json() == {"status": "ready"}
            assert httpx.get(f"{base}/webhooks/w-am").status_code == 404  # only the three routes
            # A webhook taken by a web-only bridge is delivered by the standalone worker.
            with run_bridge(
                make_config(emu.base_url, integrations=(("w-am", "alertmanager"),)), database_url, run_worker=False
            ) as web:
                firing = fixture_bytes("alertmanager/01_firing_two_alerts.json")
                r = httpx.post(
                    f"{web.base_url}/webhooks/w-am", content=firing, headers={"Authorization": f"Bearer {TOKEN}"}
                )
                assert r.status_code == 202
            wait_for(
                lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (2,),
                what="the worker's deliveries",
            )
            s = samples(httpx.get(f"{base}/metrics").text)
            key = (
                "alertbridge_delivery_attempts_total",
                frozenset({"integration": "w-am", "action": "create", "outcome": "delivered"}.items()),
            )
            assert s[key] == 2
            assert s[("alertbridge_outbox_rows", frozenset({"status": "delivered"}.items()))] == 2
            assert ("alertbridge_db_pool_in_use", frozenset({"pool": "worker"}.items())) in s
            assert (
                s[
                    (
                        "alertbridge_delivery_attempts_total",
                        frozenset({"integration": "w-am", "action": "close", "outcome": "config_error"}.items()),
                    )
                ]
                == 0
            )
            assert not [
                name for name, _ in s if name.startswith("alertbridge_webhooks_received")
            ]  # a worker takes no webhooks
            assert 0 <= s[("alertbridge_worker_loop_age_seconds", frozenset())] < 30
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    text = log.read_text()
    assert f"worker metrics on http://127.0.0.1:{port}/metrics" in text
    assert "Traceback" not in text


def test_worker_without_metrics_port(tmp_path: Path, database_url: str) -> None:
    """`--metrics-port 0`: no HTTP server; the worker still runs and stops cleanly."""
    cfg = tmp_path / "alertbridge.toml"
    cfg.write_text(config_text("http://127.0.0.1:9", integrations=(("w-none", "alertmanager"),)))
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alertbridge.cli", "worker", "--config", str(cfg), "--metrics-port", "0"],
            env=cli_env(ALERTBRIDGE_DATABASE_URL=database_url),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "delivering for w-none" in log.read_text() or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "worker metrics on" not in log.read_text()


def test_worker_metrics_port_in_use_is_one_line(tmp_path: Path, database_url: str) -> None:
    import socket

    cfg = tmp_path / "alertbridge.toml"
    cfg.write_text(config_text("http://127.0.0.1:9", integrations=(("w-busy", "alertmanager"),)))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "alertbridge.cli", "worker", "--config", str(cfg), "--metrics-port", str(port)],
            env=cli_env(ALERTBRIDGE_DATABASE_URL=database_url),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2, r.stderr
    assert f"cannot serve /metrics on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr and "alembic" not in r.stderr  # refused before migrating


def test_multiprocess_mode_sums_every_process(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, what one process exposes is the sum over every process that shares it."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = textwrap.dedent(
        """
        import sys
        from alertbridge import metrics
        for _ in range(int(sys.argv[1])):
            metrics.webhook_received("mp-am", "accepted")
        metrics.POOL_IN_USE.labels("web").set(int(sys.argv[1]))
        """
    )
    for n in ("2", "3"):
        subprocess.run([sys.executable, "-c", count, n], env=env, check=True, timeout=60)
    expose = textwrap.dedent(
        """
        import asyncio, sys
        from alertbridge import metrics
        print(metrics.generate_latest(metrics._registry()).decode())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", expose], env=env, check=True, timeout=60, capture_output=True, text=True
    )
    s = samples(out.stdout)
    assert (
        s[("alertbridge_webhooks_received_total", frozenset({"integration": "mp-am", "status": "accepted"}.items()))]
        == 5
    )
    # Live gauges of processes that exited are dropped (the processes marked themselves dead at exit).
    assert ("alertbridge_db_pool_in_use", frozenset({"pool": "web"}.items())) not in s
    assert any(name == "process_cpu_seconds_total" for name, _ in s)  # the exposing process's own
    assert any(f.startswith("counter_") for f in os.listdir(tmp_path))  # the counters live in files there
