"""SIGHUP re-reads the config file, validates it, and applies it through the same path as a console change
(provisioning into Postgres + NOTIFY). A broken file is refused with one log line and the old config keeps
working; the process never dies of it. Real processes, real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.emulator_server import run_emulator
from tests.harness import API_KEY, TOKEN, config_text, wait_for
from tests.test_cli import cli_env, free_port, serve

pytestmark = pytest.mark.slow

V1 = '{"action": "create", "alias": "{{ payload.alias }}", "message": "v1 {{ payload.message }}"}'
V2 = '{"action": "create", "alias": "{{ payload.alias }}", "message": "v2 {{ payload.message }}"}'
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def message_of(db: psycopg.Connection, inbound_id: int) -> str:
    row = db.execute("SELECT payload->>'message' FROM outbox WHERE inbound_id = %s", (inbound_id,)).fetchone()
    assert row is not None
    return str(row[0])


def post(base: str, alias: str) -> int:
    r = httpx.post(f"{base}/webhooks/mine", json={"alias": alias, "message": "hi"}, headers=AUTH, timeout=10)
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


def test_sighup_applies_a_changed_file_and_refuses_a_broken_one(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        template = tmp_path / "mine.j2"
        template.write_text(V1)
        cfg = tmp_path / "alertbridge.toml"
        good = config_text(emu.base_url, integrations=(("mine", "mine.j2"),))
        cfg.write_text(good)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp_path / "serve.log"
        env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url)
        with serve("--config", str(cfg), env=env, cwd=tmp_path, port=port, log=log) as proc:
            assert message_of(db, post(base, "a")) == "v1 hi"

            # The template file changes; SIGHUP applies it (a new version, author "config file").
            template.write_text(V2)
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "config reloaded" in log.read_text(), timeout=20, what="the reload")
            assert proc.poll() is None
            assert message_of(db, post(base, "b")) == "v2 hi"
            assert db.execute(
                "SELECT version, author FROM template_versions WHERE integration = 'mine' ORDER BY version"
            ).fetchall() == [(1, "config file"), (2, "config file")]

            # A broken file (TOML error) and a template that does not compile: refused, logged, nothing changes.
            cfg.write_text(good.replace("[[integrations]]", "[[integrations]", 1))
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: log.read_text().count("config reload refused") == 1, timeout=20, what="refusal 1")
            cfg.write_text(good)
            template.write_text('{"action": "create",\n{% if %}')
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: log.read_text().count("config reload refused") == 2, timeout=20, what="refusal 2")
            assert proc.poll() is None
            assert message_of(db, post(base, "c")) == "v2 hi"
            assert db.execute("SELECT count(*) FROM template_versions").fetchone() == (2,)

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    text = log.read_text()
    refusals = [line for line in text.splitlines() if "config reload refused" in line]
    assert len(refusals) == 2
    assert "invalid TOML" in refusals[0]
    assert "integrations[0].template" in refusals[1] and "line 2" in refusals[1]
    assert "Traceback" not in text


def test_sighup_in_a_worker_applies_a_new_api_key(tmp_path: Path, database_url: str, db: psycopg.Connection) -> None:
    """The worker re-reads the file too: a rotated OpsGenie key is used without a restart."""
    with run_emulator(api_keys=["the-new-key"], processing_delay=0.0) as emu:
        (tmp_path / "mine.j2").write_text(V1)
        cfg = tmp_path / "alertbridge.toml"
        cfg.write_text(config_text(emu.base_url, integrations=(("mine", "mine.j2"),)))
        port = free_port()
        env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url)
        with serve("--config", str(cfg), "--no-worker", env=env, cwd=tmp_path, port=port, log=tmp_path / "s.log"):
            worker_log = tmp_path / "worker.log"
            with open(worker_log, "wb") as out:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "alertbridge.cli", "worker", "--config", str(cfg), "--metrics-port", "0"],
                    env=env,
                    cwd=tmp_path,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                inbound = post(f"http://127.0.0.1:{port}", "a")
                wait_for(
                    lambda: (
                        db.execute("SELECT last_outcome FROM outbox WHERE inbound_id = %s", (inbound,)).fetchone()
                        == ("config_error",)
                    ),
                    timeout=30,
                    what="the old key refused",
                )
                cfg.write_text(cfg.read_text().replace(API_KEY, "the-new-key"))
                worker.send_signal(signal.SIGHUP)
                wait_for(
                    lambda: (
                        db.execute("SELECT status FROM outbox WHERE inbound_id = %s", (inbound,)).fetchone()
                        == ("delivered",)
                    ),
                    timeout=30,
                    what="delivery with the new key",
                )
                assert worker.poll() is None
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(30) == 0
            finally:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait(10)
    assert "config reloaded" in worker_log.read_text()
