"""How every command ends: no embedded postmaster left behind on any exit path (SIGTERM, SIGINT, SIGHUP, an
exception, a failed migration), a postmaster left by `kill -9` reused and stopped by the next start, and the small
things a new user meets first (no subcommand, a bad log level, db-url without serve, a closed pipe)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from alertbridge import embedded
from tests.harness import FIXTURES, wait_for
from tests.test_cli import cli_env, free_port, run_cli

pytestmark = pytest.mark.slow


def postmasters(pgdata: Path) -> list[psutil.Process]:
    """Living postgres server processes started on `pgdata`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and "-D" in cmdline and str(pgdata) in cmdline:
            found.append(proc)
    return found


@contextmanager
def embedded_data_dir() -> Iterator[Path]:
    """A data dir for an embedded server, removed afterwards with whatever a failed test left running there.

    Not under pytest's basetemp: a pytest session that starts meanwhile resets `/tmp/pytest-of-<user>` to mode
    0700, and the server (run as another user when we are root) could no longer reach its files."""
    base = Path(tempfile.mkdtemp(prefix="alertbridge-test-data-"))
    path = base / "data"
    try:
        yield path
    finally:
        for proc in postmasters(path.resolve() / "pgdata"):
            proc.terminate()
            try:
                proc.wait(10)
            except psutil.TimeoutExpired:
                proc.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with embedded_data_dir() as path:
        yield path


def no_postmaster_left(data_dir: Path) -> bool:
    return postmasters(data_dir.resolve() / "pgdata") == []


