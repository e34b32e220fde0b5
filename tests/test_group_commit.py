"""Group commit (app/committer.py + ingest.commit): webhooks that arrive together share one transaction.

The batches are made deterministic with one transaction at a time (``ingest_transactions = 1``) and an alias lock
held by the test: the first webhook's transaction waits for it, the next webhooks queue up behind it, in arrival
order, and go together as the next batch."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from alertbridge.db import check_connection
from tests.delivery_helpers import AUTH
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, make_config, run_bridge, wait_for

ONE_AT_A_TIME = "[server]\ningest_transactions = 1\n"


@contextmanager
def alias_lock(database_url: str, alias: str, integration: str = "generic") -> Iterator[psycopg.Connection]:
    """Hold the advisory lock ingest takes for this alias (released when the block ends)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"{integration}\x1f{alias}",))
        try:
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock_all()")


class Sender:
    """POSTs in background threads; each answer is kept by name."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.answers: dict[str, httpx.Response] = {}
        self.threads: dict[str, threading.Thread] = {}

    def send(self, name: str, body: dict[str, Any] | bytes, integration: str = "generic") -> None:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()

        def run() -> None:
            with httpx.Client(timeout=60) as client:
                url = f"{self.base_url}/webhooks/{integration}"
                self.answers[name] = client.post(url, content=content, headers=AUTH)

        self.threads[name] = threading.Thread(target=run)
        self.threads[name].start()

    def wait(self, *names: str) -> None:
        for name in names or tuple(self.threads):
            self.threads[name].join(60)
            assert not self.threads[name].is_alive(), f"{name} got no answer"


def committer(bridge: Any) -> Any:
    return bridge.server.config.app.state.committer


def waiting_for_lock(db: psycopg.Connection) -> list[int]:
    """Backends waiting for an advisory lock (a batch stuck behind the test's lock)."""
    return [r[0] for r in db.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")]


def test_two_webhooks_for_one_alias_in_one_batch_are_applied_in_arrival_order(
    database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY]) as emu:
        config = make_config(emu.base_url, server=ONE_AT_A_TIME)
        with run_bridge(config, database_url, run_worker=False) as bridge:
            c = committer(bridge)
            sender = Sender(bridge.base_url)
            with alias_lock(database_url, "blocker"):
                sender.send("blocker", {"action": "create", "alias": "blocker", "message": "m"})
                wait_for(lambda: waiting_for_lock(db), what="the first batch waiting for the lock")
                sender.send("create", {"action": "create", "alias": "disk-full", "message": "Disk full"})
                wait_for(lambda: c.queued == 1, what="the create queued")
                sender.send("close", {"action": "close", "alias": "disk-full"})
                wait_for(lambda: c.queued == 2, what="the close queued behind it")
                assert c.batches == 1
            sender.wait()
            assert c.batches == 2 and c.largest == 2  # the create and the close shared the second transaction
    create, close = sender.answers["create"].json(), sender.answers["close"].json()
    assert [sender.answers[n].status_code for n in ("blocker", "create", "close")] == [202, 202, 202]
    assert create["events"][0]["decision"] == "send" and create["events"][0]["reason"] == "new alert"
    assert close["events"][0]["decision"] == "send", close  # the close saw the create of the same batch
    assert create["id"] < close["id"]
    assert create["events"][0]["outbox_id"] < close["events"][0]["outbox_id"]
    rows = db.execute("SELECT action, status, generation FROM outbox WHERE alias = 'disk-full' ORDER BY id").fetchall()
    assert rows == [("create", "pending", 1), ("close", "pending", 1)]
    assert db.execute("SELECT state, generation, last_action FROM aliases WHERE alias = 'disk-full'").fetchone() == (
        "closed",
        1,
        "close",
    )
    history = db.execute(
        "SELECT action, from_state, to_state, inbound_id FROM alias_history WHERE alias = 'disk-full' ORDER BY id"
    ).fetchall()
    assert history == [("create", None, "open", create["id"]), ("close", "open", "closed", close["id"])]
    generation = db.execute(
        "SELECT state, message, closed_by FROM generations WHERE alias = 'disk-full' AND generation = 1"
    ).fetchone()
    assert generation == ("closed", "Disk full", "source")


def test_a_batch_whose_commit_fails_answers_503_to_every_webhook_and_stores_nothing(
    database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY]) as emu:
        config = make_config(emu.base_url, server=ONE_AT_A_TIME)
        with run_bridge(config, database_url, run_worker=False) as bridge:
            c = committer(bridge)
            sender = Sender(bridge.base_url)
            with alias_lock(database_url, "y"):
                sender.send("w0", {"action": "create", "alias": "y", "message": "m"})
                first = wait_for(lambda: waiting_for_lock(db), what="the first batch waiting for the lock")
                for name, alias in (("w1", "x"), ("w2", "y"), ("w3", "z")):
                    sender.send(name, {"action": "create", "alias": alias, "message": "m"})
                    wait_for(lambda n=int(name[1]): c.queued == n, what=f"{name} queued")
                db.execute("SELECT pg_terminate_backend(%s)", (first[0],))  # the first transaction dies
                # The second batch (x, y, z) locks x, then waits for y: its connection dies mid-transaction.
                second = wait_for(
                    lambda: [p for p in waiting_for_lock(db) if p != first[0]], what="the second batch waiting"
                )
                db.execute("SELECT pg_terminate_backend(%s)", (second[0],))
                sender.wait()
            assert c.batches == 2 and c.largest == 3
            for name in ("w0", "w1", "w2", "w3"):
                r = sender.answers[name]
                assert r.status_code == 503, (name, r.text)
                assert r.json()["error"] == "database_unavailable" and "nothing was stored" in r.json()["message"]
            # Nothing of any of them half-way: no webhook, no outbox row, no alias, no history.
            for table in ("inbound_events", "outbox", "aliases", "generations", "alias_history"):
                assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
            # The pool replaced its dead connections: the next webhook is stored.
            r = httpx.post(
                f"{bridge.base_url}/webhooks/generic",
                json={"action": "create", "alias": "x", "message": "m"},
                headers=AUTH,
            )
            assert r.status_code == 202, r.text


