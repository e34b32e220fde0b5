"""§1: a dead row never lets its alias run ahead, and a replay of dead rows never reverses history. The end state in
OpsGenie (the emulator) always equals the alias state in Postgres."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.delivery_helpers import (
    assert_opsgenie_matches_postgres,
    clear_faults,
    failed_statuses,
    fault,
    post,
    queue_left,
    run_cli,
)
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, FAST_DELIVERY, config_text, make_config, run_bridge, wait_for

OUTAGE = FAST_DELIVERY + "max_age_seconds = 1.5\ncircuit_probe_max_seconds = 0.3\n"


def _dead_create_scenario(bridge_url: str, emu_url: str, db: psycopg.Connection, emu: object) -> None:
    """OpsGenie answers 503 until every create died (max_age); then the alerts resolve; then OpsGenie is back."""
    fault(emu, status=503, count=1_000_000, methods=["POST", "GET"])  # type: ignore[arg-type]
    for i in range(6):
        post(bridge_url, {"action": "create", "alias": f"a{i}", "message": f"alert {i}"})
    wait_for(lambda: queue_left(db) == 0, timeout=30, what="the creates to die")
    assert db.execute("SELECT count(*) FROM outbox WHERE status = 'dead'").fetchone() == (6,)
    for i in range(3):  # half of them resolve while the creates are dead
        post(bridge_url, {"action": "close", "alias": f"a{i}"})
    # a5 resolves and fires again: a new alert (generation 2), which must go out although generation 1 is dead
    post(bridge_url, {"action": "close", "alias": "a5"})
    post(bridge_url, {"action": "create", "alias": "a5", "message": "alert 5 again"})
    clear_faults(emu)  # type: ignore[arg-type]
    wait_for(lambda: queue_left(db) == 0, timeout=30, what="the queue to settle after the outage")


def test_dead_create_blocks_its_alert_and_replay_sends_create_then_close(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        config = make_config(emu.base_url, delivery=OUTAGE)
        with run_bridge(config, database_url) as bridge:
            _dead_create_scenario(bridge.base_url, emu.base_url, db, emu)

            # No close was sent for an alert whose create is dead: OpsGenie never said "Alert does not exist".
            assert failed_statuses(emu) == []
            closes = db.execute(
                "SELECT alias, status, last_outcome, last_error FROM outbox WHERE action = 'close' ORDER BY id"
            ).fetchall()
            for alias, status, outcome, error in closes:
                assert (status, outcome) == ("dead", "blocked"), alias
                assert "blocked behind dead row" in error
            # ... and no request was made for them.
            blocked_attempts = db.execute(
                "SELECT count(*) FROM delivery_attempts a JOIN outbox o ON o.id = a.outbox_id WHERE o.action = 'close'"
            ).fetchone()
            assert blocked_attempts == (0,)
            # The new generation of a5 went out although generation 1 of a5 is dead.
            assert db.execute("SELECT status FROM outbox WHERE alias = 'a5' AND generation = 2").fetchone() == (
                "delivered",
            )

            # An operator replays the dead rows with the CLI.
            cfg = tmp_path / "alertbridge.toml"
            cfg.write_text(config_text(emu.base_url, delivery=OUTAGE))
            done = run_cli("replay", "--dead", "--no-migrate", "--config", str(cfg), database_url=database_url)
            assert done.returncode == 0, done.stderr
            requeued = json.loads(done.stdout)["requeued"]
            wait_for(lambda: queue_left(db) == 0, timeout=30, what="the replayed rows")

        # a0..a2: create then close (6 rows); a3, a4: create; a5's generation 1 (create + close) is superseded.
        assert len(requeued) == 8
        superseded = db.execute(
            "SELECT alias, generation, action, last_error FROM outbox WHERE last_outcome = 'superseded' ORDER BY id"
        ).fetchall()
        assert [(a, g, act) for a, g, act, _ in superseded] == [("a5", 1, "create"), ("a5", 1, "close")]
        assert "newer alert (generation 2)" in superseded[0][3]
        assert failed_statuses(emu) == []
        assert_opsgenie_matches_postgres(emu, db)
        states = {a["alias"]: a["status"] for a in emu.state.alerts.values()}
        assert states == {
            "generic:a0": "closed",
            "generic:a1": "closed",
            "generic:a2": "closed",
            "generic:a3": "open",
            "generic:a4": "open",
            "generic:a5": "open",
        }
        assert [a["count"] for a in emu.state.alerts.values() if a["alias"] == "generic:a5"] == [1]


def test_replay_of_a_lone_dead_create_whose_alert_was_closed_sends_nothing(
    database_url: str, db: psycopg.Connection
) -> None:
    """A create died; its close was delivered anyway (history from before this rule, or by an operator's hand):
    replaying the create alone would open an alert nobody closes."""
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        config = make_config(emu.base_url)
        fault(emu, status=422, count=1)  # the create is rejected: dead
        with run_bridge(config, database_url) as bridge:
            post(bridge.base_url, {"action": "create", "alias": "x", "message": "m"})
            wait_for(lambda: queue_left(db) == 0, what="the create to die")
            post(bridge.base_url, {"action": "close", "alias": "x"})
            wait_for(lambda: queue_left(db) == 0, what="the close")
            # Make it look as if the close had gone out (as it did before dead rows held their alert).
            db.execute("UPDATE outbox SET status = 'delivered', last_outcome = 'delivered' WHERE action = 'close'")
            done = run_cli("replay", "--dead", "--no-migrate", database_url=database_url)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["requeued"] == []
        row = db.execute("SELECT status, last_outcome, last_error FROM outbox WHERE action = 'create'").fetchone()
        assert row[:2] == ("skipped", "superseded")  # type: ignore[index]
        assert "a lone create would reopen it" in row[2]  # type: ignore[index]
        assert emu.state.alerts == {}
        assert_opsgenie_matches_postgres(emu, db)


def test_replay_by_outbox_id_brings_the_rest_of_the_alert_along(database_url: str, db: psycopg.Connection) -> None:
    """`replay --outbox <the create>` also re-queues the close that died with it (create, then close)."""
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        fault(emu, status=422, count=1)
        with run_bridge(make_config(emu.base_url), database_url) as bridge:
            create = post(bridge.base_url, {"action": "create", "alias": "y", "message": "m"})["events"][0]
            wait_for(lambda: queue_left(db) == 0, what="the create to die")
            post(bridge.base_url, {"action": "close", "alias": "y"})
            wait_for(lambda: queue_left(db) == 0, what="the close to be blocked")
            assert db.execute("SELECT last_outcome FROM outbox WHERE action = 'close'").fetchone() == ("blocked",)
            done = run_cli("replay", "--outbox", str(create["outbox_id"]), "--no-migrate", database_url=database_url)
            assert done.returncode == 0, done.stderr
            assert len(json.loads(done.stdout)["requeued"]) == 2
            wait_for(lambda: queue_left(db) == 0, what="the replay")
        assert [s for (s,) in db.execute("SELECT status FROM outbox ORDER BY id")] == ["delivered", "delivered"]
        assert [a["status"] for a in emu.state.alerts.values()] == ["closed"]
        assert_opsgenie_matches_postgres(emu, db)
