"""§2: a 429 pauses the whole target for every worker process; an outage takes the target down (one probe at a
time) and its recovery makes every waiting row due at once."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

from tests.delivery_helpers import (
    assert_opsgenie_matches_postgres,
    clear_faults,
    failed_statuses,
    fault,
    post,
    queue_left,
    worker_process,
)
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, FAST_DELIVERY, config_text, make_config, run_bridge, wait_for


def _at(entry: dict) -> float:
    return datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()


def test_429_pauses_the_target_for_two_worker_processes(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    retry_after = 3
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        cfg = tmp_path / "alertbridge.toml"
        cfg.write_text(config_text(emu.base_url, delivery=FAST_DELIVERY + "max_in_flight = 4\n"))
        fault(emu, status=429, count=1, headers={"Retry-After": str(retry_after)})
        logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
        with (
            worker_process(cfg, database_url, logs[0]),
            worker_process(cfg, database_url, logs[1]),
            run_bridge(make_config(emu.base_url), database_url, run_worker=False) as bridge,
        ):
            wait_for(
                lambda: all("delivering for" in p.read_text() for p in logs if p.exists()) and len(logs) == 2,
                timeout=60,
                what="both worker processes",
            )
            with httpx.Client() as client:
                for i in range(60):  # arrive before, during and after the pause
                    post(bridge.base_url, {"action": "create", "alias": f"r{i}", "message": "m"}, client=client)
                    time.sleep(0.03)
            wait_for(lambda: queue_left(db) == 0, timeout=60, what="every row delivered")
        emu.wait_idle()
        (paused_until,) = db.execute("SELECT extract(epoch FROM paused_until)::float8 FROM delivery_targets").fetchone()  # type: ignore[misc]
        requests = emu.call(lambda: list(emu.state.requests))
        throttled = [r for r in requests if r["status"] == 429]
        assert len(throttled) == 1
        paused_at = paused_until - retry_after  # when the worker that got the 429 recorded the pause
        # Requests already past the gate when the pause was recorded may still arrive a moment later; after that,
        # nothing reaches OpsGenie until Retry-After has passed, from either process.
        during = [r for r in requests if paused_at + 0.25 <= _at(r) < paused_until - 0.01]
        assert during == []
        after = [r for r in requests if _at(r) >= paused_until - 0.01]
        assert after, "rows queued during the pause go out once it is over"
        workers = {w for (w,) in db.execute("SELECT DISTINCT worker FROM delivery_attempts")}
        assert len(workers) == 2, "both processes delivered"
        assert db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (60,)
        assert len(emu.state.alerts) == 60


OUTAGE = """
[delivery]
timeout_seconds = 1.0
poll_interval_seconds = 0.1
backoff_base_seconds = 5.0
backoff_max_seconds = 60.0
lease_seconds = 30.0
shutdown_grace_seconds = 3.0
circuit_failures = 3
circuit_probe_max_seconds = 0.5
"""


def test_outage_takes_the_target_down_and_recovery_drains_at_once(database_url: str, db: psycopg.Connection) -> None:
    """With a 5 s first backoff, rows retrying on their own schedules would need 5-20 s after OpsGenie is back; the
    breaker makes them all due when the first probe succeeds."""
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        with run_bridge(make_config(emu.base_url, delivery=OUTAGE), database_url) as bridge:
            fault(emu, status=503, count=1_000_000, methods=["POST", "GET"])
            with httpx.Client() as client:
                for i in range(10):
                    post(bridge.base_url, {"action": "create", "alias": f"o{i}", "message": "m"}, client=client)
                for i in range(5):
                    post(bridge.base_url, {"action": "close", "alias": f"o{i}"}, client=client)
            wait_for(
                lambda: db.execute("SELECT state FROM delivery_targets").fetchone() == ("down",),
                what="the target to go down",
            )
            time.sleep(3)  # the outage goes on: only probes reach OpsGenie
            outage_requests = len(emu.call(lambda: list(emu.state.requests)))
            # 3 failures take it down (plus sends already under way), then one probe at a time every <= 0.5 s
            assert outage_requests <= 3 + 16 + 3 / 0.25, outage_requests
            back = time.monotonic()
            clear_faults(emu)
            wait_for(lambda: queue_left(db) == 0, timeout=60, what="the drain")
            drained = time.monotonic() - back
        assert drained < 5.0, f"drained {drained:.1f}s after OpsGenie came back"
        assert db.execute("SELECT state, failures FROM delivery_targets").fetchone() == ("up", 0)
        assert db.execute("SELECT count(*) FROM outbox WHERE status <> 'delivered'").fetchone() == (0,)
        # Per-alias order held through the outage: no close reached OpsGenie before its alert existed.
        assert failed_statuses(emu) == []
        assert_opsgenie_matches_postgres(emu, db)
