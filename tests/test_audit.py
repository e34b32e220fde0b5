"""The audit layer: docs/audit.md's questions run against a seeded scenario and give the right answers; every view
and column is commented and documented; `alertbridge audit grant` makes a role that reads the views and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from sqlalchemy import make_url

from alertbridge.db import Database
from alertbridge.ingest import replay
from alertbridge.main import build_bridge
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, FAST_DELIVERY, TOKEN, fixture_bytes, make_config, run_bridge, wait_for

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "audit.md").read_text("utf-8")
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
CALLBACK_TOKEN = "callback-token-0123"
A, B = "f8f9add23ebfa2db", "719a1a97ef71f433"
BROKEN = '{"action": "create", "alias": {{ payload.id | tojson }}, "message": {{ payload.titel | tojson }}}\n'
SILENCE = """
[[silences]]
integration = "generic"
alias = "maint-*"
starts_at = "2026-01-01T00:00:00Z"
ends_at = "2099-01-01T00:00:00Z"
comment = "database maintenance"
"""
FIXED = '{"action": "create", "alias": {{ payload.id | tojson }}, "message": {{ payload.title | tojson }}}\n'


def _url(admin: str, name: str) -> str:
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def seeded(pg_admin_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database holding the scenario of docs/audit.md, played through the real bridge and the emulator."""
    name = "audit_scenario"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    url = _url(pg_admin_url, name)
    folder = tmp_path_factory.mktemp("audit")
    template = folder / "custom.j2"
    template.write_text(BROKEN)
    integrations = (("alertmanager", "alertmanager"), ("generic", "generic"), ("custom", str(template)))
    with run_emulator(api_keys=[API_KEY], processing_delay=0.02) as emu, psycopg.connect(url, autocommit=True) as db:
        # One request in flight: OpsGenie numbers the alerts in the order they were sent (#1 is the first alert).
        config = make_config(
            emu.base_url,
            integrations=integrations,
            server=f'[callbacks]\ntokens = ["{CALLBACK_TOKEN}"]\n' + SILENCE,
            delivery=FAST_DELIVERY + "max_in_flight = 1\n",
        )
        with run_bridge(config, url) as bridge:
            callbacks = {"url": f"{bridge.base_url}/callbacks/opsgenie", "headers": {"X-Bridge-Token": CALLBACK_TOKEN}}
            httpx.post(f"{emu.base_url}/_control/callbacks", json=callbacks).raise_for_status()

            def post(integration: str, body: bytes, headers: dict[str, str] = AUTH) -> httpx.Response:
                return httpx.post(f"{bridge.base_url}/webhooks/{integration}", content=body, headers=headers)

            def settled(callbacks: int) -> None:
                def check() -> bool:
                    (pending,) = db.execute(
                        "SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')"
                    ).fetchone()  # type: ignore[misc]
                    (stored,) = db.execute("SELECT count(*) FROM callbacks").fetchone()  # type: ignore[misc]
                    return pending == 0 and emu.state.idle and stored >= callbacks

                wait_for(check, timeout=20, what=f"{callbacks} callbacks")

            def human(verb: str, alias: str, user: str) -> None:
                r = httpx.post(
                    f"{emu.base_url}/_control/alerts/alertmanager:{alias}/{verb}",
                    json={"user": user, "identifierType": "alias"},
                )
                r.raise_for_status()

            # Alertmanager fires two alerts; a person acknowledges the first (#1) and closes the second in OpsGenie.
            assert post("alertmanager", fixture_bytes("alertmanager/01_firing_two_alerts.json")).status_code == 202
            settled(2)
            human("acknowledge", A, "dana@example.com")
            human("close", B, "sam@example.com")
            settled(4)
            # The source resolves the first; later both fire again (new alerts: generation 2).
            assert (
                post("alertmanager", fixture_bytes("alertmanager/02_one_resolved_one_firing.json")).status_code == 202
            )
            settled(5)
            # A template error, later fixed and replayed.
            failed = post("custom", b'{"id": "x1", "title": "Backup failed"}')
            assert failed.status_code == 422
            # OpsGenie refuses a create with 422: a dead letter.
            httpx.post(
                f"{emu.base_url}/_control/faults",
                json={
                    "status": 422,
                    "count": 1,
                    "body": {
                        "message": "Request body is not valid",
                        "errors": {"message": "Message can not be empty."},
                    },
                },
            ).raise_for_status()
            assert (
                post("generic", json.dumps({"alias": "disk-full", "message": "Disk full"}).encode()).status_code == 202
            )
            wait_for(lambda: db.execute("SELECT status FROM outbox WHERE alias = 'disk-full'").fetchone() == ("dead",))
            # A sender knocks three times with a bad token.
            for _ in range(3):
                assert post("alertmanager", b"{}", {"Authorization": "Bearer wrong-token-123"}).status_code == 401
            wait_for(lambda: db.execute("SELECT sum(count) FROM refused_webhooks").fetchone() == (3,), timeout=15)
            assert post("alertmanager", fixture_bytes("alertmanager/01_firing_two_alerts.json")).status_code == 202
            settled(7)
            # Maintenance: a silence holds a create back (recorded, not sent).
            maint = json.dumps({"alias": "maint-db", "message": "Database restarting"}).encode()
            assert post("generic", maint).status_code == 202
        template.write_text(FIXED)

        async def fix() -> None:
            async with Database(url, size=2) as pool:
                result = await replay(pool, build_bridge(config).routes, failed.json()["id"])
                assert result.status == 202, result.body

        asyncio.run(fix())
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def questions() -> list[tuple[int, str, str]]:
    """(number, title, SQL) of every question in docs/audit.md."""
    found = re.findall(r"^### (\d+)\. (.+?)\n\n```sql\n(.*?)```", DOC, flags=re.MULTILINE | re.DOTALL)
    return [(int(n), title, sql) for n, title, sql in found]


