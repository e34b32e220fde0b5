"""``aliases``: the current state of every alias. Webhooks write the lifecycle part (under an advisory lock per
alias); delivery writes what OpsGenie returned (request ids, alert id) for the generation it delivered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.core.lifecycle import AliasRecord
from alertbridge.core.plan import AliasWrite
from alertbridge.db import Connection, json_rows


def lock_key(integration: str, alias: str) -> str:
    return f"{integration}\x1f{alias}"


_LOCK = "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) FROM unnest(%(keys)s::text[]) AS k"


async def lock(conn: Connection, integration: str, aliases: Sequence[str]) -> None:
    """Serialize concurrent writers of the same aliases for the rest of the transaction. Keys are taken in
    sorted order, so two transactions never deadlock on them."""
    keys = sorted({lock_key(integration, a) for a in aliases})
    if keys:
        await conn.execute(_LOCK, {"keys": keys})


#: An alias's record (``AliasRecord``'s fields), as ``load`` and ``load_many`` read it.
_RECORD = """
       a.state, a.generation, a.count, a.opened_at, a.acknowledged_at, a.closed_at,
       a.acknowledged_by, a.closed_by, a.closed_in_opsgenie, a.suppressed, a.close_due_at, a.flaps,
       (SELECT g.priority FROM generations g
        WHERE g.integration = a.integration AND g.alias = a.alias AND g.generation = a.generation) AS priority,
       EXISTS (SELECT 1 FROM outbox o
               WHERE o.integration = a.integration AND o.alias = a.alias
                 AND o.generation = a.generation AND o.action = 'create'
                 AND o.status = 'pending') AS create_pending
"""
_LOAD = f"""
SELECT a.alias, {_RECORD}
FROM aliases a WHERE a.integration = %(i)s AND a.alias = ANY(%(aliases)s::text[])
"""


async def load(conn: Connection, integration: str, aliases: Sequence[str]) -> dict[str, AliasRecord]:
    """The lifecycle records of ``aliases`` that exist (missing ones were never seen)."""
    if not aliases:
        return {}
    cur = await conn.execute(_LOAD, {"i": integration, "aliases": list(aliases)})
    return {r.pop("alias"): AliasRecord(**{**r, "flaps": tuple(r["flaps"] or ())}) for r in await cur.fetchall()}


_WRITE = """
INSERT INTO aliases AS a (integration, alias, opsgenie_alias, state, generation, count, first_seen_at, last_seen_at,
                          opened_at, acknowledged_at, closed_at, acknowledged_by, closed_by, closed_in_opsgenie,
                          last_action, last_outbox_id, suppressed, close_due_at, flaps)
SELECT %(i)s, u.alias, u.og, u.state, u.gen, u.count, %(now)s, %(now)s, u.opened_at, u.acked_at, u.closed_at,
       u.acked_by, u.closed_by, u.closed_og, u.action, u.outbox_id, u.suppressed, u.close_due_at,
       coalesce((SELECT array_agg(f::timestamptz) FROM jsonb_array_elements_text(u.flaps) AS f), '{}')
FROM unnest(%(alias)s::text[], %(og)s::text[], %(state)s::text[], %(gen)s::int[], %(count)s::int[],
            %(opened)s::timestamptz[], %(acked)s::timestamptz[], %(closed)s::timestamptz[], %(acked_by)s::text[],
            %(closed_by)s::text[], %(closed_og)s::bool[], %(action)s::text[], %(outbox)s::bigint[],
            %(suppressed)s::bool[], %(close_due)s::timestamptz[], %(flaps)s::jsonb[])
     AS u(alias, og, state, gen, count, opened_at, acked_at, closed_at, acked_by, closed_by, closed_og, action,
          outbox_id, suppressed, close_due_at, flaps)
