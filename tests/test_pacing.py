"""Rate pacing toward OpsGenie, against the emulator enforcing an account rate limit (a token bucket, 429 beyond it):
deliveries wait for a token instead of collecting 429s — also with two worker processes sharing one bucket in
Postgres —, P1 creates go before P5 notes while every alias keeps its order, and a 429 that still comes halves the
rate. (How close the achieved rate comes to the configured one is measured in bench/pacing_storm.py, not here.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.emulator_server import RunningEmulator, run_emulator
from tests.harness import API_KEY, FAST_DELIVERY, TOKEN, make_config, run_bridge, wait_for
from tests.test_cli import cli_env

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def paced(rate: float, burst: int) -> str:
    return f"rate_per_minute = {rate}\nburst = {burst}\n"


def config_of(emu: RunningEmulator, rate: float, burst: int, **kw: Any):  # type: ignore[no-untyped-def]
    cfg = make_config(emu.base_url, integrations=(("generic", "generic"),), **kw)
    return _with_pacing(cfg, rate, burst)


def _with_pacing(cfg: Any, rate: float, burst: int) -> Any:
    import dataclasses

    integrations = tuple(
        dataclasses.replace(i, target=dataclasses.replace(i.target, rate_per_minute=rate, burst=burst))
        for i in cfg.integrations
    )
    return dataclasses.replace(cfg, integrations=integrations)


def post(base: str, body: dict[str, Any]) -> None:
    r = httpx.post(f"{base}/webhooks/generic", content=json.dumps(body), headers=AUTH, timeout=10)
    assert r.status_code == 202, r.text


def enforce(emu: RunningEmulator, per_minute: float, burst: int, period: int = 60) -> None:
    r = httpx.post(
        f"{emu.base_url}/_control/ratelimit", json={"per_minute": per_minute, "burst": burst, "period": period}
    )
    r.raise_for_status()


def counted(emu: RunningEmulator) -> dict[str, Any]:
    return httpx.get(f"{emu.base_url}/_control/ratelimit").json()["ratelimit"]  # type: ignore[no-any-return]


def delivered(db: psycopg.Connection) -> int:
    (n,) = db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone()  # type: ignore[misc]
    return int(n)


def test_a_storm_waits_for_tokens_instead_of_collecting_429s(database_url: str, db: psycopg.Connection) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        enforce(emu, per_minute=300, burst=5)
        with run_bridge(config_of(emu, 300, 5), database_url) as bridge:
            for i in range(30):
                post(bridge.base_url, {"action": "create", "alias": f"storm-{i}", "message": "storm"})
            wait_for(lambda: delivered(db) == 30, timeout=30, what="every alert")
        seen = counted(emu)
    assert (seen["accepted"], seen["throttled"]) == (30, 0)
    assert db.execute("SELECT count(*) FROM delivery_attempts WHERE http_status = 429").fetchone() == (0,)
    # Rows that waited for a token say so in their alias's history.
    (paced_rows,) = db.execute("SELECT count(*) FROM alias_history WHERE reason_code = 'paced'").fetchone()  # type: ignore[misc]
    assert paced_rows > 0
    (tokens,) = db.execute("SELECT tokens FROM delivery_targets").fetchone()  # type: ignore[misc]
    assert tokens is not None and tokens < 5


def test_two_worker_processes_share_one_bucket_and_never_exceed_it(
    tmp_path: Path, database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        enforce(emu, per_minute=600, burst=8)
        cfg_file = tmp_path / "alertbridge.toml"
        from tests.harness import config_text

        text = config_text(emu.base_url, integrations=(("generic", "generic"),))
        cfg_file.write_text(
            text.replace('default_source = "alertbridge-test"', 'default_source = "alertbridge-test"\n' + paced(600, 8))
        )
        env = cli_env(ALERTBRIDGE_DATABASE_URL=database_url)
        # Everything is queued first, so both workers start hungry at the same moment.
        with run_bridge(config_of(emu, 600, 8), database_url, run_worker=False) as bridge:
            for i in range(60):
                post(bridge.base_url, {"action": "create", "alias": f"w-{i}", "message": "shared"})
        workers = []
        for n in range(2):
            with open(tmp_path / f"worker{n}.log", "wb") as out:
                workers.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "alertbridge.cli",
                            "worker",
                            "--config",
                            str(cfg_file),
                            "--metrics-port",
                            "0",
                        ],
                        env=env,
                        cwd=tmp_path,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        try:
            wait_for(lambda: delivered(db) == 60, timeout=60, what="every alert")
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                assert w.wait(30) == 0
        seen = counted(emu)
    assert (seen["accepted"], seen["throttled"]) == (60, 0)
    by_worker = db.execute("SELECT count(DISTINCT worker) FROM delivery_attempts").fetchone()
    assert by_worker == (2,), "both processes delivered"


def test_p1_creates_go_before_p5_notes_and_every_alias_keeps_its_order(
    database_url: str, db: psycopg.Connection
) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        # Notes go straight out (no status check of their create first), so only the claim's order decides.
        cfg = config_of(
            emu, 300, 2, delivery=FAST_DELIVERY + "confirm_creates = false\nfollow_request_status = false\n"
        )
        with run_bridge(cfg, database_url) as bridge:
            for i in range(4):
                post(bridge.base_url, {"action": "create", "alias": f"low-{i}", "message": "low", "priority": "P5"})
            wait_for(lambda: delivered(db) == 4, timeout=20, what="the P5 alerts")
        emu.call(emu.state.requests.clear)
        with run_bridge(cfg, database_url, run_worker=False) as bridge:  # queue everything, send nothing yet
            for i in range(4):
                post(bridge.base_url, {"action": "note", "alias": f"low-{i}", "note": "still low"})
            for i in range(3):
                post(bridge.base_url, {"action": "create", "alias": f"hot-{i}", "message": "hot", "priority": "P1"})
                post(bridge.base_url, {"action": "note", "alias": f"hot-{i}", "note": "on it"})
        with run_bridge(cfg, database_url):
            wait_for(lambda: delivered(db) == 14, timeout=30, what="the queue")
        emu.wait_idle()
        order = [(r["method"], r["path"]) for r in emu.state.requests if r["method"] == "POST"]
    creates = [i for i, (_, path) in enumerate(order) if path == "/v2/alerts"]
    low_notes = [i for i, (_, path) in enumerate(order) if "/generic:low-" in path]
    assert len(creates) == 3 and len(low_notes) == 4
    assert max(creates) < min(low_notes), order
    for i in range(3):  # per alias: the create before its note
        create = order.index(("POST", "/v2/alerts"), 0)
        note = next(n for n, (_, path) in enumerate(order) if path.startswith(f"/v2/alerts/generic:hot-{i}/notes"))
        assert create < note
    priorities = db.execute(
        "SELECT DISTINCT action, priority FROM outbox WHERE alias LIKE 'hot-%%' ORDER BY action"
    ).fetchall()
    assert priorities == [("create", 1), ("note", 1)]


def test_a_429_that_still_comes_halves_the_rate(database_url: str, db: psycopg.Connection) -> None:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        enforce(emu, per_minute=60, burst=2, period=1)  # the account is slower than configured
        with run_bridge(config_of(emu, 600, 10), database_url) as bridge:
            for i in range(12):
                post(bridge.base_url, {"action": "create", "alias": f"over-{i}", "message": "m"})
            wait_for(lambda: counted(emu)["throttled"] > 0, timeout=20, what="a 429")
            wait_for(
                lambda: db.execute("SELECT rate_scale < 1 FROM delivery_targets").fetchone() == (True,),
                what="the rate to shrink",
            )
            wait_for(lambda: delivered(db) == 12, timeout=40, what="every alert despite the 429s")
        scale, throttled_at, period = db.execute(
            "SELECT rate_scale, throttled_at, throttle_period FROM delivery_targets"
        ).fetchone()  # type: ignore[misc]
    assert scale <= 0.5 and throttled_at is not None and period == 1.0
