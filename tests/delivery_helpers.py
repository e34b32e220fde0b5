"""Helpers for delivery fault tests: posting, waiting for the queue, comparing OpsGenie (the emulator) with the
``aliases`` table, running `alertbridge` processes against a test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.emulator_server import RunningEmulator
from tests.harness import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def post(base: str, body: dict[str, Any], integration: str = "generic", client: httpx.Client | None = None) -> dict:
    c = client or httpx
    r = c.post(f"{base}/webhooks/{integration}", content=json.dumps(body).encode(), headers=AUTH, timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def queue_left(db: psycopg.Connection) -> int:
    (n,) = db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone()  # type: ignore[misc]
    return int(n)


def fault(emu: RunningEmulator, **body: Any) -> None:
    httpx.post(f"{emu.base_url}/_control/faults", json=body).raise_for_status()


def clear_faults(emu: RunningEmulator) -> None:
    httpx.delete(f"{emu.base_url}/_control/faults").raise_for_status()


def opsgenie_states(emu: RunningEmulator) -> dict[str, str]:
    """OpsGenie alias -> state of its newest alert: open | acknowledged | closed."""
    emu.wait_idle()
    out: dict[str, str] = {}
    for alert in emu.call(lambda: list(emu.state.alerts.values())):  # creation order: the newest wins
        out[alert["alias"]] = (
            "closed" if alert["status"] == "closed" else "acknowledged" if alert["acknowledged"] else "open"
        )
    return out


def postgres_states(db: psycopg.Connection) -> dict[str, str]:
    """OpsGenie alias -> state in the ``aliases`` table."""
    return dict(db.execute("SELECT opsgenie_alias, state FROM aliases").fetchall())  # type: ignore[arg-type]


def assert_opsgenie_matches_postgres(emu: RunningEmulator, db: psycopg.Connection) -> None:
    """Every alias is open (or acknowledged) in OpsGenie exactly when it is in Postgres; a closed alias is closed in
    OpsGenie or was never opened there."""
    og, pg = opsgenie_states(emu), postgres_states(db)
    wrong = {alias: (state, og.get(alias)) for alias, state in pg.items() if og.get(alias, "closed") != state}
    wrong |= {alias: (None, state) for alias, state in og.items() if alias not in pg}
    assert wrong == {}, "alias: (Postgres, OpsGenie)"


def failed_statuses(emu: RunningEmulator) -> list[dict[str, Any]]:
    """Requests OpsGenie accepted (202) but could not apply ("Alert does not exist")."""
    emu.wait_idle()
    return [s for s in emu.call(lambda: list(emu.state.statuses.values())) if s is not None and not s["isSuccess"]]


def cli_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBRIDGE_") and k != "DATABASE_URL"}
    env["ALERTBRIDGE_DATABASE_URL"] = database_url
    env["ALERTBRIDGE_LOG_LEVEL"] = "INFO"
    return env


def run_cli(*args: str, database_url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertbridge.cli", *args],
        env=cli_env(database_url),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def worker_process(config: Path, database_url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`alertbridge worker --config CONFIG` as its own process; killed at the end if still running."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alertbridge.cli",
                "worker",
                "--no-migrate",
                "--config",
                str(config),
                "--metrics-port",
                "0",
            ],
            env=cli_env(database_url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