ORDER BY u.alias
ON CONFLICT (integration, alias) DO UPDATE SET
    suppressed = EXCLUDED.suppressed,
    close_due_at = EXCLUDED.close_due_at,
    flaps = EXCLUDED.flaps,
    acknowledged_by = EXCLUDED.acknowledged_by,
    closed_by = EXCLUDED.closed_by,
    closed_in_opsgenie = EXCLUDED.closed_in_opsgenie,
    tiny_id = CASE WHEN a.generation = EXCLUDED.generation THEN a.tiny_id END,
    opsgenie_alias = EXCLUDED.opsgenie_alias,
    state = EXCLUDED.state,
    generation = EXCLUDED.generation,
    count = EXCLUDED.count,
    last_seen_at = CASE WHEN %(seen)s THEN EXCLUDED.last_seen_at ELSE a.last_seen_at END,
    opened_at = EXCLUDED.opened_at,
    acknowledged_at = EXCLUDED.acknowledged_at,
    closed_at = EXCLUDED.closed_at,
    last_action = EXCLUDED.last_action,
    last_outbox_id = EXCLUDED.last_outbox_id,
    create_request_id = CASE WHEN a.generation = EXCLUDED.generation THEN a.create_request_id END,
    create_confirmed = CASE WHEN a.generation = EXCLUDED.generation THEN a.create_confirmed ELSE false END,
    alert_id = CASE WHEN a.generation = EXCLUDED.generation THEN a.alert_id END
"""


async def write(
    conn: Connection,
    integration: str,
    writes: Sequence[AliasWrite],
    outbox_ids: dict[int, int],
    now: datetime,
    *,
    seen: bool = True,
) -> None:
    """Persist the alias records a plan produced (``outbox_ids``: seq -> outbox id). The caller holds the
    aliases' locks (``lock``) since it loaded them. ``seen=False``: a policy wrote them, not a webhook (the
    expiry clock, ``last_seen_at``, stays where the source left it)."""
    if not writes:
        return
    r = [w.record for w in writes]
    await conn.execute(
        _WRITE,
        {
            "i": integration,
            "now": now,
            "seen": seen,
            "alias": [w.alias for w in writes],
            "og": [w.opsgenie_alias for w in writes],
            "state": [x.state for x in r],
            "gen": [x.generation for x in r],
            "count": [x.count for x in r],
            "opened": [x.opened_at for x in r],
            "acked": [x.acknowledged_at for x in r],
            "closed": [x.closed_at for x in r],
            "acked_by": [x.acknowledged_by for x in r],
            "closed_by": [x.closed_by for x in r],
            "closed_og": [x.closed_in_opsgenie for x in r],
            "action": [w.last_action for w in writes],
            "outbox": [outbox_ids.get(w.last_seq) for w in writes],
            "suppressed": [x.suppressed for x in r],
            "close_due": [x.close_due_at for x in r],
            "flaps": [Jsonb([t.isoformat() for t in x.flaps]) for x in r],
        },
    )


# --- group commit (app/ingest.py ``commit``): the aliases of many webhooks at once -------------------------------


async def lock_many(conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
    """``lock`` for (integration, alias) pairs of several integrations, in one statement and the same global order
    (sorted lock keys), so a batch and a single webhook never deadlock either."""
    ordered = sorted({lock_key(i, a) for i, a in keys})
    if ordered:
        await conn.execute(_LOCK, {"keys": ordered})


_LOAD_MANY = f"""
SELECT a.integration, a.alias, {_RECORD}
FROM unnest(%(i)s::text[], %(aliases)s::text[]) AS k(integration, alias)
JOIN aliases a ON a.integration = k.integration AND a.alias = k.alias
"""


async def load_many(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> Callable[[], Awaitable[dict[tuple[str, str], AliasRecord]]]:
    """``load`` for (integration, alias) pairs of several integrations. Sends the statement (in a pipeline,
    nothing waits; send it after ``lock_many``: each statement of a pipeline sees what committed before it
    started); the returned function reads the records."""
    unique = sorted(set(keys))
    cur = (
        await conn.execute(_LOAD_MANY, {"i": [k[0] for k in unique], "aliases": [k[1] for k in unique]})
        if unique
        else None
    )

    async def records() -> dict[tuple[str, str], AliasRecord]:
        if cur is None:
            return {}
        out: dict[tuple[str, str], AliasRecord] = {}
        for r in await cur.fetchall():
            key = (r.pop("integration"), r.pop("alias"))
            out[key] = AliasRecord(**{**r, "flaps": tuple(r["flaps"] or ())})
        return out

    return records


_WRITE_MANY = """
INSERT INTO aliases AS a (integration, alias, opsgenie_alias, state, generation, count, first_seen_at, last_seen_at,
                          opened_at, acknowledged_at, closed_at, acknowledged_by, closed_by, closed_in_opsgenie,
                          last_action, last_outbox_id, suppressed, close_due_at, flaps)
