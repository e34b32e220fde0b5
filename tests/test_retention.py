"""Retention: old data goes in batches, open aliases and their current generation stay, nothing dangles."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from alertbridge.config import RetentionConfig
from alertbridge.core.retention import cutoffs
from alertbridge.db import Database
from alertbridge.retention import SWEEPER_LOCK, prune, sweep_once
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, TOKEN, make_config, run_bridge, wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "events", "refused", "expected"),
    [
        (30, 400, 90, (NOW - timedelta(days=30), NOW - timedelta(days=400), NOW - timedelta(days=90))),
        (0, 400, 0, (None, NOW - timedelta(days=400), None)),  # bodies kept as long as their rows
        (500, 400, 90, (NOW - timedelta(days=400), NOW - timedelta(days=400), NOW - timedelta(days=90))),
        (0, 0, 0, (None, None, None)),
        (30, 0, 90, (NOW - timedelta(days=30), None, NOW - timedelta(days=90))),
    ],
)
def test_cutoffs(raw: float, events: float, refused: float, expected: tuple[datetime | None, ...]) -> None:
    c = cutoffs(NOW, raw_bodies_days=raw, events_days=events, refused_days=refused)
    assert (c.raw_bodies, c.events, c.refused) == expected


def _seed(database_url: str, db: psycopg.Connection) -> None:
    """Two aliases through the real bridge: 'keep' stays open, 'gone' is closed; a webhook that failed; refusals."""
    with (
        run_emulator(api_keys=[API_KEY], processing_delay=0.01) as emu,
        run_bridge(make_config(emu.base_url), database_url) as bridge,
    ):
        for body in (
            {"action": "create", "alias": "keep", "message": "still firing"},
            {"action": "create", "alias": "gone", "message": "was firing"},
            {"action": "close", "alias": "gone"},
            {"action": "note", "alias": "keep", "note": "looking"},
        ):
            r = httpx.post(f"{bridge.base_url}/webhooks/generic", json=body, headers=AUTH)
            assert r.status_code == 202, r.text
        assert httpx.post(f"{bridge.base_url}/webhooks/generic", content=b"{", headers=AUTH).status_code == 400
        assert httpx.post(f"{bridge.base_url}/webhooks/generic", content=b"{}").status_code == 401
        wait_for(
            lambda: (
                db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone() == (0,)
                and db.execute("SELECT count(*) FROM refused_webhooks").fetchone() == (1,)
            ),
            timeout=15,
        )
    # Make everything 500 days old.
    old = "now() - interval '500 days'"
    db.execute(f"UPDATE inbound_events SET received_at = {old}")
    db.execute(f"UPDATE outbox SET created_at = {old}")
    db.execute(f"UPDATE alias_history SET at = {old}")
    db.execute(f"UPDATE delivery_attempts SET started_at = {old}")
    db.execute(f"UPDATE refused_webhooks SET minute = {old}")
    db.execute(f"UPDATE generations SET opened_at = {old}, closed_at = CASE WHEN closed_at IS NOT NULL THEN {old} END")
    db.execute(f"UPDATE aliases SET last_seen_at = {old}, closed_at = CASE WHEN closed_at IS NOT NULL THEN {old} END")


def counts(db: psycopg.Connection) -> dict[str, int]:
    tables = (
        "inbound_events",
        "outbox",
        "delivery_attempts",
        "alias_history",
        "generations",
        "aliases",
        "refused_webhooks",
    )
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}  # type: ignore[index]


def test_prune_keeps_open_aliases_and_leaves_nothing_dangling(database_url: str, db: psycopg.Connection) -> None:
    _seed(database_url, db)
    before = counts(db)
    env = {"ALERTBRIDGE_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    cli = [sys.executable, "-m", "alertbridge.cli", "prune"]
    dry = subprocess.run([*cli, "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)["rows"]
    assert counts(db) == before, "a dry run changes nothing"
    assert planned["outbox rows and their delivery attempts"] == 2  # gone's create and close
    r = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == planned
    assert "outbox rows and their delivery attempts: 2/2" in r.stderr  # the progress line

    # The open alias and everything about its current generation stay; the closed one is gone.
    assert [a for (a,) in db.execute("SELECT alias FROM aliases")] == ["keep"]
    assert [a for (a,) in db.execute("SELECT alias FROM generations")] == ["keep"]
    assert {a for (a,) in db.execute("SELECT DISTINCT alias FROM outbox")} == {"keep"}
    assert {a for (a,) in db.execute("SELECT DISTINCT alias FROM alias_history")} == {"keep"}
    attempts = db.execute(
        "SELECT DISTINCT o.alias FROM delivery_attempts a JOIN outbox o ON o.id = a.outbox_id"
    ).fetchall()
    assert attempts == [("keep",)] and db.execute("SELECT count(*) FROM delivery_attempts").fetchone()[0] >= 2  # type: ignore[index]
    kept = db.execute("SELECT count(*), count(body) FROM inbound_events").fetchone()
    assert kept == (2, 0), "keep's two webhooks stay (their bodies older than 30 days go); the failed one is gone"
    assert db.execute("SELECT count(*) FROM refused_webhooks").fetchone() == (0,)
    # Nothing dangles: every reference points at a row that exists.
    assert db.execute(
        "SELECT count(*) FROM aliases a WHERE last_outbox_id IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM outbox o WHERE o.id = a.last_outbox_id)"
    ).fetchone() == (0,)
    # A second run finds nothing more.
    again = json.loads(subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60).stdout)["rows"]
    assert not any(again.values())


@pytest.mark.anyio
async def test_batches_are_bounded_and_one_sweeper_at_a_time(database_url: str, db: psycopg.Connection) -> None:
    # 1,200 old refused-webhook rows, pruned in batches of 100.
    db.execute(
        "INSERT INTO refused_webhooks (minute, integration, remote_addr, reason, count) "
        "SELECT now() - interval '200 days' - make_interval(mins => g), 'x', '10.0.0.1', 'unauthorized', 1 "
        "FROM generate_series(1, 1200) g"
    )
    seen: list[int] = []
    config = RetentionConfig(batch_size=100)
    async with Database(database_url, size=3) as pool:
        # While another process holds the sweeper lock, this one does not sweep.
        async with pool.connection() as other:
            await other.execute("SELECT pg_advisory_lock(%(k)s)", {"k": SWEEPER_LOCK})
            assert await sweep_once(pool, config) is None
            await other.execute("SELECT pg_advisory_unlock(%(k)s)", {"k": SWEEPER_LOCK})
        result = await prune(
            pool, config, progress=lambda step, done, total: step.startswith("refused") and seen.append(done)
        )
        assert result["refused-webhook counts"] == 1200
        assert seen == list(range(100, 1201, 100)) + [1200]  # 12 full batches, then an empty one ends the step
        assert await sweep_once(pool, config) == {k: 0 for k in result}
    assert db.execute("SELECT count(*) FROM refused_webhooks").fetchone() == (0,)
    await asyncio.sleep(0)
