"""Replays and dead letters, as admins run them from the console or the admin API.

A replay runs a stored webhook through its integration's ACTIVE version (ingest's own replay): it is a row of
its own (``inbound_replays``: when, by whom, which version, what it produced) next to the original failure,
which is never overwritten. Dead letters are re-queued (the worker sends them again) or discarded with a reason.
Every change is an ``admin_audit`` row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alertbridge.admin.actor import Actor
from alertbridge.admin.errors import Conflict, Invalid, NotFound
from alertbridge.db import Database
from alertbridge.ingest import ReplayError, replay
from alertbridge.models import HistoryOrigin
from alertbridge.registry import Registry
from alertbridge.store import audit, history, inbound, outbox

MAX_BULK = 1000


async def replay_one(
    db: Database, registry: Registry, actor: Actor, inbound_id: int, *, force: bool = False
) -> dict[str, Any]:
    actor.require_admin()
    routes = registry.current.routes
    try:
        result = await replay(db, routes, inbound_id, force=force, actor=actor.label)
    except ReplayError as exc:
        text = str(exc)
        raise (NotFound(text) if "does not exist" in text else Conflict(text)) from None
    body = result.body
    async with db.transaction() as conn:
        await audit.record(
            conn,
            actor=actor.label,
            action="inbound.replay",
            target=f"inbound:{inbound_id}",
            after={
                "replay_id": body.get("replay_id"),
                "http_status": result.status,
                "status": body.get("status") or body.get("error"),
                "template_version_id": body.get("template_version_id"),
            },
        )
    return {"http_status": result.status, **body}


async def replay_failed(
    db: Database, registry: Registry, actor: Actor, integration: str, since: datetime
) -> dict[str, Any]:
    """The bulk form: every webhook of ``integration`` received since ``since`` that still fails with a template
    error (body errors cannot be fixed by a template), oldest first, at most MAX_BULK."""
    actor.require_admin()
    if integration not in registry.current.endpoints:
        raise NotFound(f"integration {integration!r} is not served by this process")
    async with db.connection() as conn:
        ids = await inbound.failing_since(conn, integration, since, limit=MAX_BULK)
    results = []
    for inbound_id in ids:
        try:
            results.append(await replay_one(db, registry, actor, inbound_id))
        except (Conflict, NotFound) as exc:
            results.append({"id": inbound_id, "error": exc.code, "message": exc.message})
    fixed = sum(1 for r in results if r.get("http_status") == 202)
    return {"integration": integration, "replayed": len(results), "fixed": fixed, "results": results}


async def dead_letters(db: Database, integration: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        return await outbox.dead(conn, integration=integration, limit=limit)


def _ids(ids: Any) -> list[int]:
    if not isinstance(ids, list) or not ids or len(ids) > MAX_BULK:
        raise Invalid(f"'ids' must be a list of 1 to {MAX_BULK} outbox ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise Invalid("'ids' must be integers")
    return ids


async def requeue(db: Database, actor: Actor, *, ids: Any = None, integration: str | None = None) -> list[int]:
    """Dead letters back to the queue (``ids``, or every dead letter of ``integration``)."""
    actor.require_admin()
    chosen = _ids(ids) if ids is not None else None
    if chosen is None and not integration:
        raise Invalid("give 'ids' or 'integration'")
    async with db.transaction() as conn:
        requeued = await outbox.requeue_dead(conn, ids=chosen, integration=integration if chosen is None else None)
        await history.about_outbox_rows(
            conn,
            requeued,
            origin=HistoryOrigin.CONSOLE,
            action="dead_letter.replay",
            decision="requeue",
            reason="dead letter sent again",
            actor=actor.label,
        )
        for row_id in requeued:
            await audit.record(
                conn,
                actor=actor.label,
                action="dead_letter.replay",
                target=f"outbox:{row_id}",
                before={"status": "dead"},
                after={"status": "pending"},
            )
    return requeued


async def discard(db: Database, actor: Actor, ids: Any, reason: Any) -> list[int]:
    actor.require_admin()
    chosen = _ids(ids)
    if not isinstance(reason, str) or not reason.strip():
        raise Invalid("'reason' is required: say why these deliveries are given up")
    reason = reason.strip()[:1000]
    async with db.transaction() as conn:
        done = await outbox.discard(conn, chosen, reason)
        await history.about_outbox_rows(
            conn,
            done,
            origin=HistoryOrigin.CONSOLE,
            action="dead_letter.discard",
            decision="discard",
            reason=f"dead letter discarded: {reason}",
            actor=actor.label,
        )
        for row_id in done:
            await audit.record(
                conn,
                actor=actor.label,
                action="dead_letter.discard",
                target=f"outbox:{row_id}",
                before={"status": "dead"},
                after={"status": "discarded", "reason": reason},
            )
    return done
