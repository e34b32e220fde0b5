"""``outbox``: one row per rendered event. Rows in ``pending``/``in_flight`` are the delivery queue; the rest are
history. Retry state lives on the row (``attempts``, ``next_attempt_at``), so a restart or a ``kill -9`` loses
nothing.

Claiming follows procrastinate: ``FOR UPDATE SKIP LOCKED`` so several workers can share one Postgres, plus a
``NOT EXISTS`` clause that skips a row while an older row of the same alias is unfinished — so OpsGenie sees
create -> acknowledge -> close in order for every alias, across retries and workers. Rows of a target that is
paused (429) or down (circuit breaker, ``store/targets.py``) are not claimed, except one probe at a time. What a
dead row means for the later rows of its alias, and what a replay of dead rows may send, is decided in
``core/delivery_rules.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.core.delivery_rules import AliasNow, CreateFacts, DeadRow, DeliveredRow, ReplayStep, plan_replay
from alertbridge.db import Connection, json_rows
from alertbridge.store import targets

NOTIFY_CHANNEL = "alertbridge_outbox"


@dataclass(frozen=True)
class NewRow:
    seq: int
    action: str
    alias: str
    opsgenie_alias: str
    generation: int
    payload: dict[str, Any]
    cuts: list[dict[str, Any]]
    decision: str
    reason: str
    reason_code: str | None
    status: str  # pending | skipped
    not_before: datetime | None = None  # a delayed close: due then (its retry age counts from then too)
    priority: int = 3  # 1..5: the order under pacing


_INSERT = """
INSERT INTO outbox (inbound_id, replay_id, seq, integration, action, alias, opsgenie_alias, generation, payload,
                    cuts, decision, reason, reason_code, traceparent, status, next_attempt_at, queued_at, priority)
SELECT %(inbound_id)s, %(replay_id)s, u.seq, %(integration)s, u.action, u.alias, u.og, u.gen, u.payload, u.cuts,
       u.decision, u.reason, u.code, %(traceparent)s, u.status, coalesce(u.due, now()), coalesce(u.due, now()),
       u.priority
FROM unnest(%(seq)s::smallint[], %(action)s::text[], %(alias)s::text[], %(og)s::text[], %(gen)s::int[],
            %(payload)s::jsonb[], %(cuts)s::jsonb[], %(decision)s::text[], %(reason)s::text[], %(code)s::text[],
            %(status)s::text[], %(due)s::timestamptz[], %(priority)s::smallint[])
     AS u(seq, action, alias, og, gen, payload, cuts, decision, reason, code, status, due, priority)
ORDER BY u.seq
RETURNING id, seq
"""


async def insert(
    conn: Connection,
    *,
    integration: str,
    inbound_id: int | None,
    rows: Sequence[NewRow],
    traceparent: str | None,
    replay_id: int | None = None,
) -> dict[int, int]:
    """Insert the rows of one webhook (``inbound_id`` None: rows a policy made); returns seq -> outbox id."""
    if not rows:
        return {}
    cur = await conn.execute(
        _INSERT,
        {
            "inbound_id": inbound_id,
            "replay_id": replay_id,
            "integration": integration,
            "traceparent": traceparent,
            "seq": [r.seq for r in rows],
            "action": [r.action for r in rows],
            "alias": [r.alias for r in rows],
            "og": [r.opsgenie_alias for r in rows],
            "gen": [r.generation for r in rows],
            "payload": [Jsonb(r.payload) for r in rows],
            "cuts": [Jsonb(r.cuts) for r in rows],
            "decision": [r.decision for r in rows],
            "reason": [r.reason for r in rows],
            "code": [r.reason_code for r in rows],
            "status": [r.status for r in rows],
            "due": [r.not_before for r in rows],
            "priority": [r.priority for r in rows],
        },
    )
    return {int(r["seq"]): int(r["id"]) for r in await cur.fetchall()}


_CANCELLED = """
UPDATE outbox SET status = 'skipped', last_outcome = 'cancelled',
       last_error = 'not sent: the alert fired again within close_delay (a flap)'
"""
_CANCEL_DELAYED_CLOSES = (
    _CANCELLED
    + """
WHERE integration = %(i)s AND alias = ANY(%(aliases)s::text[]) AND action = 'close' AND status = 'pending'
  AND reason_code = 'close_delayed'