SELECT u.integration, u.alias, u.og, u.state, u.gen, u.count, %(now)s, %(now)s, u.opened_at, u.acked_at, u.closed_at,
       u.acked_by, u.closed_by, u.closed_og, u.action, u.outbox_id, u.suppressed, u.close_due_at, u.flaps
FROM json_to_recordset(%(rows)s::json)
     AS u(integration text, alias text, og text, state text, gen int, count int, opened_at timestamptz,
          acked_at timestamptz, closed_at timestamptz, acked_by text, closed_by text, closed_og bool, action text,
          outbox_id bigint, suppressed bool, close_due_at timestamptz, flaps timestamptz[])
ORDER BY u.integration, u.alias
"""
# Rows are locked in (integration, alias) order, as outbox.record_delivered_many locks them: never a deadlock.
_WRITE_MANY += _WRITE[_WRITE.index("ON CONFLICT") :]


async def write_many(conn: Connection, writes: Sequence[tuple[str, AliasWrite, int | None]], now: datetime) -> None:
    """``write`` for the aliases of a batch: (integration, final write, its last outbox id), one per alias (the
    caller merges the writes of several webhooks to the same alias: a statement may touch a row once)."""
    if not writes:
        return
    rows = []
    for integration, w, outbox_id in writes:
        x = w.record
        rows.append(
            {
                "integration": integration,
                "alias": w.alias,
                "og": w.opsgenie_alias,
                "state": x.state,
                "gen": x.generation,
                "count": x.count,
                "opened_at": x.opened_at,
                "acked_at": x.acknowledged_at,
                "closed_at": x.closed_at,
                "acked_by": x.acknowledged_by,
                "closed_by": x.closed_by,
                "closed_og": x.closed_in_opsgenie,
                "action": w.last_action,
                "outbox_id": outbox_id,
                "suppressed": x.suppressed,
                "close_due_at": x.close_due_at,
                "flaps": [t.isoformat() for t in x.flaps],  # a JSON array becomes timestamptz[]
            }
        )
    await conn.execute(_WRITE_MANY, {"now": now, "seen": True, "rows": json_rows(rows)})


# --- what delivery learns from OpsGenie ------------------------------------------------------------------

_AFTER_DELIVERY = """
UPDATE aliases SET last_request_id = %(rid)s,
       create_request_id = CASE WHEN %(is_create)s THEN %(rid)s ELSE create_request_id END,
       create_confirmed = CASE WHEN %(is_create)s THEN false ELSE create_confirmed END
WHERE integration = %(i)s AND alias = %(a)s AND generation = %(g)s
"""


async def after_delivery(
    conn: Connection, integration: str, alias: str, generation: int, *, action: str, request_id: str | None
) -> None:
    await conn.execute(
        _AFTER_DELIVERY,
        {"rid": request_id, "is_create": action == "create", "i": integration, "a": alias, "g": generation},
    )


_CONFIRM_CREATE = """
WITH a AS (
    UPDATE aliases SET create_confirmed = true, alert_id = COALESCE(%(alert_id)s, alert_id),
                       tiny_id = COALESCE(%(tiny_id)s, tiny_id)
    WHERE integration = %(i)s AND alias = %(a)s AND generation = %(g)s
)
UPDATE generations SET alert_id = COALESCE(%(alert_id)s, alert_id), tiny_id = COALESCE(%(tiny_id)s, tiny_id),
                       updated_at = now()
WHERE integration = %(i)s AND alias = %(a)s AND generation = %(g)s
"""


async def confirm_create(
    conn: Connection, integration: str, alias: str, generation: int, alert_id: str | None, tiny_id: str | None = None
) -> None:
    """OpsGenie has processed this generation's create (request status, or its Create callback)."""
    await conn.execute(
        _CONFIRM_CREATE, {"alert_id": alert_id, "tiny_id": tiny_id, "i": integration, "a": alias, "g": generation}
    )