def test_no_subcommand_prints_help_and_starts_nothing(tmp_path: Path) -> None:
    r = run_cli(env=cli_env(), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("usage: alertbridge") and "serve" in r.stderr and "check" in r.stderr
    assert list(tmp_path.iterdir()) == []  # no .alertbridge/: no PostgreSQL was started


@pytest.mark.parametrize("command", ["serve", "migrate", "worker", "db-url"])
def test_a_bad_log_level_is_one_line_before_anything_starts(tmp_path: Path, data_dir: Path, command: str) -> None:
    r = run_cli(command, env=cli_env(ALERTBRIDGE_LOG_LEVEL="verbose", ALERTBRIDGE_DATA_DIR=str(data_dir)), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr == (
        "alertbridge: ALERTBRIDGE_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (got 'verbose')\n"
    )
    assert not data_dir.exists()  # PostgreSQL never started
    r = run_cli(
        "render",
        "-t",
        "generic",
        "-p",
        str(FIXTURES / "generic/01_create.json"),
        env=cli_env(ALERTBRIDGE_LOG_LEVEL="debug"),
    )
    assert r.returncode == 0, r.stderr  # any case of a valid level


def test_db_url_without_a_running_serve_starts_nothing(tmp_path: Path, data_dir: Path) -> None:
    r = run_cli("db-url", env=cli_env(ALERTBRIDGE_DATA_DIR=str(data_dir)), cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"alertbridge: no embedded PostgreSQL is running in {data_dir.resolve()}/pgdata: ")
    assert "`alertbridge serve`" in r.stderr and "ALERTBRIDGE_DATABASE_URL" in r.stderr
    assert not data_dir.exists()


def test_render_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """`alertbridge render ... | head -1` with an output larger than a pipe's buffer: no BrokenPipe traceback."""
    body = json.loads((FIXTURES / "alertmanager/01_firing_two_alerts.json").read_text())
    body["alerts"] = [dict(body["alerts"][0], fingerprint=f"{i:016x}") for i in range(300)]
    payload = tmp_path / "big.json"
    payload.write_text(json.dumps(body))
    render = subprocess.Popen(
        [sys.executable, "-m", "alertbridge.cli", "render", "-t", "alertmanager", "-p", str(payload)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = subprocess.Popen(["head", "-1"], stdin=render.stdout, stdout=subprocess.PIPE)
    assert render.stdout is not None and render.stderr is not None
    render.stdout.close()  # only head reads it now
    out, _ = head.communicate(timeout=60)
    assert out == b"[\n"
    assert render.wait(60) == 141  # 128 + SIGPIPE, as `yes | head` gives
    assert render.stderr.read() == b""
    render.stderr.close()


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, timeout=90, interval=0.2, what="serve to start")


def start_serve(data_dir: Path, cwd: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alertbridge.cli", "serve", "--port", str(port)],
            env=cli_env(ALERTBRIDGE_DATA_DIR=str(data_dir)),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(port, proc, log)
    except BaseException:
        proc.kill()
        proc.wait(30)
        raise
    return proc


def test_kill_9_leaves_a_postmaster_that_the_next_start_reuses_then_sigterm_stops_it(
    tmp_path: Path, data_dir: Path
) -> None:
    port = free_port()
    first = start_serve(data_dir, tmp_path, port, tmp_path / "first.log")
    pgdata = data_dir.resolve() / "pgdata"
    [postmaster] = postmasters(pgdata)
    first.kill()  # kill -9: no exit handler runs
    first.wait(30)
    assert [p.pid for p in postmasters(pgdata)] == [postmaster.pid]  # left behind

    second = start_serve(data_dir, tmp_path, port, tmp_path / "second.log")
    try:
        assert [p.pid for p in postmasters(pgdata)] == [postmaster.pid]  # reused, not a second one
        log = (tmp_path / "second.log").read_text()
        assert f"left running by process {first.pid}, which no longer exists" in log
        r = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/generic",
            json={"alias": "after-kill-9", "message": "m"},
            headers={"X-Bridge-Token": "demo-token"},
        )
        assert r.status_code == 202
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(30)
    assert no_postmaster_left(data_dir)


def test_sigint_stops_serve_and_its_postmaster(tmp_path: Path, data_dir: Path) -> None:
    port = free_port()
    proc = start_serve(data_dir, tmp_path, port, tmp_path / "serve.log")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert no_postmaster_left(data_dir)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_a_command_stops_the_postmaster(tmp_path: Path, data_dir: Path, signum: int) -> None:
    """`alertbridge psql -c 'SELECT pg_sleep(60)'`: the signal arrives while psql runs."""
    with open(tmp_path / "psql.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alertbridge.cli", "psql", "-c", "SELECT pg_sleep(60)"],
            env=cli_env(ALERTBRIDGE_DATA_DIR=str(data_dir)),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def sleeping() -> bool:
            assert proc.poll() is None, (tmp_path / "psql.log").read_text()
            url = embedded.running_url(data_dir)
            if url is None:
                return False
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    query = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%'"
                    return conn.execute(query).fetchone() == (1,)
            except psycopg.OperationalError:  # the database is being created
                return False

        wait_for(sleeping, timeout=90, interval=0.2, what="psql to run its query")
        proc.send_signal(signum)
        assert proc.wait(60) == 128 + signum
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert no_postmaster_left(data_dir)
    assert "Traceback" not in (tmp_path / "psql.log").read_text()


def test_sigterm_as_the_embedded_server_starts(tmp_path: Path, data_dir: Path) -> None:
    """The signal arrives as soon as a postgres process runs on the data folder (initdb's bootstrap backend, or the
    postmaster that `pg_ctl start` waits for): it is held until the server is up, then the command exits through
    its exit handlers, which stop the server. Nothing is left running, and the data folder is not broken."""
    pgdata = data_dir.resolve() / "pgdata"
    with open(tmp_path / "migrate.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alertbridge.cli", "migrate"],
            env=cli_env(ALERTBRIDGE_DATA_DIR=str(data_dir)),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def started() -> bool:
            assert proc.poll() is None, (tmp_path / "migrate.log").read_text()
            return bool(postmasters(pgdata))

        wait_for(started, timeout=90, interval=0.01, what="the postmaster to appear")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    wait_for(lambda: no_postmaster_left(data_dir), timeout=10, what="no postmaster")
    assert "Traceback" not in (tmp_path / "migrate.log").read_text()
    r = run_cli("migrate", env=cli_env(ALERTBRIDGE_DATA_DIR=str(data_dir)), cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # the data folder works
    assert no_postmaster_left(data_dir)


def test_an_exception_and_a_failed_migration_stop_the_postmaster(tmp_path: Path, data_dir: Path) -> None:
    env = cli_env(ALERTBRIDGE_DATA_DIR=str(data_dir))
    r = run_cli("migrate", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert no_postmaster_left(data_dir)

    # serve cannot bind its port: an exception after PostgreSQL started and the migrations ran
    with socket_taken() as port:
        r = run_cli("serve", "--port", str(port), env=env, cwd=tmp_path)
    assert r.returncode != 0
    assert no_postmaster_left(data_dir)

    # a migration that fails: one line, no traceback, no server left
    r = run_cli("psql", "-c", "UPDATE alembic_version SET version_num = 'ffff'", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli("migrate", env=env, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.endswith("alertbridge: database migration failed: Can't locate revision identified by 'ffff'\n")
    assert "Traceback" not in r.stderr
    assert no_postmaster_left(data_dir)


class socket_taken:
    """A port on 127.0.0.1 that something already listens on."""

    def __enter__(self) -> int:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
