"""Live reload across real processes: two `serve --no-worker` and one `alertbridge worker` on one Postgres. A
version saved through the admin API of one serve is used by the OTHER serve's ingest within 2 s, a restore
likewise, and an integration created in one process is delivered by the worker — no restart anywhere."""

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
from tests.test_cli import cli_env, free_port, run_cli, serve

pytestmark = pytest.mark.slow

LOUD = '{"action": "create", "alias": "{{ payload.alias }}", "message": "LOUD {{ payload.message }}"}'


def test_a_saved_version_is_live_in_every_process_within_two_seconds(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY, "console-key"], processing_delay=0.0) as emu:
        cfg = tmp_path / "alertbridge.toml"
        cfg.write_text(config_text(emu.base_url))
        env = cli_env(
            ALERTBRIDGE_DATABASE_URL=database_url,
            ALERTBRIDGE_SECRET_KEY=run_cli("admin", "generate-key", env=cli_env()).stdout.strip(),
        )
        made = run_cli("admin", "create-token", "ci", "--role", "admin", "--config", str(cfg), env=env, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip().splitlines()[-1]  # the token alone on the last line
        api = {"Authorization": f"Bearer {token}"}
        port_a, port_b = free_port(), free_port()
        a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        with (
            serve("--config", str(cfg), "--no-worker", env=env, cwd=tmp_path, port=port_a, log=tmp_path / "a.log"),
            serve("--config", str(cfg), "--no-worker", env=env, cwd=tmp_path, port=port_b, log=tmp_path / "b.log"),
        ):
            with open(tmp_path / "worker.log", "wb") as out:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "alertbridge.cli", "worker", "--config", str(cfg), "--metrics-port", "0"],
                    env=env,
                    cwd=tmp_path,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                sent = iter(range(1000))

                def message_via_b(integration: str = "generic", token_: str = TOKEN) -> str | None:
                    alias = f"x{next(sent)}"
                    r = httpx.post(
                        f"{b}/webhooks/{integration}",
                        json={"action": "create", "alias": alias, "message": "hi"},
                        headers={"Authorization": f"Bearer {token_}"},
                        timeout=10,
                    )
                    assert r.status_code == 202, r.text
                    row = db.execute(
                        "SELECT payload->>'message' FROM outbox WHERE inbound_id = %s", (r.json()["id"],)
                    ).fetchone()
                    return row[0] if row else None

                assert message_via_b() == "hi"
                r = httpx.put(
                    f"{a}/api/v1/integrations/generic/template", json={"source": LOUD, "comment": "c"}, headers=api
                )
                assert r.status_code == 201 and r.json()["version"] == 2
                wait_for(lambda: message_via_b() == "LOUD hi", timeout=2.0, interval=0.1, what="version 2 in serve B")

                r = httpx.post(f"{a}/api/v1/integrations/generic/template/versions/1/restore", json={}, headers=api)
                assert r.status_code == 201 and r.json() == {"version": 3, "restored_from": 1}
                wait_for(lambda: message_via_b() == "hi", timeout=2.0, interval=0.1, what="the restore in serve B")

                # The worker delivered what B accepted, with the template each webhook was rendered by.
                wait_for(
                    lambda: {"hi", "LOUD hi"} <= {e["json"].get("message") for e in emu.state.requests if e["json"]},
                    timeout=20,
                    what="deliveries",
                )

                # An integration created through A: B accepts its webhooks, the worker delivers them with its key.
                r = httpx.post(
                    f"{a}/api/v1/integrations",
                    json={"name": "cron", "base_url": emu.base_url, "api_key": "console-key"},
                    headers=api,
                )
                assert r.status_code == 201, r.text
                cron_token = r.json()["token"]

                def cron_accepted() -> bool:
                    r = httpx.post(
                        f"{b}/webhooks/cron",
                        json={"action": "create", "alias": "nightly", "message": "n"},
                        headers={"Authorization": f"Bearer {cron_token}"},
                    )
                    return r.status_code == 202

                wait_for(cron_accepted, timeout=2.0, interval=0.1, what="the new integration in serve B")
                wait_for(
                    lambda: (
                        db.execute(
                            "SELECT status FROM outbox WHERE integration = 'cron' ORDER BY id LIMIT 1"
                        ).fetchone()
                        == ("delivered",)
                    ),
                    timeout=20,
                    what="the worker delivering for the new integration",
                )
                create = next(e for e in emu.state.requests if e["json"] and e["json"].get("alias") == "cron:nightly")
                assert create["headers"]["authorization"].startswith("GenieKey ")
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(30) == 0
            finally:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait(10)
