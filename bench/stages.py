"""The stages of bench/run.py that need more than wrk: open-loop latency, the Alertmanager storm, the data-scale run,
the memory soak; and the results table."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psutil
from faultlib import TOKEN, free_port, log
from openloop import open_loop
from run import (
    AM_BODY,
    HEADERS,
    Bench,
    Load,
    Profiler,
    Sampler,
    drain,
    stage_delivery,
    stage_ingest,
    stage_pgbench,
    stats,
    wait_http,
)

# --- latency: open loop ----------------------------------------------------------------------------------------


def _am(tag: str) -> Any:
    return lambda i: AM_BODY.replace("__ID__", f"{tag}{i}").encode()


def stage_latency(b: Bench, args: Any) -> dict[str, Any]:
    seconds = 10 if b.quick else 30
    out: dict[str, Any] = {}
    b.reset()
    b.serve()
    asyncio.run(open_loop(f"{b.base}/webhooks/alertmanager", _am("w"), rate=100, duration=2, headers=HEADERS))
    drain(b, 60)
    for rate in (500, 200):
        load = Load()
        sampler = Sampler(b)
        accepted_at: dict[int, float] = {}
        tag = f"l{rate}-"

        def answered(i: int, status: int, accepted_at: dict[int, float] = accepted_at) -> None:
            if status == 202:
                accepted_at.setdefault(i, time.time())

        res = asyncio.run(
            open_loop(
                f"{b.base}/webhooks/alertmanager",
                _am(tag),
                rate=rate,
                duration=seconds,
                headers=HEADERS,
                on_tick=lambda _t, sampler=sampler: sampler(),
                on_answer=answered,
            )
        )
        other = load.other()
        drain(b, 120)
        creates = httpx.get(f"{b.emulator}/_bench/creates", timeout=120).json()
        lags = [
            (creates[f"alertmanager:{tag}{i}"] - at) * 1000
            for i, at in accepted_at.items()
            if f"alertmanager:{tag}{i}" in creates
        ]
        out[str(rate)] = {
            **res.to_dict(),
            "accept_to_emulator_ms": stats(lags),
            "delivered": f"{len(lags)}/{len(accepted_at)}",
            "backlog_max": max((r["backlog"] for r in sampler.rows), default=0),
            "other_load": other,
        }
    return out


# --- storm: a real Prometheus Alertmanager ---------------------------------------------------------------------

AM_CONFIG = """
route:
  receiver: bridge
  group_by: ['group']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: bridge
    webhook_configs:
      - url: {url}
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


def alertmanager_binary() -> str | None:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    log("installing Debian's prometheus-alertmanager (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus-alertmanager"],
        check=False,
        env=env,
        timeout=900,
    )
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def _wait_alerts(b: Bench, key: str, want: int, timeout: float) -> tuple[float | None, int]:
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < timeout:
        n = b.counts()["alerts"].get(key, 0)
        if n >= want:
            return time.monotonic() - t0, n
        time.sleep(0.25)
    return None, n


def stage_storm(b: Bench, args: Any, processes: int = 1) -> dict[str, Any]:
    exe = alertmanager_binary()
    if exe is None:
        return {"skipped": "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"}
    alerts, groups = (2000, 20) if b.quick else (10000, 100)
    b.reset()
    b.serve(workers=processes)
    aport = free_port()
    am_dir = b.tmp / "alertmanager"
    am_dir.mkdir(exist_ok=True)
    (am_dir / "am.yml").write_text(AM_CONFIG.format(url=f"{b.base}/webhooks/alertmanager", token=TOKEN))
    argv = [
        exe,
        f"--config.file={am_dir / 'am.yml'}",
        f"--storage.path={am_dir / 'data'}",
        f"--web.listen-address=127.0.0.1:{aport}",
        "--cluster.listen-address=",
    ]
    with open(am_dir / "am.log", "ab") as out:
        b.procs["alertmanager"] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=am_dir)
    api = f"http://127.0.0.1:{aport}/api/v2"
    try:
        wait_http(f"{api}/status", "alertmanager")
        version = httpx.get(f"{api}/status", timeout=10).json().get("versionInfo", {}).get("version")
        now = datetime.now(UTC)

        def batch(ends: datetime) -> list[list[dict[str, Any]]]:
            items = [
                {
                    "labels": {"alertname": "StormAlert", "group": f"g{i % groups}", "instance": f"host-{i}"},
                    "annotations": {"summary": f"storm alert {i}"},
                    "startsAt": now.isoformat(),
                    "endsAt": ends.isoformat(),
                }
                for i in range(alerts)
            ]
            return [items[k : k + 1000] for k in range(0, alerts, 1000)]

        load = Load()
        sampler = Sampler(b)
        t0 = time.monotonic()
        for chunk in batch(now + timedelta(hours=1)):
            httpx.post(f"{api}/alerts", json=chunk, timeout=60).raise_for_status()
        fired = time.monotonic() - t0
        opened, n_open = sampler.run_while(lambda: _wait_alerts(b, "open", alerts, 120))
        opened_total = (fired + opened) if opened is not None else None
        drain(b, 120)
        t1 = time.monotonic()
        spy = Profiler(b, f"storm-close-{processes}", b.pids("serve")[-processes:], 10 if b.quick else 20)
        for chunk in batch(datetime.now(UTC) - timedelta(seconds=1)):
            httpx.post(f"{api}/alerts", json=chunk, timeout=60).raise_for_status()
        resolved_sent = time.monotonic() - t1
        closed, n_closed = sampler.run_while(lambda: _wait_alerts(b, "closed", alerts, 180))
        spy.finish()
        closed_total = (resolved_sent + closed) if closed is not None else None
        other = load.other()
        with b.db() as db:
            webhooks = db.execute("SELECT count(*), max(events_count) FROM inbound_events").fetchone()
        counts = b.counts()
    finally:
        b.stop("alertmanager")
    return {
        "processes": processes,
        "alertmanager": version,
        "alerts": alerts,
        "groups": groups,
        "all_open_s": round(opened_total, 1) if opened_total is not None else None,
        "open_at_emulator": n_open,
        "all_closed_s": round(closed_total, 1) if closed_total is not None else None,
        "closed_at_emulator": n_closed,
        "webhooks": webhooks[0] if webhooks else None,
        "largest_webhook_alerts": webhooks[1] if webhooks else None,
        "emulator_requests": counts["requests"],
        "backlog_max": max((r["backlog"] for r in sampler.rows), default=0),
        "samples": sampler.rows,
        "other_load": other,
    }


