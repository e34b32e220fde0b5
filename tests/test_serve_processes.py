"""`alertbridge serve --workers N`: N serving processes on one address plus one delivery process, as real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from tests.delivery_helpers import AUTH, cli_env
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, config_text, wait_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(cfg: Path, database_url: str, log: Path, workers: int) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    env = cli_env(database_url)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alertbridge.cli", "serve", "--no-migrate", "--config", str(cfg)]
            + ["--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return proc.poll() is not None

        wait_for(up, timeout=60, what="serve")
        assert proc.poll() is None, log.read_text()
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.kill()
                proc.kill()
                proc.wait(10)


def _serving(proc: subprocess.Popen[bytes], port: int) -> dict[int, int]:
    """Established connections to ``port`` per child process."""
    out = {}
    for child in psutil.Process(proc.pid).children():
        out[child.pid] = sum(
            1 for c in child.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        )
    return out


def test_two_serving_processes_share_the_port_a_third_delivers_and_sigterm_stops_all(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY]) as emu:
        cfg = tmp_path / "alertbridge.toml"
        cfg.write_text(config_text(emu.base_url))
        log = tmp_path / "serve.log"
        with serve(cfg, database_url, log, workers=2) as (proc, port):
            children = psutil.Process(proc.pid).children()
            assert len(children) == 3, log.read_text()  # two serving, one delivering
            # A burst of 16 connections at once, then a webhook on each (a shared listening socket would give all
            # of them to whichever process woke first: asyncio accepts every pending connection in one go).
            with ExitStack() as stack:
                conns = [
                    stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=30)) for _ in range(16)
                ]
                for i, conn in enumerate(conns):
                    body = json.dumps({"action": "create", "alias": f"p{i}", "message": "m"}).encode()
                    head = (
                        f"POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    )
                    conn.sendall(head.encode() + body)
                for conn in conns:
                    assert conn.recv(4096).startswith(b"HTTP/1.1 202"), "a webhook was not accepted"
                per_process = _serving(proc, port)
            # The kernel spread the connections over both serving processes (SO_REUSEPORT); the delivery process
            # has none. (All 16 on one of two sockets by chance: 2 in 65,536.)
            assert sorted(n > 0 for n in per_process.values()) == [False, True, True], per_process
            wait_for(lambda: len(emu.state.alerts) == 16, timeout=30, what="16 alerts delivered")
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            line = 'alertbridge_webhooks_received_total{integration="generic",status="accepted"} '
            assert f"{line}16.0" in metrics  # summed over the processes
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(40) == 0, log.read_text()[-3000:]
            assert not [c.pid for c in children if psutil.pid_exists(c.pid) and c.status() != psutil.STATUS_ZOMBIE]
    rows = db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone()
    assert rows == (16,)
    assert "Traceback" not in log.read_text()


def test_a_process_that_dies_stops_the_others_and_serve_fails(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY]) as emu:
        cfg = tmp_path / "alertbridge.toml"
        cfg.write_text(config_text(emu.base_url))
        log = tmp_path / "serve.log"
        with serve(cfg, database_url, log, workers=2) as (proc, _port):
            children = psutil.Process(proc.pid).children()
            os.kill(children[0].pid, signal.SIGKILL)
            assert proc.wait(40) == 1
            assert not [c.pid for c in children if psutil.pid_exists(c.pid) and c.status() != psutil.STATUS_ZOMBIE]
    assert "exited with" in log.read_text()
