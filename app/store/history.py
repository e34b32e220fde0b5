"""``alias_history``: append-only, one row per decision about an alias — from a webhook, a callback, the console
or a policy. Never updated, never overwritten."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.db import Connection, json_rows


@dataclass(frozen=True)
class Entry:
    alias: str
    generation: int
    origin: str  # a models.HistoryOrigin value
    action: str
    from_state: str | None
    to_state: str | None
    decision: str | None
    reason_code: str | None
    reason: str
    actor: str | None = None
    inbound_id: int | None = None
    outbox_id: int | None = None
    callback_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


_INSERT = """
INSERT INTO alias_history (integration, alias, generation, at, origin, action, from_state, to_state, decision,
                           reason_code, reason, actor, inbound_id, outbox_id, callback_id, details)
SELECT %(i)s, u.alias, u.gen, %(at)s, u.origin, u.action, u.from_state, u.to_state, u.decision, u.code, u.reason,
       u.actor, u.inbound_id, u.outbox_id, u.callback_id, u.details
FROM unnest(%(alias)s::text[], %(gen)s::int[], %(origin)s::text[], %(action)s::text[], %(from)s::text[],
            %(to)s::text[], %(decision)s::text[], %(code)s::text[], %(reason)s::text[], %(actor)s::text[],
            %(inbound)s::bigint[], %(outbox)s::bigint[], %(callback)s::bigint[], %(details)s::jsonb[])
     AS u(alias, gen, origin, action, from_state, to_state, decision, code, reason, actor, inbound_id, outbox_id,
          callback_id, details)
"""


async def append(conn: Connection, integration: str, entries: Sequence[Entry], at: datetime) -> None:
    if not entries:
        return
    await conn.execute(
        _INSERT,
        {
            "i": integration,
            "at": at,
            "alias": [e.alias for e in entries],
            "gen": [e.generation for e in entries],
            "origin": [e.origin for e in entries],
            "action": [e.action for e in entries],
            "from": [e.from_state for e in entries],
            "to": [e.to_state for e in entries],
            "decision": [e.decision for e in entries],
            "code": [e.reason_code for e in entries],
            "reason": [e.reason for e in entries],
            "actor": [e.actor for e in entries],
            "inbound": [e.inbound_id for e in entries],
            "outbox": [e.outbox_id for e in entries],
            "callback": [e.callback_id for e in entries],
            "details": [Jsonb(e.details) for e in entries],
        },
    )


_INSERT_MANY = """
INSERT INTO alias_history (integration, alias, generation, at, origin, action, from_state, to_state, decision,
                           reason_code, reason, actor, inbound_id, outbox_id, callback_id, details)
SELECT u.integration, u.alias, u.gen, %(at)s, u.origin, u.action, u.from_state, u.to_state, u.decision, u.code,
       u.reason, u.actor, u.inbound_id, u.outbox_id, u.callback_id, u.details
FROM json_to_recordset(%(rows)s::json)
     AS u(k int, integration text, alias text, gen int, origin text, action text, from_state text, to_state text,
          decision text, code text, reason text, actor text, inbound_id bigint, outbox_id bigint, callback_id bigint,
          details jsonb)
ORDER BY u.k
"""


async def append_many(conn: Connection, entries: Sequence[tuple[str, Entry]], at: datetime) -> None:
    """``append`` for the entries of several integrations (a batch of webhooks), in the order given."""
    if not entries:
        return
    rows = [
        {
            "k": k,
            "integration": integration,
            "alias": e.alias,
            "gen": e.generation,
            "origin": e.origin,
            "action": e.action,
            "from_state": e.from_state,
            "to_state": e.to_state,
            "decision": e.decision,
            "code": e.reason_code,
            "reason": e.reason,
            "actor": e.actor,
            "inbound_id": e.inbound_id,
            "outbox_id": e.outbox_id,
            "callback_id": e.callback_id,
            "details": e.details,
        }
        for k, (integration, e) in enumerate(entries)
    ]
    await conn.execute(_INSERT_MANY, {"at": at, "rows": json_rows(rows)})


async def for_alias(conn: Connection, integration: str, alias: str, *, limit: int = 500) -> list[dict[str, Any]]:
    """The alias's decisions, newest first (the alias timeline)."""
    cur = await conn.execute(
        "SELECT id, generation, at, origin, action, from_state, to_state, decision, reason_code, reason, actor, "
        "inbound_id, outbox_id FROM alias_history WHERE integration = %(i)s AND alias = %(a)s "
        "ORDER BY id DESC LIMIT %(n)s",
        {"i": integration, "a": alias, "n": limit},
    )
    return await cur.fetchall()


_FROM_OUTBOX = """
INSERT INTO alias_history (integration, alias, generation, at, origin, action, from_state, to_state, decision,
                           reason, actor, inbound_id, outbox_id, details)
SELECT o.integration, o.alias, o.generation, now(), %(origin)s, %(action)s, a.state, a.state, %(decision)s,
       %(reason)s, %(actor)s, o.inbound_id, o.id, jsonb_build_object('event', o.action)
FROM outbox o LEFT JOIN aliases a ON a.integration = o.integration AND a.alias = o.alias
WHERE o.id = ANY(%(ids)s::bigint[]) AND o.action <> 'ignore'
ORDER BY o.id
"""


async def about_outbox_rows(
    conn: Connection, ids: Sequence[int], *, origin: str, action: str, decision: str, reason: str, actor: str
) -> None:
    """One history row per outbox row an operator acted on (a dead letter replayed or discarded): the alias's
    timeline shows who did what to which of its events. The alias state does not change."""
    if ids:
        await conn.execute(
            _FROM_OUTBOX,
            {
                "ids": list(ids),
                "origin": origin,
                "action": action,
                "decision": decision,
                "reason": reason,
                "actor": actor,
            },
        )
