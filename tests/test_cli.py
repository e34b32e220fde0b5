"""The `alertbridge` command as users run it: real processes, real ports, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.emulator_server import run_emulator
from tests.harness import API_KEY, FIXTURES, TOKEN, config_text, wait_for

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBRIDGE_") and k != "DATABASE_URL"}
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertbridge.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def serve(*args: str, env: dict[str, str], cwd: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alertbridge.cli", "serve", "--port", str(port), *args],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_demo_serve_end_to_end(tmp_path: Path) -> None:
    """The README's first command: embedded Postgres, emulator target, a curl-able webhook."""
    port = free_port()
    env = cli_env(ALERTBRIDGE_DATA_DIR=str(tmp_path / "data"))
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with serve(env=env, cwd=tmp_path, port=port, log=log) as proc:
        index = httpx.get(base).json()
        assert index["webhooks"]["alertmanager"] == f"{base}/webhooks/alertmanager"
        # Every token-authenticated source can be tried with its fixture in the demo.
        for source, fixture in [
            ("grafana", "01_firing.json"),
            ("genesys", "01_queue_sla_alarm.json"),
            ("azure_monitor", "01_fired.json"),
            ("datadog", "01_triggered.json"),
        ]:
            r = httpx.post(
                f"{base}/webhooks/{source}",
                content=(FIXTURES / source / fixture).read_bytes(),
                headers={"X-Bridge-Token": "demo-token"},
            )
            assert r.status_code == 202, (source, r.text)
        firing = (FIXTURES / "alertmanager/01_firing_two_alerts.json").read_bytes()
        r = httpx.post(
            f"{base}/webhooks/alertmanager",
            content=firing,
            headers={"Authorization": "Bearer demo-token", "Content-Type": "application/json"},
        )
        assert r.status_code == 202, r.text

        def alerts(status: str) -> list[dict[str, object]]:
            return httpx.get(f"{base}/emulator/_control/alerts", params={"query": f"status:{status}"}).json()["data"]

        wait_for(lambda: len(alerts("open")) == 7, timeout=20, what="the demo's alerts open in the emulator")
        resolved = (FIXTURES / "alertmanager/04_all_resolved.json").read_bytes()
        r = httpx.post(f"{base}/webhooks/alertmanager?token=demo-token", content=resolved)
        assert r.status_code == 202
        wait_for(lambda: len(alerts("open")) == 6 and len(alerts("closed")) == 1, timeout=20, what="one closed")

        url = run_cli("db-url", env=env, cwd=tmp_path).stdout.strip()
        assert url.startswith("postgresql://")
        with psycopg.connect(url) as conn:
            states = dict(
                conn.execute("SELECT alias, state FROM aliases WHERE integration = 'alertmanager'").fetchall()
            )
        assert states == {"f8f9add23ebfa2db": "open", "719a1a97ef71f433": "closed"}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    text = log.read_text()
    assert "token=" not in text  # ?token= never reaches the log
    assert text.count("demo-token") == 1  # only the demo banner names the (public) demo token
    assert "/webhooks/alertmanager" in text
    # Data survives a restart: the embedded server reuses its folder.
    assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()


