"""The alias timeline: everything that ever happened to one alias, across generations, newest first — every
webhook that touched it, every decision (``alias_history``), every outbox row, every delivery attempt and what
OpsGenie answered."""

from __future__ import annotations

from typing import Any

from alertbridge.admin.errors import NotFound
from alertbridge.db import Database
from alertbridge.store import aliases, attempts, history, inbound, outbox


async def search(
    db: Database, *, integration: str | None, alias: str | None, text: str | None, limit: int = 50
) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        return await aliases.search(conn, integration=integration, alias=alias, text=text, limit=limit)


async def timeline(db: Database, integration: str, alias: str) -> dict[str, Any]:
    async with db.connection() as conn:
        state = await aliases.get(conn, integration, alias)
        if state is None:
            raise NotFound(f"integration {integration!r} has no alias {alias!r}")
        decisions = await history.for_alias(conn, integration, alias)
        rows = await outbox.for_alias(conn, integration, alias)
        calls = await attempts.for_outbox(conn, [r["id"] for r in rows])
        inbound_ids = sorted(
            {r["inbound_id"] for r in rows if r["inbound_id"]} | {d["inbound_id"] for d in decisions if d["inbound_id"]}
        )
        webhooks = await inbound.by_ids(conn, inbound_ids) if inbound_ids else []
        replays = await inbound.replays_of(conn, inbound_ids) if inbound_ids else []
    # Newest first. What one webhook caused (its decisions and outbox rows) sorts with the webhook, in the order it
    # happened: webhook, decision, outbox row; delivery attempts and replays at their own times.
    received = {w["id"]: w["received_at"] for w in webhooks}
    entries: list[dict[str, Any]] = []
    for w in webhooks:
        entries.append({**w, "kind": "webhook", "at": w["received_at"], "_key": (w["received_at"], 0, w["id"])})
    for r in replays:
        entries.append({**r, "kind": "replay", "_key": (r["at"], 0, r["id"])})
    for d in decisions:
        anchor = received.get(d["inbound_id"], d["at"])
        entries.append({**d, "kind": "decision", "_key": (max(anchor, d["at"]), 1, d["id"])})
    for o in rows:
        anchor = received.get(o["inbound_id"], o["created_at"]) if o["replay_id"] is None else o["created_at"]
        entries.append(
            {**o, "kind": "outbox", "at": o["created_at"], "_key": (max(anchor, o["created_at"]), 2, o["id"])}
        )
    for c in calls:  # its own "kind" (send | status_check) becomes "call"
        entries.append(
            {**c, "call": c["kind"], "kind": "attempt", "at": c["started_at"], "_key": (c["started_at"], 3, c["id"])}
        )
    entries.sort(key=lambda e: e["_key"], reverse=True)
    for e in entries:
        del e["_key"]
    return {"integration": integration, "alias": alias, "state": state, "entries": entries}
