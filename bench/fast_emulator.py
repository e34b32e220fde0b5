#!/usr/bin/env python3
"""The project's OpsGenie emulator (app/emulator.py) for long fault benchmarks: the same behaviour, plus

* an alias index (the emulator scans every alert per create: fine for tests, too slow for 50,000 alerts), and
* ``GET /_bench/summary``: compact facts for the benchmark scripts — every request (arrival time, method, kind,
  status) and, per alias, the actions OpsGenie processed in order and its alerts.

    .venv/bin/python bench/fast_emulator.py --port 8900 --api-key KEY
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertbridge.emulator import EmulatorState


class BenchState(EmulatorState):
    def reset(self) -> None:
        super().reset()
        self.by_alias: dict[str, list[dict[str, Any]]] = {}
        self.processed: list[tuple[str, str, bool, str]] = []  # alias, action, ok, status text

    def _new_alert(self, job: dict, now: str) -> dict:
        alert = super()._new_alert(job, now)
        self.by_alias.setdefault(alert["alias"], []).append(alert)
        return alert

    def find_alert(self, identifier: str, identifier_type: str = "id", open_only: bool = False) -> dict | None:
        if identifier_type != "alias":
            return super().find_alert(identifier, identifier_type, open_only)
        found = list(reversed(self.by_alias.get(identifier, [])))
        open_ = [a for a in found if a["status"] != "closed"]
        return (open_ or ([] if open_only else found) or [None])[0]

    def _finish(self, job: dict, action: str, ok: bool, status: str, alert: dict | None) -> None:
        super()._finish(job, action, ok, status, alert)
        alias = alert["alias"] if alert else (job["identifier"] or "")
        self.processed.append((alias, action, ok, status))


def _epoch(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def summary(state: BenchState) -> dict[str, Any]:
    requests = [
        [
            _epoch(r["at"]),
            r["method"],
            "status" if "/requests/" in r["path"] else ("create" if r["path"] == "/v2/alerts" else "action"),
            r["status"],
        ]
        for r in state.requests
    ]
    actions: dict[str, list[list[Any]]] = {}
    for alias, action, ok, status in state.processed:
        actions.setdefault(alias, []).append([action, ok, status])
    alerts = {
        alias: [[a["status"], a["count"], a["acknowledged"]] for a in found] for alias, found in state.by_alias.items()
    }
    return {"requests": requests, "actions": actions, "alerts": alerts, "idle": state.idle}


def counts(state: BenchState) -> dict[str, Any]:
    """Cheap to poll: requests by kind, and the alerts' states (every alias's newest alert)."""
    kinds: dict[str, int] = {}
    for r in state.requests:
        kind = "status" if "/requests/" in r["path"] else ("create" if r["path"] == "/v2/alerts" else "action")
        kinds[kind] = kinds.get(kind, 0) + 1
    states: dict[str, int] = {}
    for found in state.by_alias.values():
        st = found[-1]["status"]
        states[st] = states.get(st, 0) + 1
    return {"requests": kinds, "alerts": states, "idle": state.idle}


def first_creates(state: BenchState) -> dict[str, float]:
    """alias (as sent to OpsGenie) -> when its first create arrived (epoch seconds)."""
    out: dict[str, float] = {}
    for r in state.requests:
        body = r.get("json")
        if r["path"] == "/v2/alerts" and r["method"] == "POST" and isinstance(body, dict):
            alias = body.get("alias")
            if isinstance(alias, str) and alias not in out:
                out[alias] = _epoch(r["at"])
    return out


def build(api_keys: list[str] | None, processing_delay: float) -> Starlette:
    state = BenchState(api_keys, processing_delay)

    async def bench_summary(request: Request) -> JSONResponse:
        return JSONResponse(summary(state))

    async def bench_counts(request: Request) -> JSONResponse:
        return JSONResponse(counts(state))

    async def bench_creates(request: Request) -> JSONResponse:
        return JSONResponse(first_creates(state))

    async def bench_reset(request: Request) -> JSONResponse:
        state.reset()
        return JSONResponse({"reset": True})

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    app = Starlette(
        routes=[
            Route("/_bench/summary", bench_summary),
            Route("/_bench/counts", bench_counts),
            Route("/_bench/creates", bench_creates),
            Route("/_bench/reset", bench_reset, methods=["POST"]),
            Route("/{path:path}", state.handle, methods=methods),
        ]
    )
    app.state.emulator = state
    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8900)
    p.add_argument("--api-key", action="append")
    p.add_argument("--processing-delay", type=float, default=0.05)
    args = p.parse_args()
    app = build(args.api_key, args.processing_delay)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, http="httptools")


if __name__ == "__main__":
    main()