SLOW_TEMPLATE = (
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    '{"action": "create", "alias": "never"}'
)


def test_a_slow_template_does_not_hold_other_webhooks_hostage(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    (tmp_path / "slow.j2").write_text(SLOW_TEMPLATE)
    with run_emulator(api_keys=[API_KEY]) as emu:
        config = make_config(
            emu.base_url,
            base_dir=tmp_path,
            integrations=(("slow", "slow.j2"), ("generic", "generic")),
            delivery="[rendering]\ntimeout_seconds = 4.0\n",
        )
        with run_bridge(config, database_url, run_worker=False) as bridge:
            sender = Sender(bridge.base_url)
            sender.send("slow", {"anything": 1}, integration="slow")
            time.sleep(0.5)  # past the inline budget: the slow render goes on in a thread
            fast = []
            with httpx.Client(timeout=30) as client:
                for i in range(3):
                    r = client.post(
                        f"{bridge.base_url}/webhooks/generic",
                        json={"action": "create", "alias": f"fast-{i}", "message": "m"},
                        headers=AUTH,
                    )
                    fast.append(r.status_code)
                    assert sender.threads["slow"].is_alive(), "a fast webhook waited for the slow template"
            assert fast == [202, 202, 202]
            sender.wait()
    slow = sender.answers["slow"]
    assert slow.status_code == 422 and slow.json()["kind"] == "timeout", slow.text
    assert "4 s" in slow.json()["message"]  # the integration's own limit, not the inline budget
    statuses = dict(db.execute("SELECT integration, count(*) FROM inbound_events GROUP BY integration").fetchall())
    assert statuses == {"slow": 1, "generic": 3}


@pytest.mark.parametrize("size", [1, 5])
def test_every_webhook_of_a_batch_gets_its_own_answer(database_url: str, db: psycopg.Connection, size: int) -> None:
    """Mixed batches: stored, invalid and template errors each get their own status; ids follow arrival."""
    with run_emulator(api_keys=[API_KEY]) as emu:
        config = make_config(emu.base_url, server=f"[server]\ningest_transactions = 1\ningest_batch_size = {size}\n")
        with run_bridge(config, database_url, run_worker=False) as bridge:
            c = committer(bridge)
            sender = Sender(bridge.base_url)
            with alias_lock(database_url, "blocker"):
                sender.send("blocker", {"action": "create", "alias": "blocker", "message": "m"})
                wait_for(lambda: waiting_for_lock(db), what="the first batch waiting")
                bodies: list[tuple[str, Any]] = [
                    ("ok", {"action": "create", "alias": "a1", "message": "m"}),
                    ("bad_event", {"action": "explode", "alias": "a2"}),
                    ("not_json", b"{not json"),
                    ("ok2", {"action": "create", "alias": "a3", "message": "m"}),
                ]
                for n, (name, body) in enumerate(bodies, start=1):
                    sender.send(name, body)
                    wait_for(lambda n=n: c.queued == n, what=f"{name} queued")
            sender.wait()
            assert c.largest == min(size, 4)
    names = ("ok", "bad_event", "not_json", "ok2")
    assert [sender.answers[n].status_code for n in names] == [202, 422, 400, 202]
    ids = [sender.answers[n].json()["id"] for n in names]
    assert ids == sorted(ids)
    rows = db.execute("SELECT id, status FROM inbound_events WHERE id = ANY(%s) ORDER BY id", (ids,)).fetchall()
    assert [s for _, s in rows] == ["processed", "payload_error", "invalid", "processed"]
    assert db.execute("SELECT alias FROM outbox WHERE alias LIKE 'a%' ORDER BY id").fetchall() == [("a1",), ("a3",)]


@pytest.mark.anyio
async def test_the_pool_checks_a_connection_only_when_the_server_has_spoken(
    database_url: str, db: psycopg.Connection
) -> None:
    """A quiet connection is handed out without a round trip (its last statement stays the last one the server
    saw); one whose backend was terminated while it sat idle fails the check (and the pool replaces it)."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SELECT 42 AS quiet")
        pid = conn.info.backend_pid
        await check_connection(conn)
        last = db.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        assert last == ("SELECT 42 AS quiet",)  # no round trip was made
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(
            lambda: db.execute("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0],  # type: ignore[index]
            what="the backend gone",
        )
        with pytest.raises(psycopg.OperationalError):
            await check_connection(conn)


def test_a_flap_inside_one_batch_cancels_the_close_held_by_the_same_batch(
    database_url: str, db: psycopg.Connection
) -> None:
    """fire, resolve, fire again, resolve again, in ONE transaction, with close_delay and flap_threshold = 1: the
    first held close is cancelled by the webhook after it (it is not committed yet, so no worker can have it), the
    flapping note is added by the plan (an outbox id more than the webhooks' events), and the last close stays
    held."""
    policy = '[integrations.policies]\nclose_delay = "1h"\nflap_threshold = 1\nflap_window = "10m"\n'
    with run_emulator(api_keys=[API_KEY]) as emu:
        config = make_config(emu.base_url, server=ONE_AT_A_TIME, extra_integration=policy)
        with run_bridge(config, database_url, run_worker=False) as bridge:
            c = committer(bridge)
            sender = Sender(bridge.base_url)
            steps = [("fire", "create"), ("ok", "close"), ("fire2", "create"), ("ok2", "close")]
            with alias_lock(database_url, "blocker"):
                sender.send("blocker", {"action": "create", "alias": "blocker", "message": "m"})
                wait_for(lambda: waiting_for_lock(db), what="the first batch waiting for the lock")
                for n, (name, action) in enumerate(steps, start=1):
                    sender.send(name, {"action": action, "alias": "queue-flicker", "message": "Queue alarm"})
                    wait_for(lambda n=n: c.queued == n, what=f"{name} queued")
            sender.wait()
            assert c.batches == 2 and c.largest == 4
    assert all(sender.answers[n].status_code == 202 for n, _ in steps)
    rows = db.execute(
        "SELECT action, status, reason_code, last_outcome FROM outbox WHERE alias = 'queue-flicker' ORDER BY id"
    ).fetchall()
    assert rows == [
        ("create", "pending", "new_alert", None),
        ("close", "skipped", "close_delayed", "cancelled"),  # cancelled by the flap of the same batch
        ("create", "skipped", "flap", None),
        ("note", "pending", "flapping", None),  # the plan's extra event: its id was reserved on the way
        ("close", "pending", "close_delayed", None),  # held again: the last word of the batch
    ]
    ids = [r[0] for r in db.execute("SELECT id FROM outbox WHERE alias = 'queue-flicker' ORDER BY id")]
    assert len(set(ids)) == 5
    state = db.execute("SELECT state, close_due_at IS NOT NULL FROM aliases WHERE alias = 'queue-flicker'").fetchone()
    assert state == ("closed", True)