RETURNING alias
"""
)
_CANCEL_CLOSES = _CANCELLED + "WHERE id = ANY(%(ids)s::bigint[]) AND status = 'pending'"


async def cancel_closes(conn: Connection, ids: Sequence[int]) -> None:
    """The held closes ``ids``, written earlier in the caller's transaction (a batch of webhooks), are cancelled by
    a later webhook of the same batch (a flap). No worker can have taken them: they are not committed yet."""
    if ids:
        await conn.execute(_CANCEL_CLOSES, {"ids": list(ids)})


async def cancel_delayed_closes(conn: Connection, integration: str, aliases: Sequence[str]) -> set[str]:
    """A flap: the held closes of ``aliases`` are not sent (caller's transaction, holding the aliases' locks).
    Returns the aliases whose close was cancelled; one missing had its close taken by a worker already (its delay
    ran out meanwhile), so it is being sent."""
    if not aliases:
        return set()
    cur = await conn.execute(_CANCEL_DELAYED_CLOSES, {"i": integration, "aliases": list(aliases)})
    return {r["alias"] for r in await cur.fetchall()}


# --- group commit (app/ingest.py ``commit``) ----------------------------------------------------------------

_RESERVE = "SELECT nextval('outbox_id_seq') AS id FROM generate_series(1, %(n)s)"


async def reserve_ids(conn: Connection, n: int) -> Callable[[], Awaitable[list[int]]]:
    """``n`` outbox ids, ascending. Send it after the aliases' locks are held (``aliases.lock_many``): ids then
    follow the order in which transactions decided about an alias, which is the order the claim delivers in."""
    cur = await conn.execute(_RESERVE, {"n": n}) if n else None

    async def ids() -> list[int]:
        return sorted(int(r["id"]) for r in await cur.fetchall()) if cur is not None else []

    return ids


@dataclass(frozen=True)
class BatchRow:
    """An outbox row of a batch: its reserved id and its webhook."""

    id: int
    inbound_id: int
    integration: str
    traceparent: str | None
    row: NewRow


_INSERT_MANY = """
INSERT INTO outbox (id, inbound_id, seq, integration, action, alias, opsgenie_alias, generation, payload, cuts,
                    decision, reason, reason_code, traceparent, status, next_attempt_at, queued_at, priority)
SELECT u.id, u.inbound_id, u.seq, u.integration, u.action, u.alias, u.og, u.gen, u.payload, u.cuts, u.decision,
       u.reason, u.code, u.traceparent, u.status, coalesce(u.due, now()), coalesce(u.due, now()), u.priority
FROM json_to_recordset(%(rows)s::json)
     AS u(id bigint, inbound_id bigint, seq smallint, integration text, action text, alias text, og text, gen int,
          payload jsonb, cuts jsonb, decision text, reason text, code text, traceparent text, status text,
          due timestamptz, priority smallint)
ORDER BY u.id
"""


async def insert_many(conn: Connection, rows: Sequence[BatchRow]) -> None:
    """The outbox rows of a batch of webhooks, with the ids ``reserve_ids`` gave them, in one statement."""
    if not rows:
        return
    data = []
    for b in rows:
        x = b.row
        data.append(
            {
                "id": b.id,
                "inbound_id": b.inbound_id,
                "seq": x.seq,
                "integration": b.integration,
                "action": x.action,
                "alias": x.alias,
                "og": x.opsgenie_alias,
                "gen": x.generation,
                "payload": x.payload,
                "cuts": x.cuts,
                "decision": x.decision,
                "reason": x.reason,
                "code": x.reason_code,
                "traceparent": b.traceparent,
                "status": x.status,
                "due": x.not_before,
                "priority": x.priority,
            }
        )
    await conn.execute(_INSERT_MANY, {"rows": json_rows(data)})


async def notify(conn: Connection) -> None:
    """Wake workers; Postgres delivers the notification when the transaction commits."""
    await conn.execute(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')")


@dataclass(frozen=True)
class Claimed:
    id: int
    integration: str
    action: str
    alias: str
    opsgenie_alias: str
    generation: int
    payload: dict[str, Any]
    traceparent: str | None
    attempts: int
    age: float  # seconds since queued
    created_at: datetime | None = None  # when the webhook was accepted (accept-to-delivered time)
    reclaimed: bool = False  # its previous worker's lease expired (that worker died or hung)
    probe: bool = False  # sent as the probe of a down target
    target_dirty: bool = True  # its target had failures to reset (or was not up) when the row was claimed


_RETURNING = """
RETURNING o.id, o.integration, o.action, o.alias, o.opsgenie_alias, o.generation, o.payload, o.traceparent,
          o.attempts, extract(epoch FROM now() - o.queued_at)::float8 AS age, due.was = 'in_flight' AS reclaimed,
          o.created_at
