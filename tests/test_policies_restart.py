"""A delayed close survives a crash: it is an outbox row due later, not a timer in memory. Real processes: the bridge
is killed (-9) while two closes are held; after a restart one is sent when its delay ends, and the other is
cancelled by a firing that comes after the restart (a flap) and never sent."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.emulator_server import run_emulator
from tests.harness import API_KEY, TOKEN, config_text, wait_for
from tests.test_cli import cli_env, free_port, serve

pytestmark = pytest.mark.slow

DELAY = 8.0


def test_a_delayed_close_survives_a_kill_9_and_a_flap_after_the_restart_still_cancels_it(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        cfg = tmp_path / "alertbridge.toml"
        policies = f'[integrations.policies]\nclose_delay = "{DELAY:g}s"\n'
        cfg.write_text(config_text(emu.base_url, integrations=(("generic", "generic"),), extra_integration=policies))
        env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"

        def send(action: str, alias: str) -> None:
            body = {"action": action, "alias": alias, "message": f"{alias} queue SLA"}
            r = httpx.post(
                f"{base}/webhooks/generic", content=json.dumps(body), headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert r.status_code == 202, r.text

        def requests_for(alias: str) -> list[str]:
            emu.wait_idle()
            out = []
            for r in list(emu.state.requests):
                if r["path"] == "/v2/alerts" and (r["json"] or {}).get("alias") == f"generic:{alias}":
                    out.append("create")
                elif r["path"].startswith(f"/v2/alerts/generic:{alias}/"):
                    out.append(r["path"].rsplit("/", 1)[1])
            return out

        with serve("--config", str(cfg), env=env, cwd=tmp_path, port=port, log=tmp_path / "1.log") as proc:
            send("create", "resolved")
            send("create", "flapping")
            wait_for(
                lambda: requests_for("resolved") == ["create"] and requests_for("flapping") == ["create"],
                what="both creates",
            )
            send("close", "resolved")
            send("close", "flapping")
            held_at = datetime.now(UTC)
            proc.kill()  # -9: nothing in memory survives
            proc.wait(10)
        rows = db.execute(
            "SELECT alias, status, next_attempt_at FROM outbox WHERE action = 'close' ORDER BY alias"
        ).fetchall()
        assert [(a, s) for a, s, _ in rows] == [("flapping", "pending"), ("resolved", "pending")]
        with serve("--config", str(cfg), env=env, cwd=tmp_path, port=port, log=tmp_path / "2.log") as proc:
            assert (datetime.now(UTC) - held_at).total_seconds() < DELAY, "the restart took longer than the delay"
            send("create", "flapping")  # within the delay, after the restart: a flap
            wait_for(
                lambda: requests_for("resolved") == ["create", "close"],
                timeout=DELAY + 10,
                what="the held close after the restart",
            )
            assert (datetime.now(UTC) - held_at).total_seconds() >= DELAY - 0.5  # not before its time
            time.sleep(1.0)
        assert requests_for("flapping") == ["create"]
    statuses = dict(db.execute("SELECT alias, status FROM outbox WHERE action = 'close'").fetchall())
    assert statuses == {"resolved": "delivered", "flapping": "skipped"}
    state = dict(db.execute("SELECT alias, state FROM aliases").fetchall())
    assert state == {"resolved": "closed", "flapping": "open"}
