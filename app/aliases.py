"""The alias lifecycle: a pure decision function, and the queries that persist its result.

``decide(state, action)`` answers, for one rendered event, whether to send it to OpsGenie, what the alias's
next state is, and why. Postgres holds the state, so stateless sources (a cron job, a Genesys flow) can
acknowledge or close the alert they opened earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from alertbridge.models import AliasState

SEND, COALESCE, IGNORE = "send", "coalesce", "ignore"

OPEN, ACKED, CLOSED = AliasState.OPEN.value, AliasState.ACKNOWLEDGED.value, AliasState.CLOSED.value
LIVE = (OPEN, ACKED)


@dataclass(frozen=True)
class Decision:
    decision: str  # send | coalesce | ignore
    next_state: str | None  # None: the alias row is left as it is (or not created)
    reason: str
    new_generation: bool = False  # a create that opens a new OpsGenie alert
    count_delta: int = 0


def decide(
    state: str | None,
    action: str,
    *,
    create_pending: bool = False,
    forward_unknown: bool = False,
    ignore_reason: str | None = None,
) -> Decision:
    """The next step for ``action`` on an alias whose state is ``state`` (None: never seen).

    ``create_pending``: a create for this alias is queued and not yet sent.
    ``forward_unknown``: send ack/close/note even when we know of no open alert (alerts opened before
    the bridge existed, or by another tool).
    """
    if action == "ignore":  # ``ignore_reason``: why the template said so
        return Decision(
            IGNORE, None, f"ignored by template: {ignore_reason}" if ignore_reason else "ignored by template"
        )
    if action == "create":
        if state is None:
            return Decision(SEND, OPEN, "new alert", new_generation=True, count_delta=1)
        if state == CLOSED:
            return Decision(SEND, OPEN, "new alert after close", new_generation=True, count_delta=1)
        if create_pending:
            return Decision(COALESCE, state, "coalesced into the pending create", count_delta=1)
        return Decision(SEND, state, f"repeat while {state}: OpsGenie increments count", count_delta=1)
    if action not in ("acknowledge", "close", "note"):
        raise ValueError(f"unknown action {action!r}")
    if state not in LIVE:
        if forward_unknown:
            return Decision(SEND, None, "no open alert known; forwarded (forward_unknown)")
        return Decision(IGNORE, None, "no open alert")
    if action == "acknowledge":
        if state == ACKED:
            return Decision(IGNORE, None, "already acknowledged")
        return Decision(SEND, ACKED, "acknowledge open alert")
    if action == "close":
        return Decision(SEND, CLOSED, f"close {state} alert")
    return Decision(SEND, None, f"add note to {state} alert")


# --- queries -------------------------------------------------------------------------------------------


_LOCK_SQL = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")


async def lock(conn: AsyncConnection, integration: str, aliases: list[str]) -> None:
    """Serialize concurrent webhooks touching the same aliases (sorted, so two webhooks never deadlock)."""
    for alias in sorted(set(aliases)):
        await conn.execute(
            _LOCK_SQL,
            {"k": f"{integration}\x1f{alias}"},
        )


_LOAD_SQL = text(
    """
    SELECT a.state, a.generation, a.count,
           EXISTS (SELECT 1 FROM outbox o
                   WHERE o.integration = a.integration AND o.alias = a.alias
                     AND o.generation = a.generation AND o.action = 'create'
                     AND o.status = 'pending') AS create_pending
    FROM aliases a WHERE a.integration = :i AND a.alias = :a
    """
)


async def load(conn: AsyncConnection, integration: str, alias: str) -> dict[str, Any] | None:
    row = (
        (
            await conn.execute(
                _LOAD_SQL,
                {"i": integration, "a": alias},
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def generation_for(current_generation: int | None, decision: Decision) -> int:
    """The alert generation an event belongs to: each close ends one, a create after it opens the next."""
    gen = current_generation or 0
    return gen + 1 if decision.new_generation else gen


_APPLY_SQL = text(
    """
    INSERT INTO aliases AS a (integration, alias, opsgenie_alias, state, generation, count,
                              opened_at, last_action, last_outbox_id)
    SELECT :i, :a, :og, COALESCE(CAST(:state AS text), 'closed'), :gen, :delta, now(), :action, :o
    WHERE CAST(:state AS text) IS NOT NULL
       OR EXISTS (SELECT 1 FROM aliases WHERE integration = :i AND alias = :a)
    ON CONFLICT (integration, alias) DO UPDATE SET
        opsgenie_alias = EXCLUDED.opsgenie_alias,
        state = COALESCE(CAST(:state AS text), a.state),
        generation = EXCLUDED.generation,
        count = CASE WHEN :new_gen THEN :delta ELSE a.count + :delta END,
        last_seen_at = now(),
        last_action = EXCLUDED.last_action,
        last_outbox_id = EXCLUDED.last_outbox_id,
        opened_at = CASE WHEN :new_gen THEN now() ELSE a.opened_at END,
        acknowledged_at = CASE WHEN :new_gen THEN NULL
                               WHEN CAST(:state AS text) = 'acknowledged' AND a.state <> 'acknowledged'
                               THEN now() ELSE a.acknowledged_at END,
        closed_at = CASE WHEN :new_gen THEN NULL
                         WHEN CAST(:state AS text) = 'closed' AND a.state <> 'closed'
                         THEN now() ELSE a.closed_at END,
        create_request_id = CASE WHEN :new_gen THEN NULL ELSE a.create_request_id END,
        create_confirmed = CASE WHEN :new_gen THEN false ELSE a.create_confirmed END,
        alert_id = CASE WHEN :new_gen THEN NULL ELSE a.alert_id END
    """
)


async def apply(
    conn: AsyncConnection,
    *,
    integration: str,
    alias: str,
    opsgenie_alias: str,
    action: str,
    decision: Decision,
    generation: int,
    outbox_id: int,
) -> None:
    """Persist ``decision`` on the alias row. Ignored events leave it untouched (the outbox row records them);
    a forwarded action for an alias we never saw creates no row."""
    if decision.decision == IGNORE:
        return
    await conn.execute(
        _APPLY_SQL,
        {
            "i": integration,
            "a": alias,
            "og": opsgenie_alias,
            "state": decision.next_state,
            "gen": generation,
            "delta": decision.count_delta,
            "action": action,
            "new_gen": decision.new_generation,
            "o": outbox_id,
        },
    )