# --- scale of data: 1 M aliases, 10 M outbox / history rows -----------------------------------------------------

SEED = [
    """INSERT INTO inbound_events (integration, received_at, body, body_size, status, current_status, events_count,
                                   processed_at)
       SELECT 'alertmanager', now() - interval '2 days', '{{}}', 2, 'processed', 'processed', {per}, now()
       FROM generate_series(1, {aliases})""",
    """INSERT INTO aliases (integration, alias, opsgenie_alias, state, generation, count, first_seen_at, last_seen_at,
                           opened_at, closed_at, last_action)
       SELECT 'alertmanager', 'seed-' || g, 'alertmanager:seed-' || g, 'closed', 1, 1, now() - interval '2 days',
              now() - interval '2 days', now() - interval '2 days', now() - interval '2 days', 'close'
       FROM generate_series(1, {aliases}) g""",
    """INSERT INTO outbox (inbound_id, seq, integration, action, alias, opsgenie_alias, generation, payload, decision,
                          reason, status, created_at, queued_at, delivered_at, attempts, request_id)
       SELECT 1 + (g % {aliases}), 0, 'alertmanager', CASE WHEN g % 2 = 0 THEN 'create' ELSE 'close' END,
              'seed-' || (1 + g % {aliases}), 'alertmanager:seed-' || (1 + g % {aliases}), 1,
              '{{"message": "seeded alert"}}', 'send', 'seeded', 'delivered', now() - interval '2 days',
              now() - interval '2 days', now() - interval '2 days', 1, md5(g::text)
       FROM generate_series(1, {outbox}) g""",
    """INSERT INTO alias_history (integration, alias, generation, at, origin, action, from_state, to_state, decision,
                                 reason_code, reason, inbound_id)
       SELECT 'alertmanager', 'seed-' || (1 + g % {aliases}), 1, now() - interval '2 days', 'webhook', 'create',
              NULL, 'open', 'send', 'new_alert', 'seeded', 1 + (g % {aliases})
       FROM generate_series(1, {history}) g""",
]


