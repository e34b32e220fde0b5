""" "Test against recent traffic": render the draft and the active version over the last stored webhooks of an
integration (ingest's ``prepare`` and the pure ``plan``, against empty alias state so only the templates
differ) and report how many change, which now fail, which newly truncate — before anything is saved. Nothing is
written; the work is bounded by a count and a time budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from alertbridge.admin.preview import draft_route, route_of
from alertbridge.admin.report import cut_fields
from alertbridge.core.plan import plan
from alertbridge.db import Database
from alertbridge.ingest import Inbound, Prepared, Route, prepare
from alertbridge.models import InboundStatus
from alertbridge.registry import Registry
from alertbridge.store import inbound

LIMIT = 200
BUDGET_SECONDS = 20.0
SHOWN = 20  # examples listed per kind


@dataclass
class _Outcome:
    ok: bool
    error: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


def _outcome(route: Route, prepared: Prepared, now: datetime) -> _Outcome:
    if prepared.status != InboundStatus.PROCESSED:
        return _Outcome(False, prepared.error)
    events = plan(prepared.events, {}, route.spec, now).to_dict()
    return _Outcome(True, None, events)


def _changed_fields(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[str]:
    """Which parts differ: "events" when their number or actions differ, else "event N: field" per field."""
    if len(a) != len(b):
        return [f"events: {len(a)} -> {len(b)}"]
    out: list[str] = []
    for x, y in zip(a, b, strict=True):
        if (x["action"], x["alias"]) != (y["action"], y["alias"]):
            out.append(f"event {x['seq']}: action/alias")
            continue
        jx = (x.get("request") or {}).get("json") or {}
        jy = (y.get("request") or {}).get("json") or {}
        out.extend(f"event {x['seq']}: {k}" for k in sorted(set(jx) | set(jy)) if jx.get(k) != jy.get(k))
    return out


def compare(active: Route, draft: Route, rows: list[dict[str, Any]], budget: float) -> dict[str, Any]:
    """CPU only (runs in a worker thread)."""
    now = datetime.now(UTC)
    deadline = time.monotonic() + budget
    report: dict[str, Any] = {
        "total": 0,
        "changed": 0,
        "unchanged": 0,
        "now_failing": [],
        "fixed": [],
        "newly_truncated": [],
        "changes": [],
        "stopped_early": False,
    }
    for row in rows:
        if time.monotonic() > deadline:
            report["stopped_early"] = True
            break
        msg = Inbound(
            body=bytes(row["body"]), content_type=row["content_type"], headers=row["headers"], query=row["query"]
        )
        a = _outcome(active, prepare(active, msg), now)
        b = _outcome(draft, prepare(draft, msg), now)
        report["total"] += 1
        item = {"id": row["id"], "received_at": row["received_at"].isoformat()}
        if (a.ok, a.error, a.events) == (b.ok, b.error, b.events):
            report["unchanged"] += 1
            continue
        report["changed"] += 1
        if a.ok and not b.ok:
            report["now_failing"].append({**item, "error": b.error})
        elif b.ok and not a.ok:
            report["fixed"].append({**item, "error_before": a.error})
        elif a.ok and b.ok:
            new_cuts = sorted(cut_fields(b.events) - cut_fields(a.events))
            if new_cuts:
                report["newly_truncated"].append({**item, "fields": [f"event {s}: {f}" for s, f in new_cuts]})
            report["changes"].append({**item, "fields": _changed_fields(a.events, b.events)})
    for key in ("now_failing", "fixed", "newly_truncated", "changes"):
        report[f"{key}_count"] = len(report[key])
        report[key] = report[key][:SHOWN]
    return report


async def run(
    db: Database, registry: Registry, name: str, source: Any, *, limit: int = LIMIT, budget: float = BUDGET_SECONDS
) -> dict[str, Any]:
    active = route_of(registry, name)
    draft, error = draft_route(active, source)
    if error is not None:
        return {"integration": name, "error": error}
    async with db.connection() as conn:
        rows = await inbound.recent_bodies(conn, name, max(1, min(limit, LIMIT)))
    report = await anyio.to_thread.run_sync(compare, active, draft, rows, budget)
    return {"integration": name, "error": None, **report}
