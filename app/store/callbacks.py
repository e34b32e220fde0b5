"""``callbacks``: every authenticated callback from OpsGenie, and what it did. Also the alias-side writes a callback
makes (state, who acknowledged/closed, alertId) — under the same per-alias advisory lock webhooks take."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.core.callbacks import AliasView, Callback, CallbackDecision
from alertbridge.core.lifecycle import ACKED, CLOSED, OPEN, Reason
from alertbridge.db import Connection
from alertbridge.models import CallbackOutcome
from alertbridge.store import aliases

_KEYS = """
SELECT integration, alias FROM aliases
WHERE opsgenie_alias = %(og)s AND (%(i)s::text IS NULL OR integration = %(i)s::text)
ORDER BY integration, alias
"""


async def matching_aliases(conn: Connection, opsgenie_alias: str, integration: str | None) -> list[tuple[str, str]]:
    """The (integration, alias) pairs that sent this OpsGenie alias (several only with unscoped aliases)."""
    cur = await conn.execute(_KEYS, {"og": opsgenie_alias, "i": integration})
    return [(r["integration"], r["alias"]) for r in await cur.fetchall()]


_VIEW = """
SELECT a.integration, a.alias, a.generation, a.state, a.opened_at, a.alert_id,
       COALESCE((SELECT array_agg(g.alert_id) FROM generations g
                 WHERE g.integration = a.integration AND g.alias = a.alias AND g.generation < a.generation
                   AND g.alert_id IS NOT NULL), '{}') AS older_alert_ids,
       (SELECT o.action FROM outbox o
        WHERE o.integration = a.integration AND o.alias = a.alias AND o.generation = a.generation
          AND o.action <> 'ignore' AND (o.status IN ('delivered', 'in_flight') OR o.attempts > 0)
        ORDER BY o.id DESC LIMIT 1) AS last_sent_action
FROM aliases a WHERE a.integration = %(i)s AND a.alias = %(a)s
"""


async def view(conn: Connection, integration: str, alias: str) -> AliasView | None:
    cur = await conn.execute(_VIEW, {"i": integration, "a": alias})
    row = await cur.fetchone()
    if row is None:
        return None
    row["older_alert_ids"] = frozenset(row["older_alert_ids"])
    return AliasView(**row)


async def seen_before(conn: Connection, cb: Callback) -> bool:
    """OpsGenie may send a callback again: same alert, action and updatedAt."""
    if cb.alert_id is None or cb.updated_at_ns is None:
        return False
    cur = await conn.execute(
        "SELECT 1 FROM callbacks WHERE alert_id = %(a)s AND action = %(x)s AND updated_at_ns = %(u)s "
        "AND outcome <> 'duplicate' LIMIT 1",
        {"a": cb.alert_id, "x": cb.action, "u": cb.updated_at_ns},
    )
    return await cur.fetchone() is not None


@dataclass(frozen=True)
class Match:
    integration: str | None
    alias: str | None
    generation: int | None


_INSERT = """
INSERT INTO callbacks (remote_addr, action, opsgenie_alias, alert_id, tiny_id, username, source_type, source_name,
                       alert_created_at, updated_at_ns, at, integration, alias, generation, outcome, reason, body)
VALUES (%(remote_addr)s, %(action)s, %(og)s, %(alert_id)s, %(tiny_id)s, %(username)s, %(source_type)s,
        %(source_name)s, %(created)s, %(updated)s, %(at)s, %(integration)s, %(alias)s, %(generation)s, %(outcome)s,
        %(reason)s, %(body)s)
