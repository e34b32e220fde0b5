"""§5: hostile and careless clients over real sockets: silent and trickling connections are closed, descriptor
exhaustion is logged once, a huge body gets 413 and the connection is closed instead of read to the end, a body
that never finishes gets 408."""

from __future__ import annotations

import resource
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

from alertbridge.web.webhooks import refused
from tests.delivery_helpers import cli_env, post
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, TOKEN, config_text, make_config, run_bridge, wait_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serve_with_fd_limit(cfg: Path, database_url: str, log: Path, nofile: int) -> Iterator[int]:
    port = _free_port()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alertbridge.cli", "serve", "--no-migrate", "--config", str(cfg)]
            + ["--port", str(port)],
            env=cli_env(database_url),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,
        )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return proc.poll() is not None

        wait_for(up, timeout=60, what="serve")
        assert proc.poll() is None, log.read_text()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _closed_by_server(s: socket.socket, timeout: float) -> bool:
    """True when the server closed the connection (EOF or reset) within ``timeout``."""
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
            if b"408" not in data:
                return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_silent_connections_time_out_and_fd_exhaustion_is_logged_once(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        cfg = tmp_path / "alertbridge.toml"
        cfg.write_text(config_text(emu.base_url, server="[server]\nheader_timeout_seconds = 1.0\n"))
        log = tmp_path / "serve.log"
        with _serve_with_fd_limit(cfg, database_url, log, nofile=128) as port:
            silent: list[socket.socket] = []
            try:
                for _ in range(200):  # more than the process may open: the accept queue fills up
                    s = socket.create_connection(("127.0.0.1", port), timeout=5)
                    silent.append(s)
                trickle = socket.create_connection(("127.0.0.1", port), timeout=5)
                silent.append(trickle)
                # Every silent connection is answered 408 and closed once its head is overdue; the kernel's queue
                # is worked through as descriptors free up.
                deadline = time.monotonic() + 30
                for s in silent[:-1]:
                    assert _closed_by_server(s, max(0.1, deadline - time.monotonic())), "a silent connection stayed"
                # A client trickling its head one byte at a time does not get around the deadline.
                trickle.settimeout(5)
                started = time.monotonic()
                with pytest.raises((BrokenPipeError, ConnectionResetError)):
                    for b in b"POST /webhooks/generic HTTP/1.1\r\nHost: x\r\n" * 10:
                        trickle.send(bytes([b]))
                        time.sleep(0.05)
                        if time.monotonic() - started > 10:
                            break
            finally:
                for s in silent:
                    s.close()
            # The server is fine afterwards.
            r = httpx.post(
                f"http://127.0.0.1:{port}/webhooks/generic",
                json={"action": "create", "alias": "after", "message": "m"},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            assert r.status_code == 202
    text = log.read_text()
    assert text.count("out of file descriptors") == 1, text[-3000:]
    assert "Traceback" not in text


def _raw_post(port: int, headers: dict[str, str]) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = "POST /webhooks/generic HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    s.sendall(head.encode())
    return s


def _read_response(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, "connection closed before a response"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, rest


def _push(s: socket.socket, total: int) -> int:
    """Send up to ``total`` bytes; how many went out before the server closed the connection."""
    sent = 0
    chunk = b"x" * (1 << 20)
    s.settimeout(5)
    try:
        while sent < total:
            sent += s.send(chunk[: total - sent])
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    return sent


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_50_mb_body_gets_413_and_the_connection_is_closed(
    framing: str, database_url: str, db: psycopg.Connection
) -> None:
    size = 50 * 1024 * 1024
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        with run_bridge(make_config(emu.base_url), database_url) as bridge:
            port = int(bridge.base_url.rsplit(":", 1)[1])
            before = refused["body_too_large"]
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            if framing == "chunked":
                s = _raw_post(port, {**headers, "Transfer-Encoding": "chunked"})
                piece = b"x" * 65536
                for _ in range(20):  # 1.3 MB in chunks: over the 1 MiB cap
                    s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                s = _raw_post(port, {**headers, "Content-Length": str(size)})
                s.sendall(b"{" + b" " * 65535)
            with s:
                status, resp_headers, body = _read_response(s)
                assert status == 413 and b"body_too_large" in body
                assert resp_headers.get("connection") == "close"
                sent = _push(s, size)
                # Kernel buffers take a few MB; the server reads none of the rest.
                assert sent < 20 * 1024 * 1024, f"the server kept reading ({sent} bytes)"
        assert refused["body_too_large"] == before + 1
        row = db.execute("SELECT status, body FROM inbound_events").fetchone()
        assert row == ("too_large", None)


def test_a_body_that_never_finishes_gets_408(database_url: str, db: psycopg.Connection) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        config = make_config(emu.base_url, server="[server]\nbody_timeout_seconds = 1.0\n")
        with run_bridge(config, database_url) as bridge:
            port = int(bridge.base_url.rsplit(":", 1)[1])
            s = _raw_post(port, {"Authorization": f"Bearer {TOKEN}", "Content-Length": "1000"})
            with s:
                s.sendall(b'{"action": ')
                status, headers, body = _read_response(s)
                assert status == 408 and b"body_timeout" in body
                assert headers.get("connection") == "close"
                assert _closed_by_server(s, 5)
            post(bridge.base_url, {"action": "create", "alias": "ok", "message": "m"})  # others are unaffected
        assert db.execute("SELECT count(*) FROM inbound_events").fetchone() == (1,)


def test_refused_requests_with_a_body_close_the_connection(database_url: str, db: psycopg.Connection) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        with run_bridge(make_config(emu.base_url), database_url) as bridge:
            port = int(bridge.base_url.rsplit(":", 1)[1])
            s = _raw_post(port, {"Authorization": "Bearer wrong-token-123", "Content-Length": str(10 << 20)})
            with s:
                status, headers, _ = _read_response(s)
                assert (status, headers.get("connection")) == (401, "close")
                assert _push(s, 10 << 20) < 10 << 20
    assert db.execute("SELECT count(*) FROM inbound_events").fetchone() == (0,)  # unauthenticated: nothing stored
