"""`alertbridge render` and ingest share one plan step: what render shows is what ingest records."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psycopg

from tests.harness import TOKEN, config_text, make_config, run_bridge
from tests.test_cli import cli_env, run_cli


def test_render_reports_the_alias_cut_exactly_as_ingest_records_it(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    """An alias of 510 characters fits OpsGenie's 512 until it is scoped ("generic:" + alias = 518): the cut that
    happens after scoping is in render's output exactly as in outbox.cuts (and the same OpsGenie alias)."""
    alias = "a" * 500 + "-" + "b" * 9
    body = {"action": "create", "alias": alias, "message": "long alias"}
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(body))
    config = tmp_path / "alertbridge.toml"
    config.write_text(config_text("http://127.0.0.1:9"))

    r = run_cli("render", "-t", "generic", "-p", str(payload), "-c", str(config), "-i", "generic", env=cli_env())
    assert r.returncode == 0, r.stderr
    [event] = json.loads(r.stdout)
    assert len(alias) == 510 and len("generic:" + alias) == 518
    assert event["cuts"] == [{"field": "alias", "detail": "518 -> 512 characters (prefix + '~' + sha256 prefix)"}]

    with run_bridge(make_config("http://127.0.0.1:9"), database_url, run_worker=False) as bridge:
        answer = httpx.post(
            f"{bridge.base_url}/webhooks/generic", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert answer.status_code == 202, answer.text
    cuts, opsgenie_alias = db.execute("SELECT cuts, opsgenie_alias FROM outbox").fetchone()
    assert cuts == event["cuts"]
    assert opsgenie_alias == event["opsgenie_alias"] and len(opsgenie_alias) == 512
    assert event["request"]["json"]["alias"] == opsgenie_alias
