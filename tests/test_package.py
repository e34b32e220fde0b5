"""alertbridge as users install it: the wheel, in a fresh virtualenv, run from a folder outside the repository;
and the README's "Run it for real" steps, as written, on a config copied outside the repository.

The wheel is built offline (`pip wheel --no-deps --no-build-isolation`, with the setuptools the tests install);
the fresh venv gets the wheel itself, and its dependencies from the test venv's site-packages (a path entry,
not an install: fast and offline).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import site
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from alertbridge.check import SAMPLES_DIR
from tests.harness import FIXTURES, wait_for
from tests.test_cli import cli_env, free_port
from tests.test_cli_exits import embedded_data_dir, postmasters

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", "*.egg-info", ".alertbridge", ".pytest_cache", "build", "dist", "results"
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    build_output: str
    venv: Path
    elsewhere: Path  # an empty folder outside the repository to run commands from

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "alertbridge"), *args],
            env=env or cli_env(),
            cwd=self.elsewhere,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("package")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=SKIP)
    dist = base / "dist"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(dist),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = dist.glob("alertbridge-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    [venv_site] = venv.glob("lib/python*/site-packages")
    # The dependencies: the test venv's site-packages as a plain path entry (its .pth files, among them the
    # editable install of this checkout, are not processed, so `alertbridge` comes from the wheel only).
    (venv_site / "test-venv-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    yield Installed(wheel, build.stdout + build.stderr, venv, elsewhere)


def test_the_wheel_holds_the_package_templates_samples_and_migrations(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert "alertbridge/cli.py" in names and "alertbridge/config/parse.py" in names
    assert not any(n.startswith("app/") for n in names)  # no top-level package called `app`
    assert {f"alertbridge/templates/{p.name}" for p in (ROOT / "templates").glob("*.j2")} <= names
    assert {f"alertbridge/templates/samples/{p.name}" for p in SAMPLES_DIR.glob("*.json")} <= names
    assert {f"alertbridge/migrations/versions/{p.name}" for p in (ROOT / "migrations/versions").glob("*.py")} <= names
    assert "alertbridge/migrations/script.py.mako" in names
    licenses = [n for n in names if n.endswith("/LICENSE")]
    assert licenses and any(n.startswith("alertbridge-") and ".dist-info/" in n for n in licenses)
    metadata = (
        zipfile.ZipFile(installed.wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    )
    assert "License-Expression: Apache-2.0" in metadata


def test_the_build_has_no_license_deprecation_warning(installed: Installed) -> None:
    output = installed.build_output
    assert "running bdist_wheel" in output  # the build backend's own output is there (pip -v)
    assert "project.license` as a TOML table is deprecated" not in output
    assert "License classifiers are deprecated" not in output
    assert "SetuptoolsDeprecationWarning" not in output
    assert "BuildBackendWarning" not in output  # e.g. a data folder missing from `packages`


def test_version_render_and_check_run_from_the_wheel_outside_the_repo(installed: Installed) -> None:
    python = installed.bin / "python"
    where = subprocess.run(
        [str(python), "-c", "import alertbridge; print(alertbridge.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(installed.venv)), where

    version = installed.wheel.name.split("-")[1]
    r = installed.run("--version")
    assert (r.returncode, r.stdout) == (0, f"alertbridge {version}\n")

    payload = installed.elsewhere / "payload.json"
    shutil.copy(FIXTURES / "generic/01_create.json", payload)
    r = installed.run("render", "-t", "generic", "-p", "payload.json")
    assert r.returncode == 0, r.stderr
    assert '"opsgenie_alias": "backup-nightly-db01"' in r.stdout

    config = installed.elsewhere / "alertbridge.toml"
    config.write_text(
        '[[integrations]]\nname = "am"\ntemplate = "alertmanager"\ntokens = ["token-0123456789"]\n'
        '[integrations.target]\nregion = "eu"\napi_key = "k"\n'
    )
    r = installed.run("check", "--config", "alertbridge.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.endswith("1 built-in sample(s) rendered\n")  # the sample came from the installed package


def test_migrate_from_the_wheel(installed: Installed, pg_admin_url: str) -> None:
    name = f"pkg_{os.getpid()}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        r = installed.run("migrate", env=cli_env(ALERTBRIDGE_DATABASE_URL=url))
        assert r.returncode == 0, r.stderr
        heads = sorted(
            re.search(r'^revision = "(\w+)"', p.read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]
            for p in (ROOT / "migrations/versions").glob("*.py")
        )
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (heads[-1],)
            assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_serve_the_demo_from_the_wheel(installed: Installed) -> None:
    with embedded_data_dir() as data:
        serve_the_demo(installed, data)


def serve_the_demo(installed: Installed, data: Path) -> None:
    port = free_port()
    log = installed.elsewhere / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(installed.bin / "alertbridge"), "serve", "--port", str(port)],
            env=cli_env(ALERTBRIDGE_DATA_DIR=str(data)),
            cwd=installed.elsewhere,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: healthy(port, proc, log), timeout=90, interval=0.2, what="serve to start")
        r = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/alertmanager",
            content=(FIXTURES / "alertmanager/01_firing_two_alerts.json").read_bytes(),
            headers={"Authorization": "Bearer demo-token", "Content-Type": "application/json"},
        )
        assert r.status_code == 202, r.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert postmasters(data.resolve() / "pgdata") == []


def healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> bool:
    assert proc.poll() is None, log.read_text()
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


# ---------------------------------------------------------------------------------------------------------
# README, "Run it for real": the steps as written, in a temporary folder, with the config copied there


def readme_steps() -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## Run it for real", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_run_it_for_real_works_as_written_outside_the_repo(
    installed: Installed, database_url: str, db: psycopg.Connection
) -> None:
    steps = readme_steps()
    install, *rest = steps
    # The install step is what the `installed` fixture did (offline): a venv with the package from this checkout.
    assert install.startswith("python3 -m venv /opt/alertbridge && /opt/alertbridge/bin/pip install .")
    folder = installed.elsewhere / "run-it-for-real"
    etc = folder / "etc"
    am_token, api_key = "readme-am-token-0123", "readme-genie-key"
    port = free_port()
    script = []
    for line in rest:
        line = line.replace("/opt/alertbridge", str(installed.venv)).replace("/etc/alertbridge", str(etc))
        line = line.replace("cp alertbridge.example.toml", f"cp {ROOT / 'alertbridge.example.toml'}")
        line = line.replace(
            "export AM_TOKEN=... OPSGENIE_API_KEY=...", f"export AM_TOKEN={am_token} OPSGENIE_API_KEY={api_key}"
        )
        line = re.sub(r"ALERTBRIDGE_DATABASE_URL=\S+", f"ALERTBRIDGE_DATABASE_URL='{database_url}'", line)
        if " serve " in line:
            # Tests listen on 127.0.0.1 only, on a free port; and they send nothing to OpsGenie: --no-worker.
            line = line.replace("--host 0.0.0.0", "--host 127.0.0.1").replace("--port 8080", f"--port {port}")
            line = "exec " + line + " --no-worker"
        script.append(line)
    assert "..." not in "\n".join(script), script  # every placeholder was filled in
    assert script[-1].startswith("exec ")  # the last step is serve
    folder.mkdir()
    log = folder / "steps.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", "\n".join(script)],
            env=cli_env(),
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: healthy(port, proc, log), timeout=90, interval=0.2, what="serve to start")
        output = log.read_text()
        assert f"{etc}/alertbridge.toml: OK: 1 integration(s)" in output  # the `check` step
        r = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/alertmanager",
            content=(FIXTURES / "alertmanager/01_firing_two_alerts.json").read_bytes(),
            headers={"Authorization": f"Bearer {am_token}", "Content-Type": "application/json"},
        )
        assert r.status_code == 202, r.text
        rows = db.execute("SELECT integration, opsgenie_alias, status FROM outbox ORDER BY id").fetchall()
        assert rows == [
            ("alertmanager", "alertmanager:f8f9add23ebfa2db", "pending"),
            ("alertmanager", "alertmanager:719a1a97ef71f433", "pending"),
        ]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert not (etc / ".alertbridge").exists()  # the external database was used, no embedded one