async def get(conn: Connection, integration: str, alias: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT * FROM aliases WHERE integration = %(i)s AND alias = %(a)s", {"i": integration, "a": alias}
    )
    return await cur.fetchone()


async def count_by_state(conn: Connection) -> dict[tuple[str, str], int]:
    """(integration, state) -> number of aliases (for the alertbridge_aliases gauge)."""
    cur = await conn.execute("SELECT integration, state, count(*) AS n FROM aliases GROUP BY integration, state")
    return {(str(r["integration"]), str(r["state"])): int(r["n"]) for r in await cur.fetchall()}


# --- what the sweeper looks for (app/policy_jobs.py) ----------------------------------------------------------


async def stale(conn: Connection, integration: str, *, quiet_since: datetime, limit: int) -> list[str]:
    """Live aliases with no webhook (and no expiry action) since ``quiet_since``, oldest first."""
    cur = await conn.execute(
        "SELECT alias FROM aliases WHERE integration = %(i)s AND state <> 'closed' AND last_seen_at <= %(t)s "
        "AND (expired_at IS NULL OR expired_at <= %(t)s) ORDER BY last_seen_at LIMIT %(n)s",
        {"i": integration, "t": quiet_since, "n": limit},
    )
    return [r["alias"] for r in await cur.fetchall()]


async def withheld(conn: Connection, integration: str, *, limit: int) -> list[tuple[str, dict[str, Any]]]:
    """Live aliases whose create a silence withheld, each with the fields of its last create (to match silences)."""
    cur = await conn.execute(
        "SELECT a.alias, o.payload FROM aliases a "
        "CROSS JOIN LATERAL (SELECT payload FROM outbox o WHERE o.integration = a.integration AND o.alias = a.alias "
        "                    AND o.generation = a.generation AND o.action = 'create' ORDER BY o.id DESC LIMIT 1) o "
        "WHERE a.integration = %(i)s AND a.suppressed AND a.state <> 'closed' ORDER BY a.last_seen_at LIMIT %(n)s",
        {"i": integration, "n": limit},
    )
    return [(r["alias"], r["payload"]) for r in await cur.fetchall()]


async def mark_expired(conn: Connection, integration: str, alias: str, at: datetime) -> None:
    """Expiry noted (or re-sent) the alert: its clock starts again."""
    await conn.execute(
        "UPDATE aliases SET expired_at = %(at)s WHERE integration = %(i)s AND alias = %(a)s",
        {"at": at, "i": integration, "a": alias},
    )


async def policy_counts(conn: Connection) -> tuple[int, int]:
    """(live aliases withheld by a silence, closes held by close_delay) for the metrics gauges."""
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM aliases WHERE suppressed AND state <> 'closed') AS withheld, "
        "(SELECT count(*) FROM outbox WHERE status = 'pending' AND reason_code = 'close_delayed' "
        " AND next_attempt_at > now()) AS held"
    )
    row = await cur.fetchone()
    return (int(row["withheld"]), int(row["held"])) if row else (0, 0)


async def search(
    conn: Connection, *, integration: str | None, alias: str | None, text: str | None, limit: int = 50
) -> list[dict[str, Any]]:
    """Aliases by integration, a part of the alias, or a text of their alerts (message), newest first."""
    cur = await conn.execute(
        "SELECT a.integration, a.alias, a.opsgenie_alias, a.state, a.generation, a.count, a.last_seen_at "
        "FROM aliases a WHERE (%(i)s::text IS NULL OR a.integration = %(i)s) "
        "AND (%(a)s::text IS NULL OR strpos(lower(a.alias), lower(%(a)s)) > 0) "
        "AND (%(t)s::text IS NULL OR EXISTS (SELECT 1 FROM outbox o WHERE o.integration = a.integration "
        "     AND o.alias = a.alias AND strpos(lower(o.payload::text), lower(%(t)s)) > 0)) "
        "ORDER BY a.last_seen_at DESC LIMIT %(n)s",
        {"i": integration or None, "a": alias or None, "t": text or None, "n": limit},
    )
    return await cur.fetchall()


async def open_counts(conn: Connection) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT integration, count(*) AS n FROM aliases WHERE state <> 'closed' GROUP BY integration"
    )
    return {r["integration"]: int(r["n"]) for r in await cur.fetchall()}
