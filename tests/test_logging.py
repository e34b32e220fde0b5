"""ALERTBRIDGE_LOG_FORMAT=json: every line of a whole demo session's stderr is one JSON object (uvicorn's and
Alembic's lines too), with the context fields where they are known; template errors and dead letters are
warnings; Alembic's "setup plugin" lines are gone. And the formatters themselves."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from alertbridge import logs
from tests.harness import FIXTURES, wait_for
from tests.test_cli import cli_env, free_port, serve

pytestmark = pytest.mark.slow


def test_a_demo_session_logs_only_json_lines(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cli_env(ALERTBRIDGE_DATA_DIR=str(tmp_path / "data"), ALERTBRIDGE_LOG_FORMAT="json")
    log = tmp_path / "serve.log"
    bearer = {"Authorization": "Bearer demo-token"}
    with serve(env=env, cwd=tmp_path, port=port, log=log) as proc:
        firing = (FIXTURES / "alertmanager/01_firing_two_alerts.json").read_bytes()
        assert httpx.post(f"{base}/webhooks/alertmanager", content=firing, headers=bearer).status_code == 202
        # a template error (or, once payload errors are told apart, a payload error): stored, 422, a warning
        assert httpx.post(f"{base}/webhooks/generic", json={"events": 5}, headers=bearer).status_code == 422
        assert (
            httpx.post(f"{base}/webhooks/generic", json={}, headers={"Authorization": "Bearer nope"}).status_code == 401
        )
        # OpsGenie refuses the next create: a dead letter, logged as a warning
        fault = {"status": 400, "count": 1, "body": {"message": "refused by the test"}}
        assert httpx.post(f"{base}/emulator/_control/faults", json=fault).status_code < 300
        create = {"action": "create", "alias": "will-be-dead", "message": "m"}
        assert httpx.post(f"{base}/webhooks/generic", json=create, headers=bearer).status_code == 202
        wait_for(lambda: "will-be-dead" in log.read_text(), timeout=20, what="the dead letter's warning")
        assert httpx.get(f"{base}/metrics").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 10
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict) and {"time", "level", "logger", "message"} <= record.keys(), line
        records.append(record)
    loggers = {r["logger"] for r in records}
    assert {"alertbridge", "uvicorn.error", "alembic.runtime.migration", "alertbridge.access"} <= loggers
    assert not [r for r in records if "setup plugin" in r["message"]]
    refused = [r for r in records if r["level"] == "WARNING" and r["logger"] == "alertbridge.webhooks"]
    assert len(refused) == 1 and refused[0]["integration"] == "generic" and isinstance(refused[0]["inbound_id"], int)
    assert "error" in refused[0]["message"]
    dead = [r for r in records if r["level"] == "WARNING" and r["logger"] == "alertbridge.delivery"]
    assert len(dead) == 1 and "dead" in dead[0]["message"], dead
    assert dead[0]["integration"] == "generic" and dead[0]["alias"] == "will-be-dead"
    assert isinstance(dead[0]["outbox_id"], int)
    assert [r for r in records if r["message"].startswith("webhook refused")][0]["integration"] == "generic"
    assert any(r["message"] == "Finished server process" or "Finished server process" in r["message"] for r in records)


def test_a_bad_log_format_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "alertbridge.cli", "migrate"],
        env=cli_env(ALERTBRIDGE_LOG_FORMAT="yaml", ALERTBRIDGE_DATA_DIR=str(tmp_path / "data")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "alertbridge: ALERTBRIDGE_LOG_FORMAT must be one of text, json (got 'yaml')"
    ]
    assert not (tmp_path / "data").exists()


@pytest.fixture
def configured() -> io.StringIO:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield stream
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def test_json_lines_carry_the_context(configured: io.StringIO) -> None:
    logs.configure("INFO", "json", configured)
    log = logging.getLogger("alertbridge.test")
    with logs.context(integration="am", inbound_id=7, traceparent="00-abc-def-01"):
        log.warning("first\nsecond line")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    log.info("outside")
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.x")
    lines = configured.getvalue().splitlines()
    assert len(lines) == 3
    first, failed, outside = (json.loads(line) for line in lines)
    assert first["message"] == "first\nsecond line" and first["level"] == "WARNING"
    assert first["integration"] == "am" and first["inbound_id"] == 7 and first["traceparent"] == "00-abc-def-01"
    assert first["time"].endswith("+00:00") and first["logger"] == "alertbridge.test"
    assert "ValueError: boom" in failed["exception"]
    assert "integration" not in outside


def test_text_lines_carry_the_context(configured: io.StringIO) -> None:
    logs.configure("DEBUG", "text", configured)
    with logs.context(integration="am", outbox_id=3, alias="x"):
        logging.getLogger("alertbridge.test").debug("hello")
    assert configured.getvalue().rstrip().endswith("DEBUG alertbridge.test: hello [integration=am outbox_id=3 alias=x]")


def test_bind_lasts_for_the_task_only() -> None:
    import asyncio

    async def row(n: int) -> dict[str, object]:
        logs.bind(outbox_id=n)
        await asyncio.sleep(0)
        return logs.current()

    async def main() -> list[dict[str, object]]:
        return list(await asyncio.gather(row(1), row(2)))

    assert asyncio.run(main()) == [{"outbox_id": 1}, {"outbox_id": 2}]
    assert logs.current() == {}
