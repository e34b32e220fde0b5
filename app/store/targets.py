"""``delivery_targets``: the 429 pause and the circuit breaker of every target (base URL + API key, identified by a
hash), shared by all worker processes. The transitions are decided in ``core/circuit.py``; this module reads and
writes them, gives out the one probe of a down target, and holds the predicate that keeps requests away from a
paused or down target (``SEND_ALLOWED``, used by the claim and by the intent row written before every call). It also
keeps the token bucket of every paced target (``take_tokens``): the claim of every worker process takes from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from alertbridge.core.circuit import TargetState
from alertbridge.core.policies import Bucket, after_throttle, next_token_in, refill, scale_now, take
from alertbridge.db import Connection

#: True when a request for outbox row %(outbox_id)s may go to target %(target)s now: the target is not paused by a
#: 429, and it is up or this row is its probe. (SQL fragment; the parameters are the caller's.)
SEND_ALLOWED = """NOT EXISTS (
    SELECT 1 FROM delivery_targets t
    WHERE t.key = %(target)s
      AND (t.paused_until > now() OR (t.state = 'down' AND t.probe_outbox_id IS DISTINCT FROM %(outbox_id)s)))"""

#: The integrations (of a worker's map %(integrations)s -> %(targets)s) whose target takes no regular rows now.
HELD_INTEGRATIONS = """SELECT m.integration
    FROM unnest(%(integrations)s::text[], %(targets)s::text[]) AS m(integration, target)
    JOIN delivery_targets t ON t.key = m.target
    WHERE t.paused_until > now() OR t.state = 'down'"""


def dirty_sql(integration_column: str) -> str:
    """SQL: true when the target of ``integration_column`` (through the worker's map) has failures to reset or is
    not up — only then does a success need a write to ``delivery_targets`` (no hot row on the common path)."""
    return f"""EXISTS (
        SELECT 1 FROM unnest(%(integrations)s::text[], %(targets)s::text[]) AS m(integration, target)
        JOIN delivery_targets t ON t.key = m.target
        WHERE m.integration = {integration_column} AND (t.failures > 0 OR t.state <> 'up'))"""


_LOAD = """
INSERT INTO delivery_targets AS t (key, base_url) VALUES (%(key)s, %(base_url)s)
ON CONFLICT (key) DO UPDATE SET base_url = EXCLUDED.base_url
RETURNING state, failures, probe_failures, paused_until, down_since, next_probe_at, last_error, now() AS now
"""


async def load_for_update(conn: Connection, key: str, base_url: str) -> tuple[TargetState, datetime]:
    """The target's state, locked until the transaction ends (created on first use), and the database's now."""
    cur = await conn.execute(_LOAD, {"key": key, "base_url": base_url})
    row = await cur.fetchone()
    assert row is not None
    now = row.pop("now")
    return TargetState(**row), now


_SAVE = """
UPDATE delivery_targets SET state = %(state)s, failures = %(failures)s, probe_failures = %(probe_failures)s,
       paused_until = %(paused_until)s, down_since = %(down_since)s, next_probe_at = %(next_probe_at)s,
       last_error = %(last_error)s, updated_at = now(),
       probe_outbox_id = CASE WHEN %(end_probe)s OR %(state)s = 'up' THEN NULL ELSE probe_outbox_id END,
       probe_owner = CASE WHEN %(end_probe)s OR %(state)s = 'up' THEN NULL ELSE probe_owner END,
       probe_until = CASE WHEN %(end_probe)s OR %(state)s = 'up' THEN NULL ELSE probe_until END
WHERE key = %(key)s
"""


async def save(conn: Connection, key: str, state: TargetState, *, end_probe: bool) -> None:
    await conn.execute(_SAVE, {"key": key, "end_probe": end_probe, **state.__dict__})


_OK = """
UPDATE delivery_targets t SET state = 'up', failures = 0, probe_failures = 0, down_since = NULL,
       next_probe_at = NULL, probe_outbox_id = NULL, probe_owner = NULL, probe_until = NULL, last_error = NULL,
       updated_at = now()
FROM (SELECT key, state FROM delivery_targets
      WHERE key = %(key)s AND (failures > 0 OR state <> 'up')
      FOR UPDATE) AS old  -- locks only when there is something to reset: no hot row on the common path
WHERE t.key = old.key
RETURNING old.state AS was
"""


async def record_ok(conn: Connection, key: str) -> bool:
    """The target answered: reset its failure count (no write when there is none). True when it was down.
    (The same transition as ``core.circuit.after_response(..., Signal.OK)``, without a read on the common path.)"""
    cur = await conn.execute(_OK, {"key": key})
    row = await cur.fetchone()
    return bool(row and row["was"] == "down")


_TAKE_PROBE = """
UPDATE delivery_targets SET probe_outbox_id = %(outbox_id)s, probe_owner = %(owner)s,
       probe_until = now() + make_interval(secs => %(lease)s), updated_at = now()
WHERE key = %(key)s
RETURNING key
"""

_PROBE_DUE = """
SELECT key FROM delivery_targets
WHERE key = ANY(%(keys)s::text[]) AND state = 'down' AND next_probe_at <= now()
  AND (probe_until IS NULL OR probe_until < now()) AND (paused_until IS NULL OR paused_until <= now())
ORDER BY next_probe_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""


async def probe_due(conn: Connection, keys: Sequence[str]) -> str | None:
    """A down target (of ``keys``) whose next probe is due and not taken, locked for this transaction."""
    if not keys:
        return None
    cur = await conn.execute(_PROBE_DUE, {"keys": list(keys)})
    row = await cur.fetchone()
    return row["key"] if row else None


async def take_probe(conn: Connection, key: str, outbox_id: int, owner: str, lease_seconds: float) -> None:
    await conn.execute(_TAKE_PROBE, {"key": key, "outbox_id": outbox_id, "owner": owner, "lease": lease_seconds})


async def release_probe(conn: Connection, key: str, outbox_id: int) -> None:
    """The probe row ended without an answer from the target (blocked, refused, released): let another row probe."""
    await conn.execute(
        "UPDATE delivery_targets SET probe_outbox_id = NULL, probe_owner = NULL, probe_until = NULL "
        "WHERE key = %(key)s AND probe_outbox_id = %(outbox_id)s",
        {"key": key, "outbox_id": outbox_id},
    )


@dataclass(frozen=True)
class Hold:
    """Why a target takes no request now, and until when (for deferring a claimed row)."""

    paused_until: datetime | None
    down: bool


async def hold(conn: Connection, key: str) -> Hold | None:
    cur = await conn.execute(
        "SELECT paused_until, state FROM delivery_targets WHERE key = %(key)s "
        "AND (paused_until > now() OR state = 'down')",
        {"key": key},
    )
    row = await cur.fetchone()
    return Hold(row["paused_until"], row["state"] == "down") if row else None


async def get(conn: Connection, key: str) -> dict[str, object] | None:
    cur = await conn.execute("SELECT * FROM delivery_targets WHERE key = %(key)s", {"key": key})
    return await cur.fetchone()


# --- pacing: the token bucket every worker process takes from (core/policies.py decides) ----------------------

_BUCKET = """
SELECT tokens, tokens_at, rate_scale, throttled_at, throttle_period, now() AS now FROM delivery_targets
WHERE key = %(key)s FOR UPDATE
"""


@dataclass(frozen=True)
class Tokens:
    """What a bucket gave: ``granted`` whole tokens, and how long until the next one (when none was left)."""

    granted: int
    available: float
    wait: float
    scale: float


async def take_tokens(conn: Connection, key: str, base_url: str, bucket: Bucket, want: int) -> Tokens:
    """Take up to ``want`` tokens from the target's bucket (caller's transaction: the row stays locked until it
    ends, so two workers never spend the same token)."""
    cur = await conn.execute(_BUCKET, {"key": key})
    row = await cur.fetchone()
    if row is None:
        await conn.execute(
            "INSERT INTO delivery_targets (key, base_url) VALUES (%(key)s, %(base_url)s) ON CONFLICT (key) DO NOTHING",
            {"key": key, "base_url": base_url},
        )
        cur = await conn.execute(_BUCKET, {"key": key})
        row = await cur.fetchone()
        assert row is not None
    now = row["now"]
    scale = scale_now(row["rate_scale"], row["throttled_at"], row["throttle_period"], now)
    available = refill(row["tokens"], row["tokens_at"], now, bucket, scale)
    granted = take(available, want)
    left = available - granted
    if granted or row["tokens"] is None or left != row["tokens"]:
        await conn.execute(
            "UPDATE delivery_targets SET tokens = %(t)s, tokens_at = %(at)s WHERE key = %(key)s",
            {"t": left, "at": now, "key": key},
        )
    return Tokens(granted, left, next_token_in(left, bucket, scale), scale)


async def give_back(conn: Connection, key: str, bucket: Bucket, n: int) -> None:
    """Tokens taken for rows that were not claimed after all (caller's transaction, after ``take_tokens``)."""
    if n > 0:
        await conn.execute(
            "UPDATE delivery_targets SET tokens = least(tokens + %(n)s, %(cap)s) WHERE key = %(key)s",
            {"n": n, "cap": bucket.capacity, "key": key},
        )


async def record_throttle(conn: Connection, key: str, period: float | None) -> float:
    """A 429 came although the worker paced: halve the rate (``core.policies.after_throttle``) until it grows back.
    Caller's transaction (it has locked the row: ``load_for_update``). Returns the new share of the rate."""
    cur = await conn.execute(
        "SELECT rate_scale, throttled_at, throttle_period, now() AS now FROM delivery_targets WHERE key = %(key)s",
        {"key": key},
    )
    row = await cur.fetchone()
    if row is None:
        return 1.0
    scale = after_throttle(row["rate_scale"], row["throttled_at"], row["throttle_period"], row["now"])
    await conn.execute(
        "UPDATE delivery_targets SET rate_scale = %(s)s, throttled_at = now(), throttle_period = %(p)s, "
        "tokens = least(coalesce(tokens, 0), 0) WHERE key = %(key)s",
        {"s": scale, "p": period or row["throttle_period"], "key": key},
    )
    return float(scale)
