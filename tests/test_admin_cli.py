"""`alertbridge admin ...`: console users and admin API tokens from the command line (real processes)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet

from tests.test_cli import cli_env, free_port, run_cli, serve

pytestmark = pytest.mark.slow


def test_create_user_and_token(tmp_path: Path, database_url: str, db: psycopg.Connection) -> None:
    env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url)
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "alertbridge.cli",
            "admin",
            "create-user",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
        ],
        input="correct horse battery\n",
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert "console user 'alice' (admin) created" in made.stdout
    generated = run_cli("admin", "create-user", "victor", "--role", "viewer", "--generate", env=env, cwd=tmp_path)
    password = generated.stdout.strip().splitlines()[-1]
    assert len(password) >= 16
    rows = db.execute("SELECT name, role, password_hash FROM console_users ORDER BY name").fetchall()
    assert [(n, r) for n, r, _ in rows] == [("alice", "admin"), ("victor", "viewer")]
    assert all(h.startswith("$argon2id$") for _, _, h in rows)
    assert "correct horse battery" not in json.dumps(rows) and password not in json.dumps(rows)

    short = subprocess.run(
        [sys.executable, "-m", "alertbridge.cli", "admin", "create-user", "bob", "--role", "admin", "--password-stdin"],
        input="short\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert short.returncode == 2 and "at least 10 characters" in short.stderr

    token = run_cli("admin", "create-token", "ci", "--role", "viewer", env=env, cwd=tmp_path)
    assert token.returncode == 0
    secret = token.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"abt_[A-Za-z0-9_-]{40,}", secret)
    (stored,) = db.execute("SELECT token_sha256 FROM admin_tokens").fetchone()  # type: ignore[misc]
    assert stored != secret and len(stored) == 64
    listed = run_cli("admin", "list", env=env, cwd=tmp_path).stdout
    assert "alice" in listed and "ci" in listed and secret not in listed
    assert run_cli("admin", "revoke-token", "1", env=env, cwd=tmp_path).returncode == 0
    assert run_cli("admin", "revoke-token", "1", env=env, cwd=tmp_path).returncode == 2
    assert db.execute("SELECT action FROM admin_audit ORDER BY id").fetchall() == [
        ("user.create",),
        ("user.create",),
        ("token.create",),
    ]
    bad_role = run_cli("admin", "create-token", "x", "--role", "root", env=env, cwd=tmp_path)
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr


def test_generate_key_makes_a_fernet_key_and_a_bad_key_stops_serve(tmp_path: Path, database_url: str) -> None:
    key = run_cli("admin", "generate-key", env=cli_env()).stdout.strip()
    Fernet(key.encode())  # a valid key
    env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url, ALERTBRIDGE_SECRET_KEY="not-a-key")
    r = run_cli("serve", "--port", str(free_port()), env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and "ALERTBRIDGE_SECRET_KEY must be a Fernet key" in r.stderr
    assert "not-a-key" not in r.stderr and "Traceback" not in r.stderr


def test_demo_prints_an_admin_password_that_logs_in(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url)
    with serve(env=env, cwd=tmp_path, port=port, log=log):
        text = log.read_text()
        match = re.search(
            r"console: (http://\S+/console) \(demo mode\) log in as 'admin' with the password (\S+)", text
        )
        assert match, text
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=False) as client:
            page = client.get("/console/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf
            r = client.post(
                "/console/login",
                data={"name": "admin", "password": match.group(2), "csrf_token": csrf.group(1)},
            )
            assert r.status_code == 303 and r.headers["location"].endswith("/console/integrations")
            listing = client.get("/console/integrations")
            assert listing.status_code == 200 and "/webhooks/alertmanager" in listing.text