RETURNING id
"""


async def insert(
    conn: Connection,
    cb: Callback,
    match: Match,
    *,
    outcome: str,
    reason: str,
    body: dict[str, Any] | None,
    remote_addr: str | None,
) -> int:
    cur = await conn.execute(
        _INSERT,
        {
            "remote_addr": remote_addr,
            "action": cb.action,
            "og": cb.opsgenie_alias,
            "alert_id": cb.alert_id,
            "tiny_id": cb.tiny_id,
            "username": cb.username,
            "source_type": cb.source_type,
            "source_name": cb.source_name,
            "created": cb.alert_created_at,
            "updated": cb.updated_at_ns,
            "at": cb.at,
            "integration": match.integration,
            "alias": match.alias,
            "generation": match.generation,
            "outcome": outcome,
            "reason": reason,
            "body": Jsonb(body) if body is not None else None,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


_SET_STATE = """
WITH a AS (
    UPDATE aliases SET
        state = %(state)s,
        acknowledged_at = CASE WHEN %(state)s = 'acknowledged' THEN %(at)s
                               WHEN %(state)s = 'open' THEN NULL ELSE acknowledged_at END,
        acknowledged_by = CASE WHEN %(state)s = 'acknowledged' THEN %(by)s
                               WHEN %(state)s = 'open' THEN NULL ELSE acknowledged_by END,
        closed_at = CASE WHEN %(state)s = 'closed' THEN %(at)s ELSE closed_at END,
        closed_by = CASE WHEN %(state)s = 'closed' THEN %(by)s ELSE closed_by END,
        closed_in_opsgenie = (%(state)s = 'closed')
    WHERE integration = %(i)s AND alias = %(a)s AND generation = %(g)s
)
UPDATE generations SET
    state = %(state)s,
    first_acknowledged_at = CASE WHEN %(state)s = 'acknowledged' THEN COALESCE(first_acknowledged_at, %(at)s)
                                 ELSE first_acknowledged_at END,
    first_acknowledged_by = CASE WHEN %(state)s = 'acknowledged' AND first_acknowledged_at IS NULL THEN %(by)s
                                 ELSE first_acknowledged_by END,
    acknowledged_at = CASE WHEN %(state)s = 'acknowledged' THEN %(at)s
                           WHEN %(state)s = 'open' THEN NULL ELSE acknowledged_at END,
    acknowledged_by = CASE WHEN %(state)s = 'acknowledged' THEN %(by)s
                           WHEN %(state)s = 'open' THEN NULL ELSE acknowledged_by END,
    closed_at = CASE WHEN %(state)s = 'closed' THEN %(at)s ELSE closed_at END,
    closed_by = CASE WHEN %(state)s = 'closed' THEN %(by)s ELSE closed_by END,
    closed_in_opsgenie = (%(state)s = 'closed'),
    updated_at = now()
WHERE integration = %(i)s AND alias = %(a)s AND generation = %(g)s
"""

_CANCEL_PENDING = """
UPDATE outbox SET status = 'skipped', reason = %(reason)s, reason_code = %(code)s, lease_until = NULL
WHERE integration = %(i)s AND alias = %(a)s AND generation = %(g)s AND status = 'pending'
  AND action IN ('acknowledge', 'close', 'note')
RETURNING id
"""

_CONFIRM_REQUEST = """
UPDATE outbox SET opsgenie_success = true, opsgenie_status = %(status)s, opsgenie_processed_at = %(at)s
WHERE id = (SELECT id FROM outbox
            WHERE integration = %(i)s AND alias = %(a)s AND generation = %(g)s AND action = %(action)s
              AND (status IN ('delivered', 'in_flight') OR attempts > 0)
            ORDER BY id DESC LIMIT 1)
  AND opsgenie_success IS NULL
"""


async def apply(conn: Connection, v: AliasView, cb: Callback, decision: CallbackDecision, now: datetime) -> list[int]:
    """Make the alias follow ``decision`` (caller holds the alias lock). Returns the outbox rows it cancelled."""
    at = cb.at or now
    key = {"i": v.integration, "a": v.alias, "g": v.generation}
    cancelled: list[int] = []
    if decision.next_state in (OPEN, ACKED, CLOSED):
        await conn.execute(_SET_STATE, {**key, "state": decision.next_state, "at": at, "by": cb.actor})
    if decision.learn_alert and cb.alert_id is not None:  # where delivery's create confirmation puts it
        await aliases.confirm_create(conn, v.integration, v.alias, v.generation, cb.alert_id, cb.tiny_id)
    if decision.cancel_pending:
        cur = await conn.execute(
            _CANCEL_PENDING,
            {**key, "reason": Reason.CLOSED_IN_OPSGENIE.text, "code": Reason.CLOSED_IN_OPSGENIE.value},
        )
        cancelled = [int(r["id"]) for r in await cur.fetchall()]
    if decision.outcome == CallbackOutcome.ECHO:
        sent = {"Create": "create", "Acknowledge": "acknowledge", "Close": "close", "AddNote": "note"}.get(cb.action)
        if sent is not None:
            await conn.execute(
                _CONFIRM_REQUEST, {**key, "action": sent, "status": f"{cb.action} confirmed by callback", "at": at}
            )
    return cancelled
