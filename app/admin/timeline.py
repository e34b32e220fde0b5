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


def _at(entry: dict[str, Any]) -> Any:
    return entry["at"]


async def timeline(db: Database, integration: str, alias: str) -> dict[str, Any]:
    async with db.connection() as conn:
        state = await aliases.get(conn, integration, alias)
        if state is None:
            raise NotFound(f"integration {integration!r} has no alias {alias!r}")
        decisions = await history.for_alias(conn, integration, alias)
        rows = await outbox.for_alias(conn, integration, alias)
        calls = await attempts.for_outbox(conn, [r["id"] for r in rows])
        inbound_ids = sorted({r["inbound_id"] for r in rows} | {d["inbound_id"] for d in decisions if d["inbound_id"]})
        webhooks = await inbound.by_ids(conn, inbound_ids) if inbound_ids else []
        replays = await inbound.replays_of(conn, inbound_ids) if inbound_ids else []
    entries: list[dict[str, Any]] = []
    for w in webhooks:
        entries.append({**w, "kind": "webhook", "at": w["received_at"]})
    for r in replays:
        entries.append({**r, "kind": "replay"})
    for d in decisions:
        entries.append({**d, "kind": "decision"})
    for o in rows:
        entries.append({**o, "kind": "outbox", "at": o["created_at"]})
    for c in calls:  # its own "kind" (send | status_check) becomes "call"
        entries.append({**c, "call": c["kind"], "kind": "attempt", "at": c["started_at"]})
    entries.sort(key=_at, reverse=True)
    return {"integration": integration, "alias": alias, "state": state, "entries": entries}