def stage_scale(b: Bench, args: Any, empty: dict[str, Any] | None) -> dict[str, Any]:
    aliases = 100_000 if b.quick else args.scale_aliases
    rows = 1_000_000 if b.quick else args.scale_rows
    b.stop_bridge()
    b.reset()
    t0 = time.monotonic()
    with b.db() as db:
        for sql in SEED:
            db.execute(sql.format(aliases=aliases, per=1, outbox=rows // 2, history=rows - rows // 2))
        db.execute("VACUUM ANALYZE")
        size = db.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]  # type: ignore[index]
    seeded = time.monotonic() - t0
    log(f"seeded {aliases} aliases and {rows} outbox/history rows in {seeded:.0f}s ({size})")
    keep = b.reset
    b.reset = lambda: None  # type: ignore[method-assign]  # keep the seeded rows for this stage
    try:
        full = stage_ingest(b, processes=1, label="1 M aliases / 10 M rows")
    finally:
        b.reset = keep  # type: ignore[method-assign]
    base = (empty or {}).get("accepted_per_s")
    return {
        "aliases": aliases,
        "rows": rows,
        "seed_s": round(seeded),
        "database_size": size,
        "ingest": full,
        "empty_accepted_per_s": base,
        "ratio_to_empty": round(full["accepted_per_s"] / base, 3) if base else None,
    }


# --- memory: RSS over a soak at a constant rate -------------------------------------------------------------------


def stage_soak(b: Bench, args: Any) -> dict[str, Any]:
    seconds = 60 if b.quick else args.soak_seconds
    rate = 500
    b.reset()
    b.serve()
    pids = [p for p in b.pids("serve")]
    samples: list[dict[str, Any]] = []
    sampler = Sampler(b)  # webhooks stored and the backlog, every 5 s: is the rate sustained?
    t0 = time.monotonic()
    last = {"t": -1}

    def tick(_elapsed: float) -> None:
        if int(_elapsed) % 5 or int(_elapsed) == last["t"]:
            return
        last["t"] = int(_elapsed)
        sampler()
        row: dict[str, Any] = {"t": round(time.monotonic() - t0)}
        for p in pids:
            try:
                row[str(p)] = round(psutil.Process(p).memory_info().rss / 2**20, 1)
            except psutil.NoSuchProcess:
                pass
        samples.append(row)

    load = Load()
    res = asyncio.run(
        open_loop(
            f"{b.base}/webhooks/alertmanager", _am("soak"), rate=rate, duration=seconds, headers=HEADERS, on_tick=tick
        )
    )
    other = load.other()
    drained = drain(b, 120)
    per_process: dict[str, Any] = {}
    for p in pids:
        series = [(s["t"], s[str(p)]) for s in samples if str(p) in s]
        if not series:
            continue
        first = [v for t, v in series if t <= 60] or [series[0][1]]
        last = [v for t, v in series if t >= series[-1][0] - 60] or [series[-1][1]]
        per_process[str(p)] = {
            "max_mb": max(v for _, v in series),
            "first_minute_mb": round(sum(first) / len(first), 1),
            "last_minute_mb": round(sum(last) / len(last), 1),
            "growth_mb": round(sum(last) / len(last) - sum(first) / len(first), 1),
        }
    return {
        "rate": rate,
        "seconds": seconds,
        **res.to_dict(),
        "drain_s": round(drained, 1) if drained is not None else None,
        "rss": per_process,
        "samples": samples,
        "stored_per_5s": [{"t": r["t"], "stored": r["stored"], "backlog": r["backlog"]} for r in sampler.rows],
        "other_load": other,
    }


# --- the stage table -------------------------------------------------------------------------------------------


def _ingest_all(b: Bench, args: Any) -> dict[str, Any]:
    return {
        "1": stage_ingest(b, processes=1),
        "2": stage_ingest(b, processes=2),
    }


_RESULTS: dict[str, Any] = {}


def _remember(name: str, fn: Any) -> Any:
    def run(b: Bench, args: Any) -> dict[str, Any]:
        _RESULTS[name] = fn(b, args)
        return _RESULTS[name]

    return run


STAGE_FUNCTIONS = {
    "pgbench": _remember("pgbench", lambda b, a: stage_pgbench(b)),
    "ingest": _remember("ingest", _ingest_all),
    "delivery": _remember("delivery", lambda b, a: stage_delivery(b)),
    "latency": _remember("latency", stage_latency),
    "storm": _remember("storm", lambda b, a: {"1": stage_storm(b, a, 1), "2": stage_storm(b, a, 2)}),
    "scale": _remember("scale", lambda b, a: stage_scale(b, a, (_RESULTS.get("ingest") or {}).get("1"))),
    "soak": _remember("soak", stage_soak),
}


def _f(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(result: dict[str, Any]) -> str:
    s = result["stages"]
    ref = (s.get("pgbench") or {}).get("reference_tps")
    one = (s.get("pgbench") or {}).get("one_webhook_per_transaction") or {}
    ref_lat = (one.get(16) or one.get("16") or {}).get("latency_ms")
    rows: list[tuple[str, str, Any, Any, Any, Any]] = []  # target, figure, value, goal, ratio, other load

    def ratio(v: Any, base: Any) -> str:
        return f"{v / base:.2f}" if isinstance(v, int | float) and base else "–"

    if ref:
        p = s["pgbench"]
        rows.append(
            ("ref", "pgbench: the bridge's transaction, tps (best of 4/16 clients)", ref, "", "1.00", p["other_load"])
        )
        t = p["ten_per_transaction"]
        rows.append(
            (
                "ref",
                "pgbench: 10 webhooks per set-based transaction, rows/s",
                t["rows_per_s"],
                "",
                ratio(t["rows_per_s"], ref),
                p["other_load"],
            )
        )
    for n, st in sorted((s.get("ingest") or {}).items()):
        if not isinstance(st, dict):
            continue
        rows.append(
            (
                f"1, 7 ({n} proc)",
                "ingest webhooks/s at 32 connections (non-2xx)",
                f"{_f(st['accepted_per_s'])} ({st['non_2xx'] + sum(st['errors'].values())})",
                "≥ 1,500",
                ratio(st["accepted_per_s"], ref),
                st["other_load"],
            )
        )
        rows.append(
            (
                f"2 ({n} proc)",
                "delivered/s during that load (share of stored); backlog max",
                f"{_f(st['delivered_per_s'])} ({_f(st['delivered_share'], 2)}); {st['backlog_max']}",
                "≥ 90%",
                ratio(st["delivered_per_s"], ref),
                st["other_load"],
            )
        )
        rows.append(
            (
                f"6 ({n} proc)",
                "RSS per process under that load, MB",
                ", ".join(str(r) for r in st["rss_mb"]),
                "≤ 150",
                "–",
                st["other_load"],
            )
        )
    d = s.get("delivery")
    if d:
        c = d["consistency"]
        rows.append(
            (
                "2",
                "delivery alone: OpsGenie calls/s, 1 worker process (rows/s)",
                f"{_f(d['calls_per_s'])} ({_f(d['rows_per_s'])})",
                "≥ 1,000",
                ratio(d["calls_per_s"], ref),
                d["other_load"],
            )
        )
        rows.append(
            (
                "2",
                "… per-alias order violations / lost / duplicates",
                f"{c['order_violations']} / {sum(c['not_delivered'].values())} / {c['duplicate_alerts']}",
                "0 / 0 / 0",
                "–",
                d["other_load"],
            )
        )
    lat = s.get("latency")
    if lat:
        a = lat.get("500", {})
        rows.append(
            (
                "3",
                "POST p99 ms at 500 webhooks/s offered (open loop; p50)",
                f"{_f(a.get('p99_ms'))} ({_f(a.get('p50_ms'))})",
                "≤ 50",
                ratio(a.get("p99_ms"), ref_lat),
                a.get("other_load"),
            )
        )
        c2 = lat.get("200", {})
        e = c2.get("accept_to_emulator_ms", {})
        rows.append(
            (
                "3",
                "accept → emulator p50 / p99 ms at 200/s offered",
                f"{_f(e.get('p50'))} / {_f(e.get('p99'))}",
                "≤ 20 / ≤ 100",
                ratio(e.get("p99"), ref_lat),
                c2.get("other_load"),
            )
        )
    for n, st in sorted((s.get("storm") or {}).items()):
        if not isinstance(st, dict) or "skipped" in st:
            continue
        rows.append(
            (
                f"4 ({n} proc)",
                f"storm: {st['alerts']:,} alerts, {st['groups']} groups (Alertmanager {st['alertmanager']}): open s",
                st["all_open_s"],
                "≤ 30",
                "–",
                st["other_load"],
            )
        )
        rows.append(
            (f"4 ({n} proc)", "… after they resolve: all closed, s", st["all_closed_s"], "≤ 30", "–", st["other_load"])
        )
    sc = s.get("scale")
    if sc:
        rows.append(
            (
                "5",
                f"ingest webhooks/s with {sc['aliases']:,} aliases / {sc['rows']:,} rows (vs empty)",
                f"{_f(sc['ingest']['accepted_per_s'])} ({_f(sc['ratio_to_empty'], 2)})",
                "≥ 0.90 of empty",
                ratio(sc["ingest"]["accepted_per_s"], ref),
                sc["ingest"]["other_load"],
            )
        )
    so = s.get("soak")
    if so:
        mx = max((r["max_mb"] for r in so["rss"].values()), default=None)
        growth = max((r["growth_mb"] for r in so["rss"].values()), default=None)
        rows.append(
            (
                "6",
                f"soak {so['seconds']:.0f} s at {so['rate']}/s: RSS max MB (growth first → last minute)",
                f"{_f(mx)} ({_f(growth)})",
                "≤ 150, flat",
                "–",
                so["other_load"],
            )
        )
        rows.append(
            (
                "6",
                "… POST p99 ms during the soak (non-2xx)",
                f"{_f(so.get('p99_ms'))} ({sum(v for k, v in so['statuses'].items() if not k.startswith('2'))})",
                "",
                "–",
                so["other_load"],
            )
        )
    out = [
        "| target | figure | measured | goal | ratio to pgbench | other load (cores) |",
        "|---|---|---:|---|---:|---:|",
    ]
    out += [f"| {t} | {f} | {_f(v)} | {g} | {r} | {_f(o, 2)} |" for t, f, v, g, r, o in rows]
    return "\n".join(out)