Rows = list[dict[str, Any]]


def one(rows: Rows) -> dict[str, Any]:
    assert len(rows) == 1, rows
    return rows[0]


CHECKS: dict[int, Callable[[Rows], Any]] = {
    1: lambda r: (
        one(r)["alias"] == A
        and one(r)["acknowledged_by"] == "dana@example.com"
        and one(r)["after"].total_seconds() >= 0
    ),
    2: lambda r: (
        [(x["integration"], x["alias"]) for x in r]
        == [
            ("alertmanager", B),
            ("generic", "disk-full"),
            ("alertmanager", A),
            ("generic", "maint-db"),
            ("custom", "x1"),
        ]
    ),
    3: lambda r: [(x["alias"], x["closed_by"]) for x in r] == [(B, "sam@example.com")],
    4: lambda r: (
        {x["integration"]: int(x["alerts"]) for x in r} == {"alertmanager": 4, "custom": 1, "generic": 2}
        and next(x for x in r if x["integration"] == "alertmanager")["mtta_seconds"] >= 0
    ),
    5: lambda r: (
        [(x["integration"], x["kind"], x["remote_addr"], int(x["refused"])) for x in r]
        == [("alertmanager", "unauthorized", "127.0.0.1", 3)]
    ),
    6: lambda r: (
        [(x["kind"], x["http_status"], x["outcome"], x["opsgenie_success"]) for x in r]
        == [("send", 202, "delivered", True)]
        and "confirmed by callback" in r[0]["opsgenie_status"]
    ),
    7: lambda r: (
        {"webhook", "decision", "send", "callback", "opsgenie"} <= {x["kind"] for x in r}
        and [x["generation"] for x in r] == sorted(x["generation"] for x in r)
        and any("Acknowledge by dana@example.com" in x["summary"] for x in r)
    ),
    8: lambda r: (
        [(x["integration"], x["line"], x["replay_count"], x["current_status"]) for x in r]
        == [("custom", 1, 1, "processed")]
        and r[0]["fixed_at"] is not None
        and "titel" in r[0]["message"]
    ),
    9: lambda r: (
        [(x["alias"], x["action"], x["http_status"]) for x in r] == [("disk-full", "create", 422)]
        and "Message can not be empty" in r[0]["answer"]
    ),
    10: lambda r: (
        {
            (x["alias"], x["generation"]): (x["sends"], x["failed_sends"])
            for x in r
            if x["integration"] == "alertmanager"
        }
        == {(A, 1): (2, 0), (A, 2): (1, 0), (B, 1): (1, 0), (B, 2): (2, 0)}
    ),
    11: lambda r: [(x["alias"], x["acknowledged_by"]) for x in r] == [(A, "dana@example.com")],
    12: lambda r: (
        {(x["integration"], int(x["alerts"])) for x in r} == {("alertmanager", 4), ("custom", 1), ("generic", 2)}
    ),
    13: lambda r: sorted((x["alias"], x["alerts_opened"]) for x in r) == sorted([(A, 2), (B, 2)]),
    14: lambda r: sorted(x["alias"] for x in r) == sorted([A, B]) and all(x["open_for"].total_seconds() > 0 for x in r),
    15: lambda r: (
        [(x["integration"], x["alias"]) for x in r] == [("generic", "maint-db")]
        and "silenced" in r[0]["summary"]
        and "database maintenance" in r[0]["summary"]
    ),
}


