"""docs/api.md's curl session runs as written against a live bridge (only the address and the demo token are
replaced by the test bridge's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.admin_harness import running_console
from tests.harness import TOKEN
from tests.test_cli import cli_env

pytestmark = pytest.mark.slow

DOC = Path(__file__).parent.parent / "docs" / "api.md"


def test_the_curl_session_in_docs_api_md_runs(tmp_path: Path, database_url: str, db: psycopg.Connection) -> None:
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 5
    with running_console(database_url) as console:
        script = "set -euo pipefail\n" + "\n".join(blocks)
        script = script.replace("http://127.0.0.1:8080", console.base_url).replace("demo-token", TOKEN)
        env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        done = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = done.stdout
    assert out.strip().splitlines()[-3:] == ["200", "403", "401"]
    assert '"restored_from":1' in out and '"version":4' in out
    assert (tmp_path / "generic-v3.j2").read_text().startswith('{"action": "create"')
    # The replayed webhook: failed first, processed by its replay, both recorded.
    assert db.execute(
        "SELECT status, current_status, replay_count FROM inbound_events WHERE integration = 'generic'"
    ).fetchone() == (
        "template_error",
        "processed",
        1,
    )
    versions = db.execute(
        "SELECT version, author FROM template_versions WHERE integration = 'generic' ORDER BY version"
    ).fetchall()
    assert versions == [(1, "config file"), (2, "token:automation"), (3, "token:automation"), (4, "token:automation")]
