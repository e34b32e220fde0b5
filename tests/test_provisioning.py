"""The config file is applied at start-up, Grafana-provisioning style: rows follow the file, and rows whose
integration left the file are disabled (their history stays)."""

from __future__ import annotations

import psycopg
import pytest

from alertbridge.db import Database
from alertbridge.main import build_bridge, sync_integrations
from tests.harness import make_config


@pytest.mark.anyio
async def test_integrations_follow_the_file(database: Database, db: psycopg.Connection) -> None:
    both = make_config("http://127.0.0.1:9")
    await sync_integrations(database, build_bridge(both))
    rows = db.execute("SELECT name, template, managed_by, enabled, target_base_url FROM integrations ORDER BY name")
    assert rows.fetchall() == [
        ("alertmanager", "alertmanager", "file", True, "http://127.0.0.1:9"),
        ("generic", "generic", "file", True, "http://127.0.0.1:9"),
    ]
    (settings,) = db.execute("SELECT settings FROM integrations WHERE name = 'generic'").fetchone()  # type: ignore[misc]
    assert settings["tokens"] == 2 and settings["default_source"] == "alertbridge-test"
    (updated,) = db.execute("SELECT updated_at FROM integrations WHERE name = 'generic'").fetchone()  # type: ignore[misc]

    # Applying the same file again changes nothing (idempotent).
    await sync_integrations(database, build_bridge(both))
    assert db.execute("SELECT updated_at FROM integrations WHERE name = 'generic'").fetchone() == (updated,)

    # generic leaves the file, alertmanager moves: one disabled, one updated.
    only_am = make_config("http://127.0.0.1:10", integrations=(("alertmanager", "alertmanager"),))
    await sync_integrations(database, build_bridge(only_am))
    rows = db.execute("SELECT name, enabled, target_base_url FROM integrations ORDER BY name").fetchall()
    assert rows == [("alertmanager", True, "http://127.0.0.1:10"), ("generic", False, "http://127.0.0.1:9")]