def test_the_doc_has_at_least_12_questions_and_each_is_checked() -> None:
    numbers = [n for n, _, _ in questions()]
    assert len(numbers) >= 12 and numbers == list(range(1, len(numbers) + 1))
    assert set(numbers) == set(CHECKS)


@pytest.mark.parametrize(("number", "title", "sql"), questions(), ids=lambda v: str(v) if isinstance(v, int) else "")
def test_each_question_gives_the_right_answer(seeded: str, number: int, title: str, sql: str) -> None:
    with psycopg.connect(seeded, row_factory=dict_row) as conn:
        rows = conn.execute(sql).fetchall()
    assert CHECKS[number](rows), f"question {number} ({title}) answered: {rows}"


def test_every_view_and_column_is_commented_and_documented(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        views = conn.execute(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'audit' AND c.relkind = 'v' ORDER BY 1"
        ).fetchall()
        columns = conn.execute(
            "SELECT c.relname, a.attname, col_description(c.oid, a.attnum) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE n.nspname = 'audit' AND c.relkind = 'v' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, a.attnum"
        ).fetchall()
    assert {v for v, _ in views} == {"alerts", "alias_timeline", "deliveries", "failed_webhooks", "mtta_mttr"}
    assert all(comment for _, comment in views), views
    missing = [(v, c) for v, c, comment in columns if not comment]
    assert missing == []
    for view, _ in views:
        section = DOC.split(f"### audit.{view}\n", 1)[1].split("\n### ", 1)[0]
        documented = set(re.findall(r"^\| (\w+) \|", section, flags=re.MULTILINE)) - {"column"}
        assert documented == {c for v, c, _ in columns if v == view}, view


def test_audit_grant_reads_the_views_and_nothing_else(seeded: str, pg_admin_url: str) -> None:
    role = "auditor_test"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    env = {"ALERTBRIDGE_DATABASE_URL": seeded, "PATH": "/usr/bin:/bin"}
    for _ in range(2):  # a second run updates the role, it does not fail
        r = subprocess.run(
            [sys.executable, "-m", "alertbridge.cli", "audit", "grant", role, "--password-stdin"],
            input="pw-for-auditor-1\n",
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
    as_role = make_url(seeded).set(username=role, password="pw-for-auditor-1").render_as_string(hide_password=False)
    try:
        with psycopg.connect(as_role, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM audit.alerts").fetchone()[0] > 0  # type: ignore[index]
            assert conn.execute("SELECT count(*) FROM audit.deliveries").fetchone()[0] > 0  # type: ignore[index]
            for table in ("inbound_events", "outbox", "aliases", "callbacks", "alias_history", "integrations"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"SELECT 1 FROM public.{table} LIMIT 1")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE VIEW audit.mine AS SELECT 1")
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            dbname = make_url(seeded).database
            conn.execute(f'REVOKE ALL ON DATABASE "{dbname}" FROM "{role}"')
        with psycopg.connect(seeded, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')
