"""A payload that lacks what the template needs is the sender's error: status payload_error (in inbound_events
and in inbound_replays), 422 payload_error naming the field, never a template error."""

from __future__ import annotations

import json

import psycopg
import pytest

from alertbridge.db import Database
from alertbridge.ingest import Inbound, ingest, replay
from alertbridge.main import build_bridge
from alertbridge.models import InboundStatus
from tests.harness import FIXTURES, make_config
from tests.test_cli import cli_env, run_cli

pytestmark = pytest.mark.anyio


async def test_payload_error_is_stored_answered_and_replayed_as_such(
    database: Database, db: psycopg.Connection
) -> None:
    routes = build_bridge(make_config("http://127.0.0.1:9")).routes
    msg = Inbound(body=json.dumps({"events": [{"alias": "a"}, {"action": "close", "alias": ""}]}).encode())
    result = await ingest(database, routes["generic"], msg)
    assert result.status == 422
    assert result.body == {
        "id": result.body["id"],
        "error": "payload_error",
        "message": "the payload's 'events[1].alias' is empty (every action but 'ignore' needs the alert's alias)",
        "field": "events[1].alias",
        "hint": "nothing was sent to OpsGenie; set 'events[1].alias' in the payload and send it again",
    }
    again = await replay(database, routes, result.body["id"])
    assert again.status == 422 and again.body["error"] == "payload_error"
    row = db.execute("SELECT status, current_status FROM inbound_events").fetchone()
    assert row == (InboundStatus.PAYLOAD_ERROR, InboundStatus.PAYLOAD_ERROR)
    assert db.execute("SELECT status, error->>'field' FROM inbound_replays").fetchall() == [
        ("payload_error", "events[1].alias")
    ]
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


def test_render_shows_a_payload_error() -> None:
    r = run_cli("render", "-t", "generic", "-p", str(FIXTURES / "hostile" / "null_alias_generic.json"), env=cli_env())
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["status"] == "payload_error" and out["error"]["field"] == "alias"