"""
_RETURNING_CLAIM = _RETURNING.rstrip() + f", {targets.dirty_sql('o.integration')} AS target_dirty\n"

_OLDER_UNFINISHED = """EXISTS (
          SELECT 1 FROM outbox p
          WHERE p.integration = o.integration AND p.alias = o.alias AND p.id < o.id
            AND p.status IN ('pending', 'in_flight'))"""


def _claim_sql(which: str, order: str, limit: str = "%(limit)s", returning: str = _RETURNING_CLAIM) -> str:
    """A claim: due rows (``which``: the extra conditions), never one behind an unfinished older row of its alias,
    locked with SKIP LOCKED and leased to the worker in one statement."""
    return f"""
WITH due AS (
    SELECT o.id, o.status AS was FROM outbox o
    WHERE o.status IN ('pending', 'in_flight')
      AND (o.status = 'pending' OR o.lease_until < now())
      {which}
      AND NOT {_OLDER_UNFINISHED}
    ORDER BY {order}
    LIMIT {limit}
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE outbox o SET status = 'in_flight', claimed_by = %(worker)s,
                    lease_until = now() + make_interval(secs => %(lease)s)
FROM due WHERE o.id = due.id
{returning}
"""


_CLAIM = _claim_sql(
    f"""AND o.next_attempt_at <= now()
      AND o.integration NOT IN ({targets.HELD_INTEGRATIONS})
      AND o.integration <> ALL(%(paced)s::text[])""",
    "o.next_attempt_at, o.id",
)


async def claim(
    conn: Connection,
    *,
    worker: str,
    limit: int,
    lease_seconds: float,
    target_of: dict[str, str] | None = None,
    paced: Sequence[str] = (),
) -> list[Claimed]:
    """Due rows, oldest first, never one behind an unfinished older row of its alias. ``target_of``: integration ->
    target key; rows of a paused or down target are left alone, and so are the rows of ``paced`` integrations
    (their target's token bucket decides: ``claim_paced``)."""
    target_of = target_of or {}
    cur = await conn.execute(
        _CLAIM,
        {
            "limit": limit,
            "worker": worker,
            "lease": lease_seconds,
            "integrations": list(target_of),
            "targets": list(target_of.values()),
            "paced": list(paced),
        },
    )
    claimed = [Claimed(**r) for r in await cur.fetchall()]
    claimed.sort(key=lambda c: c.id)
    return claimed


_CLAIM_PACED = _claim_sql(
    f"""AND o.next_attempt_at <= now()
      AND o.integration = ANY(%(mine)s::text[])
      AND o.integration NOT IN ({targets.HELD_INTEGRATIONS})""",
    "o.priority, o.next_attempt_at, o.id",
)


async def claim_paced(
    conn: Connection,
    *,
    worker: str,
    limit: int,
    lease_seconds: float,
    integrations: Sequence[str],
    target_of: dict[str, str],
) -> list[Claimed]:
    """Up to ``limit`` due rows of one paced target's ``integrations`` (``limit``: the tokens its bucket gave),
    highest priority first (P1 before P5; an alias's rows still go in order: a row never passes an unfinished
    older row of its alias)."""
    if limit <= 0:
        return []
    cur = await conn.execute(
        _CLAIM_PACED,
        {
            "limit": limit,
            "worker": worker,
            "lease": lease_seconds,
            "mine": list(integrations),
            "integrations": list(target_of),
            "targets": list(target_of.values()),
        },
    )
    claimed = [Claimed(**r) for r in await cur.fetchall()]
    claimed.sort(key=lambda c: c.id)
    return claimed


_CLAIM_PROBE = _claim_sql("AND o.integration = ANY(%(integrations)s::text[])", "o.id", "1", _RETURNING)


async def claim_probe(
    conn: Connection, *, worker: str, integrations: list[str], lease_seconds: float
) -> Claimed | None:
    """The oldest unblocked row of a down target's integrations, whatever its own retry time: the one probe."""
    cur = await conn.execute(_CLAIM_PROBE, {"integrations": integrations, "worker": worker, "lease": lease_seconds})
    row = await cur.fetchone()
    return Claimed(**row, probe=True) if row else None


_MINE = "id = %(id)s AND status = 'in_flight' AND claimed_by = %(worker)s"

_MARK_DELIVERED = f"""
UPDATE outbox SET status = 'delivered', delivered_at = now(), request_id = %(rid)s, attempts = %(n)s,
                  last_outcome = 'delivered', last_error = NULL, lease_until = NULL
WHERE {_MINE}
"""


async def mark_delivered(conn: Connection, row_id: int, request_id: str | None, attempts: int, *, worker: str) -> bool:
    """False when the row is no longer ours (its lease expired and another worker took it)."""
    cur = await conn.execute(_MARK_DELIVERED, {"id": row_id, "rid": request_id, "n": attempts, "worker": worker})
    return cur.rowcount == 1


#: A delivered send in ONE statement (autocommit, one round trip): the attempt row completed, the outbox row
#: delivered, the alias told OpsGenie's request id — the last only if the row was still ours. The common path of
#: delivery; spelled out here (it touches delivery_attempts and aliases too) so that it is one statement.
_DELIVERED = f"""
WITH att AS (
    UPDATE delivery_attempts SET latency_ms = %(latency_ms)s, http_status = %(http_status)s, outcome = %(outcome)s,
           reason = %(reason)s, request_id = %(attempt_rid)s, response_snippet = %(response_snippet)s,
           finished_at = now()
    WHERE id = %(attempt_id)s),
o AS ({_MARK_DELIVERED} RETURNING id),
al AS (
    UPDATE aliases SET last_request_id = %(rid)s,
           create_request_id = CASE WHEN %(is_create)s THEN %(rid)s ELSE create_request_id END,
           create_confirmed = CASE WHEN %(is_create)s THEN false ELSE create_confirmed END
    WHERE integration = %(i)s AND alias = %(a)s AND generation = %(g)s AND EXISTS (SELECT 1 FROM o))
SELECT count(*) AS n FROM o
"""


async def record_delivered(
    conn: Connection, row: Claimed, *, request_id: str | None, attempts: int, worker: str, attempt: dict[str, Any]
) -> bool:
    """``mark_delivered`` + ``aliases.after_delivery`` + ``attempts.finish`` at once. False when the row is no
    longer ours. ``attempt``: the finished attempt's fields (``attempts.Attempt.__dict__``)."""
    cur = await conn.execute(
        _DELIVERED,
        {
            "id": row.id,
            "rid": request_id,
            "n": attempts,
            "worker": worker,
            "is_create": row.action == "create",
            "i": row.integration,
            "a": row.alias,
            "g": row.generation,
            "attempt_id": attempt["id"],
            "attempt_rid": attempt["request_id"],
            **{k: attempt[k] for k in ("latency_ms", "http_status", "outcome", "reason", "response_snippet")},
        },
    )
    r = await cur.fetchone()
    return bool(r and r["n"])


@dataclass(frozen=True)
class Delivered:
    """A delivered send to record (``record_delivered`` for many rows: ``record_delivered_many``)."""

    row: Claimed
    request_id: str | None
    attempts: int
    attempt: dict[str, Any]  # the finished attempt's fields (``attempts.Attempt.__dict__``)


_DELIVERED_MANY = """
WITH u AS (
    SELECT * FROM json_to_recordset(%(rows)s::json)
         AS u(id bigint, rid text, n int, is_create bool, integration text, alias text, generation int,
              attempt_id bigint, latency_ms float8, http_status int, outcome text, reason text, attempt_rid text,
              snippet text)),
att AS (
    UPDATE delivery_attempts d SET latency_ms = u.latency_ms, http_status = u.http_status, outcome = u.outcome,
           reason = u.reason, request_id = u.attempt_rid, response_snippet = u.snippet, finished_at = now()
    FROM u WHERE d.id = u.attempt_id),
o AS (
    UPDATE outbox o SET status = 'delivered', delivered_at = now(), request_id = u.rid, attempts = u.n,
                        last_outcome = 'delivered', last_error = NULL, lease_until = NULL
    FROM u WHERE o.id = u.id AND o.status = 'in_flight' AND o.claimed_by = %(worker)s
    RETURNING o.id),
locked AS (  -- the aliases' rows locked in (integration, alias) order, as a batch of webhooks writes them
    SELECT a.integration, a.alias FROM aliases a JOIN u ON a.integration = u.integration AND a.alias = u.alias
    ORDER BY a.integration, a.alias
    FOR UPDATE OF a),
al AS (
    UPDATE aliases a SET last_request_id = u.rid,
           create_request_id = CASE WHEN u.is_create THEN u.rid ELSE a.create_request_id END,
           create_confirmed = CASE WHEN u.is_create THEN false ELSE a.create_confirmed END
    FROM u JOIN o ON o.id = u.id JOIN locked l ON l.integration = u.integration AND l.alias = u.alias
    WHERE a.integration = u.integration AND a.alias = u.alias AND a.generation = u.generation)
SELECT id FROM o
"""


async def record_delivered_many(conn: Connection, worker: str, items: Sequence[Delivered]) -> set[int]:
    """``record_delivered`` for several rows in one statement. Their aliases' rows are locked in one global order
    (as a batch of webhooks writes them), so this never deadlocks with ingest. Returns the ids of the rows that
    were still ours. (No two rows of one alias: the claim never has two in flight.)"""
    if not items:
        return set()
    rows = []
    for d in items:
        r, a = d.row, d.attempt
        rows.append(
            {
                "id": r.id,
                "rid": d.request_id,
                "n": d.attempts,
                "is_create": r.action == "create",
                "integration": r.integration,
                "alias": r.alias,
                "generation": r.generation,
                "attempt_id": a["id"],
                "latency_ms": a["latency_ms"],
                "http_status": a["http_status"],
                "outcome": a["outcome"],
                "reason": a["reason"],
                "attempt_rid": a["request_id"],
                "snippet": a["response_snippet"],
            }
        )
    cur = await conn.execute(_DELIVERED_MANY, {"worker": worker, "rows": json_rows(rows)})
    return {int(r["id"]) for r in await cur.fetchall()}


_MARK_RETRY = f"""
UPDATE outbox SET status = 'pending', next_attempt_at = now() + make_interval(secs => %(delay)s),
                  attempts = %(n)s, last_outcome = %(outcome)s, last_error = %(error)s,
                  lease_until = NULL, claimed_by = NULL
WHERE {_MINE}
"""


async def mark_retry(
    conn: Connection, row_id: int, *, delay: float, outcome: str, error: str, attempts: int, worker: str
) -> bool:
    cur = await conn.execute(
        _MARK_RETRY,
        {"id": row_id, "delay": delay, "n": attempts, "outcome": outcome, "error": error, "worker": worker},
    )
    return cur.rowcount == 1


_MARK_DEAD = f"""
UPDATE outbox SET status = 'dead', attempts = %(n)s, last_outcome = %(outcome)s, last_error = %(error)s,
                  lease_until = NULL
WHERE {_MINE}
"""


async def mark_dead(conn: Connection, row_id: int, *, outcome: str, error: str, attempts: int, worker: str) -> bool:
    cur = await conn.execute(
        _MARK_DEAD, {"id": row_id, "n": attempts, "outcome": outcome, "error": error, "worker": worker}
    )
    return cur.rowcount == 1


_DEFER = f"""
UPDATE outbox SET status = 'pending', lease_until = NULL, claimed_by = NULL,
                  next_attempt_at = GREATEST(now(), COALESCE(%(until)s, now()))
WHERE {_MINE}
"""


async def defer(conn: Connection, row_id: int, *, worker: str, until: Any = None) -> None:
    """Back to the queue untouched (no attempt counted): its target took no request when it was about to go."""
    await conn.execute(_DEFER, {"id": row_id, "worker": worker, "until": until})


async def release(conn: Connection, ids: Sequence[int]) -> None:
    """Give claimed rows back to the queue untouched (graceful shutdown)."""
    if ids:
        await conn.execute(
            "UPDATE outbox SET status = 'pending', lease_until = NULL, claimed_by = NULL "
            "WHERE id = ANY(%(ids)s::bigint[]) AND status = 'in_flight'",
            {"ids": list(ids)},
        )


_RESUME = """
UPDATE outbox SET next_attempt_at = now()
WHERE integration = ANY(%(integrations)s::text[]) AND status = 'pending' AND next_attempt_at > now()
"""


async def resume(conn: Connection, integrations: Sequence[str]) -> int:
    """A down target is back: every row waiting for it is due now (the claim keeps per-alias order)."""
    cur = await conn.execute(_RESUME, {"integrations": list(integrations)})
    return cur.rowcount


_EXPIRE = """
UPDATE outbox SET status = 'dead', last_outcome = 'expired',
       last_error = 'gave up: still undelivered after max_age_seconds while its target was down'
WHERE id IN (
    SELECT id FROM outbox
    WHERE integration = ANY(%(integrations)s::text[]) AND status = 'pending'
      AND last_outcome IS DISTINCT FROM 'config_error'
      AND queued_at < now() - make_interval(secs => %(max_age)s)
    ORDER BY id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
"""


async def expire(conn: Connection, integrations: Sequence[str], *, max_age: float, limit: int = 1000) -> int:
    """Rows of a down target that reached ``max_age`` without being tried die, as a failing row would."""
    cur = await conn.execute(_EXPIRE, {"integrations": list(integrations), "max_age": max_age, "limit": limit})
    return cur.rowcount


_MARK_BLOCKED = f"""
UPDATE outbox SET status = 'dead', last_outcome = 'blocked', last_error = %(error)s, lease_until = NULL
WHERE {_MINE}
"""


async def mark_blocked(conn: Connection, row_id: int, *, error: str, worker: str) -> None:
    """Not sent, dies with the dead create of its alert (``core.delivery_rules.before_send``)."""
    await conn.execute(_MARK_BLOCKED, {"id": row_id, "error": error, "worker": worker})


_CREATE_FACTS = """
SELECT coalesce(bool_or(o.status = 'delivered'), false) AS delivered,
       max(o.id) FILTER (WHERE o.status = 'dead') AS dead_id,
       (SELECT a.create_request_id FROM aliases a
        WHERE a.integration = %(i)s AND a.alias = %(a)s AND a.generation = %(g)s
          AND a.create_request_id IS NOT NULL AND NOT a.create_confirmed) AS to_confirm
FROM outbox o
WHERE o.integration = %(i)s AND o.alias = %(a)s AND o.generation = %(g)s AND o.action = 'create' AND o.id < %(id)s
"""


async def create_facts(conn: Connection, row: Claimed) -> tuple[CreateFacts, str | None]:
    """What happened to the older creates of the row's alert (its alias and generation), and the request id of
    its create if OpsGenie has not been seen to process it yet (``aliases.create_request_id``; one round trip,
    as ``aliases.load`` reads the outbox)."""
    cur = await conn.execute(_CREATE_FACTS, {"i": row.integration, "a": row.alias, "g": row.generation, "id": row.id})
    r = await cur.fetchone()
    if r is None:
        return CreateFacts(), None
    return CreateFacts(bool(r["delivered"]), r["dead_id"]), r["to_confirm"]


async def latest_create(conn: Connection, integration: str, alias: str, generation: int) -> dict[str, Any] | None:
    """The payload of the newest create of an alert, sent or not (what a policy re-sends or sends late)."""
    cur = await conn.execute(
        "SELECT payload FROM outbox WHERE integration = %(i)s AND alias = %(a)s AND generation = %(g)s "
        "AND action = 'create' ORDER BY id DESC LIMIT 1",
        {"i": integration, "a": alias, "g": generation},
    )
    row = await cur.fetchone()
    return row["payload"] if row else None


# --- replaying dead rows ---------------------------------------------------------------------------------------

_DEAD = """
SELECT o.id, o.integration, o.alias, o.action, o.generation FROM outbox o
WHERE o.status = 'dead'
  AND (%(integration)s::text IS NULL OR o.integration = %(integration)s::text)
  AND (%(ids)s::bigint[] IS NULL OR EXISTS (   -- chosen rows bring the other dead rows of their alert along
        SELECT 1 FROM outbox c
        WHERE c.id = ANY(%(ids)s::bigint[]) AND c.status = 'dead'
          AND c.integration = o.integration AND c.alias = o.alias AND c.generation = o.generation))
ORDER BY o.id
FOR UPDATE OF o
"""

_ALIAS_FACTS = """
SELECT k.integration, k.alias, a.state, a.generation,
       coalesce((SELECT jsonb_agg(jsonb_build_array(d.id, d.action, d.generation))
                 FROM outbox d
                 WHERE d.integration = k.integration AND d.alias = k.alias AND d.status = 'delivered'
                   AND d.id > k.first_id), '[]'::jsonb) AS delivered
FROM unnest(%(integrations)s::text[], %(aliases)s::text[], %(first)s::bigint[]) AS k(integration, alias, first_id)
LEFT JOIN aliases a ON a.integration = k.integration AND a.alias = k.alias
"""

_REQUEUE = """
UPDATE outbox SET status = 'pending', next_attempt_at = now(), queued_at = now(),
                  lease_until = NULL, claimed_by = NULL
WHERE id = ANY(%(ids)s::bigint[]) AND status = 'dead'
"""

_SUPERSEDE = """
UPDATE outbox SET status = 'skipped', last_outcome = 'superseded', last_error = u.reason
FROM unnest(%(ids)s::bigint[], %(reasons)s::text[]) AS u(id, reason)
WHERE outbox.id = u.id AND outbox.status = 'dead'
"""


async def replay_dead(
    conn: Connection, *, ids: Iterable[int] | None = None, integration: str | None = None
) -> list[ReplayStep]:
    """``alertbridge replay --dead``: each dead row is re-queued (with a fresh retry age) or, when newer history
    makes sending it wrong now, marked ``skipped`` / ``superseded`` with the reason (``core.delivery_rules``).
    Choosing rows by id brings the other dead rows of the same alert along (a create and the close that died
    with it go together). Call inside a transaction."""
    cur = await conn.execute(_DEAD, {"ids": list(ids) if ids is not None else None, "integration": integration})
    dead = await cur.fetchall()
    if not dead:
        return []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in dead:
        groups.setdefault((r["integration"], r["alias"]), []).append(r)
    keys = list(groups)
    cur = await conn.execute(
        _ALIAS_FACTS,
        {
            "integrations": [k[0] for k in keys],
            "aliases": [k[1] for k in keys],
            "first": [min(r["id"] for r in groups[k]) for k in keys],
        },
    )
    steps: list[ReplayStep] = []
    for f in await cur.fetchall():
        rows = groups[(f["integration"], f["alias"])]
        alias = AliasNow(f["state"], f["generation"]) if f["state"] is not None else None
        delivered = [DeliveredRow(int(i), a, int(g)) for i, a, g in f["delivered"]]
        steps += plan_replay([DeadRow(r["id"], r["action"], r["generation"]) for r in rows], alias, delivered)
    steps.sort(key=lambda s: s.id)
    requeue = [s.id for s in steps if s.requeue]
    superseded = [s for s in steps if not s.requeue]
    if requeue:
        await conn.execute(_REQUEUE, {"ids": requeue})
        await notify(conn)
    if superseded:
        await conn.execute(_SUPERSEDE, {"ids": [s.id for s in superseded], "reasons": [s.reason for s in superseded]})
    return steps


async def requeue_dead(
    conn: Connection, *, ids: Iterable[int] | None = None, integration: str | None = None
) -> list[int]:
    """``replay_dead``, answering only the ids that were re-queued."""
    return [s.id for s in await replay_dead(conn, ids=ids, integration=integration) if s.requeue]


# --- gauges (read when /metrics is scraped) ------------------------------------------------------------------


async def count_by_status(conn: Connection) -> dict[str, int]:
    """Rows per status (the caller sets a statement timeout: this reads the whole table)."""
    cur = await conn.execute("SELECT status, count(*) AS n FROM outbox GROUP BY status")
    return {str(r["status"]): int(r["n"]) for r in await cur.fetchall()}


async def oldest_pending_seconds(conn: Connection) -> float:
    """Age of the oldest row waiting for delivery (since it was queued or re-queued); 0 when none waits."""
    cur = await conn.execute(
        "SELECT greatest(coalesce(extract(epoch FROM now() - min(queued_at)), 0), 0)::float8 AS age "
        "FROM outbox WHERE status IN ('pending', 'in_flight') AND queued_at <= now()"
    )
    row = await cur.fetchone()
    return float(row["age"]) if row else 0.0


# --- dead letters and the alias timeline (console and admin API) -------------------------------------------

_DEAD_COLUMNS = """
o.id, o.inbound_id, o.integration, o.action, o.alias, o.opsgenie_alias, o.status, o.attempts, o.last_outcome,
o.last_error, o.created_at, o.queued_at, o.discard_reason,
(SELECT jsonb_build_object('http_status', a.http_status, 'reason', a.reason, 'outcome', a.outcome,
                           'response', a.response_snippet, 'at', a.started_at)
 FROM delivery_attempts a WHERE a.outbox_id = o.id ORDER BY a.id DESC LIMIT 1) AS last_answer
"""


async def dead(conn: Connection, *, integration: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Dead letters (newest first), each with OpsGenie's last answer."""
    cur = await conn.execute(
        f"SELECT {_DEAD_COLUMNS} FROM outbox o WHERE o.status = 'dead' "
        "AND (%(i)s::text IS NULL OR o.integration = %(i)s) ORDER BY o.id DESC LIMIT %(n)s",
        {"i": integration, "n": limit},
    )
    return await cur.fetchall()


async def discard(conn: Connection, ids: Sequence[int], reason: str) -> list[int]:
    """Dead letters an admin gives up on: status 'discarded' with the reason (never sent, never re-queued)."""
    cur = await conn.execute(
        "UPDATE outbox SET status = 'discarded', discard_reason = %(r)s, lease_until = NULL "
        "WHERE status = 'dead' AND id = ANY(%(ids)s::bigint[]) RETURNING id",
        {"ids": list(ids), "r": reason},
    )
    return sorted(int(r["id"]) for r in await cur.fetchall())


async def dead_counts(conn: Connection, hours: float = 24.0) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT integration, count(*) AS n FROM outbox WHERE status = 'dead' "
        "AND created_at > now() - make_interval(secs => %(s)s) GROUP BY integration",
        {"s": hours * 3600},
    )
    return {r["integration"]: int(r["n"]) for r in await cur.fetchall()}


async def for_alias(conn: Connection, integration: str, alias: str, *, limit: int = 500) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT id, inbound_id, replay_id, seq, action, generation, decision, reason, status, attempts, "
        "last_outcome, last_error, request_id, created_at, delivered_at, payload, cuts, discard_reason "
        "FROM outbox WHERE integration = %(i)s AND alias = %(a)s ORDER BY id DESC LIMIT %(n)s",
        {"i": integration, "a": alias, "n": limit},
    )
    return await cur.fetchall()


# --- what OpsGenie finally did (request status follow-up, app/followup.py) -----------------------------------


@dataclass(frozen=True)
class Unconfirmed:
    id: int
    integration: str
    alias: str
    action: str
    request_id: str
    attempts: int


_UNCONFIRMED = """
SELECT id, integration, alias, action, request_id, attempts FROM outbox
WHERE status = 'delivered' AND opsgenie_success IS NULL AND request_id IS NOT NULL
  AND delivered_at < now() - make_interval(secs => %(after)s)
  AND delivered_at > now() - make_interval(secs => %(within)s)
ORDER BY delivered_at
LIMIT %(n)s
"""


async def unconfirmed(conn: Connection, *, after: float, within: float, limit: int) -> list[Unconfirmed]:
    """Delivered requests whose processing nobody has confirmed yet (no echo callback, no status answer)."""
    cur = await conn.execute(_UNCONFIRMED, {"after": after, "within": within, "n": limit})
    return [Unconfirmed(**r) for r in await cur.fetchall()]


async def record_opsgenie_result(
    conn: Connection, outbox_id: int, *, success: bool, status: str | None, at: datetime
) -> None:
    """What OpsGenie did with the row's request, from the request-status API (a callback may have said first)."""
    await conn.execute(
        "UPDATE outbox SET opsgenie_success = %(ok)s, opsgenie_status = %(status)s, opsgenie_processed_at = %(at)s "
        "WHERE id = %(id)s AND opsgenie_success IS NULL",
        {"id": outbox_id, "ok": success, "status": status, "at": at},
    )


async def record_create_result(
    conn: Connection, integration: str, alias: str, generation: int, *, success: bool, status: str | None, at: datetime
) -> None:
    """The create of this alert was processed (the status check before an ack/close/note said so)."""
    await conn.execute(
        "UPDATE outbox SET opsgenie_success = %(ok)s, opsgenie_status = %(status)s, opsgenie_processed_at = %(at)s "
        "WHERE id = (SELECT id FROM outbox WHERE integration = %(i)s AND alias = %(a)s AND generation = %(g)s "
        "            AND action = 'create' AND status = 'delivered' ORDER BY id DESC LIMIT 1) "
        "AND opsgenie_success IS NULL",
        {"i": integration, "a": alias, "g": generation, "ok": success, "status": status, "at": at},
    )