def test_kill_9_mid_delivery_then_restart_delivers(tmp_path: Path, database_url: str, db: psycopg.Connection) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        httpx.post(f"{emu.base_url}/_control/faults", json={"hang": 5, "count": 1}).raise_for_status()
        delivery = "[delivery]\ntimeout_seconds = 10.0\npoll_interval_seconds = 0.1\nlease_seconds = 1.0\n"
        cfg = tmp_path / "alertbridge.toml"
        cfg.write_text(config_text(emu.base_url, delivery=delivery))
        env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url)
        port = free_port()
        body = json.dumps({"action": "create", "alias": "crash", "message": "m"})
        with serve("--config", str(cfg), env=env, cwd=tmp_path, port=port, log=tmp_path / "1.log") as proc:
            r = httpx.post(
                f"http://127.0.0.1:{port}/webhooks/generic", content=body, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert r.status_code == 202
            wait_for(lambda: db.execute("SELECT status FROM outbox").fetchone() == ("in_flight",), what="claim")
            wait_for(lambda: len(emu.state.requests) == 1, what="the hanging send")
            proc.kill()
            proc.wait(10)
        assert db.execute("SELECT status FROM outbox").fetchone() == ("in_flight",)
        with serve("--config", str(cfg), env=env, cwd=tmp_path, port=port, log=tmp_path / "2.log") as proc:
            wait_for(
                lambda: db.execute("SELECT status FROM outbox").fetchone() == ("delivered",),
                timeout=20,
                what="redelivery after the lease expired",
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        emu.wait_idle(timeout=10)
        alerts = [a for a in emu.state.alerts.values() if a["alias"] == "generic:crash"]
        assert len(alerts) == 1  # the retried create deduplicates by alias


def test_render_dry_run_prints_events_and_requests(tmp_path: Path) -> None:
    r = run_cli(
        "render",
        "--template",
        "alertmanager",
        "--payload",
        str(FIXTURES / "alertmanager/02_one_resolved_one_firing.json"),
        env=cli_env(),
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [(e["action"], e["alias"]) for e in out] == [("close", "f8f9add23ebfa2db"), ("create", "719a1a97ef71f433")]
    assert out[0]["request"]["url"] == "https://api.opsgenie.com/v2/alerts/f8f9add23ebfa2db/close?identifierType=alias"
    assert out[1]["request"]["json"]["priority"] == "P1"

    bad = run_cli(
        "render", "--template", "alertmanager", "--payload", str(FIXTURES / "hostile/alerts_null.json"), env=cli_env()
    )
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["status"] == "template_error"


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        config_text("http://127.0.0.1:9").replace('default_source = "alertbridge-test"', 'default_sauce = "x"')
    )
    r = run_cli("serve", "--config", str(cfg), env=cli_env())
    assert r.returncode == 2
    assert "integrations[0].target.default_sauce" in r.stderr and "Traceback" not in r.stderr

    cfg.write_text(config_text("http://127.0.0.1:9").replace('template = "generic"', 'template = "nope"'))
    r = run_cli("serve", "--config", str(cfg), env=cli_env())
    assert r.returncode == 2 and "integrations[1].template" in r.stderr and "Traceback" not in r.stderr


def test_replay_after_fixing_the_template(tmp_path: Path, database_url: str, db: psycopg.Connection) -> None:
    template = tmp_path / "custom.j2"
    template.write_text(
        '{"action": "create", "alias": {{ payload.id | tojson }}, "message": {{ payload.titel | tojson }}}\n'
    )
    cfg = tmp_path / "alertbridge.toml"
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        cfg.write_text(config_text(emu.base_url, integrations=(("custom", str(template)),)))
        env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url)
        port = free_port()
        with serve("--config", str(cfg), env=env, cwd=tmp_path, port=port, log=tmp_path / "1.log") as proc:
            r = httpx.post(
                f"http://127.0.0.1:{port}/webhooks/custom",
                content=b'{"id": "x1", "title": "hello"}',
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert r.status_code == 422
            err = r.json()
            assert err["line"] == 1 and "titel" in err["message"]
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        template.write_text(
            '{"action": "create", "alias": {{ payload.id | tojson }}, "message": {{ payload.title | tojson }}}\n'
        )
        refused = run_cli("replay", str(err["id"] + 1000), "--config", str(cfg), env=env)
        assert refused.returncode == 1 and "does not exist" in refused.stdout
        r2 = run_cli("replay", str(err["id"]), "--config", str(cfg), env=env)
        assert r2.returncode == 0, r2.stdout + r2.stderr
        assert json.loads(r2.stdout)["events"][0]["alias"] == "x1"
        again = run_cli("replay", str(err["id"]), "--config", str(cfg), env=env)
        assert again.returncode == 1 and "--force" in again.stdout
        # The first failure stays visible next to its fix: replays are rows, never overwrites.
        row = db.execute("SELECT status, error->>'kind', current_status, replay_count FROM inbound_events").fetchone()
        assert row == ("template_error", "undefined", "processed", 1)
        assert db.execute("SELECT status, actor, error FROM inbound_replays").fetchall() == [("processed", "cli", None)]
        # The fixed file became version 2 (applied by `replay` as by serve's start-up), and the replay names it.
        assert db.execute(
            "SELECT v.version, v.author FROM inbound_replays r JOIN template_versions v ON v.id = r.template_version_id"
        ).fetchall() == [(2, "config file")]
        with serve("--config", str(cfg), env=env, cwd=tmp_path, port=port, log=tmp_path / "2.log") as proc:
            wait_for(lambda: db.execute("SELECT status FROM outbox").fetchone() == ("delivered",), what="delivery")
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        emu.wait_idle()
        assert [a["message"] for a in emu.state.alerts.values()] == ["hello"]


def test_worker_command_delivers_and_stops_on_sigterm(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    """`alertbridge worker` alone delivers what `serve --no-worker` received."""
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        cfg = tmp_path / "alertbridge.toml"
        cfg.write_text(config_text(emu.base_url, delivery="[delivery]\npoll_interval_seconds = 0.1\n"))
        env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url)
        port = free_port()
        with serve("--config", str(cfg), "--no-worker", env=env, cwd=tmp_path, port=port, log=tmp_path / "s.log"):
            firing = (FIXTURES / "alertmanager/01_firing_two_alerts.json").read_bytes()
            r = httpx.post(
                f"http://127.0.0.1:{port}/webhooks/alertmanager",
                content=firing,
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert r.status_code == 202
            time.sleep(0.5)
            assert db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone() == (2,)
        with open(tmp_path / "w.log", "wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "alertbridge.cli", "worker", "--config", str(cfg)],
                env=env,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(
                lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (2,),
                timeout=30,
                what="the worker's deliveries",
            )
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        emu.wait_idle()
        assert len(emu.state.alerts) == 2


def test_emulator_command(tmp_path: Path) -> None:
    port = free_port()
    with open(tmp_path / "e.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alertbridge.cli", "emulator", "--port", str(port), "--api-key", "k1"],
            env=cli_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/_control/alerts").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=30, what="the emulator")
        assert (
            httpx.post(f"{base}/v2/alerts", json={"message": "m"}, headers={"Authorization": "GenieKey no"}).status_code
            == 401
        )
        r = httpx.post(
            f"{base}/jsm/ops/integration/v2/alerts",
            json={"message": "m", "alias": "a"},
            headers={"Authorization": "GenieKey k1"},
        )
        assert r.status_code == 202 and r.json()["requestId"]
    finally:
        proc.terminate()
        proc.wait(30)


def test_psql_and_db_url_use_the_configured_database(database_url: str) -> None:
    env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url)
    assert run_cli("db-url", env=env).stdout.strip() == database_url
    r = run_cli("psql", "-tA", "-c", "SELECT count(*) FROM outbox", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
