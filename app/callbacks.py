"""The callback use case: an authenticated OpsGenie callback in -> (one transaction) lock the aliases it names,
decide (app/core/callbacks.py, pure), update alias/generation state, store the callback and a history row each.

A callback never causes a send. Unknown actions and aliases we never sent are stored and answered 200.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from alertbridge.core import callbacks as rules
from alertbridge.db import Connection, Database
from alertbridge.models import CallbackOutcome, HistoryOrigin
from alertbridge.parsing import BodyError, parse_json_object
from alertbridge.store import aliases, history
from alertbridge.store import callbacks as store

_DEFAULT_ECHOES = rules.Echoes()


@dataclass(frozen=True)
class CallbackResult:
    status: int
    body: dict[str, Any]


async def _lock(conn: Connection, keys: list[tuple[str, str]]) -> None:
    by_integration: dict[str, list[str]] = {}
    for integration, alias in keys:
        by_integration.setdefault(integration, []).append(alias)
    for integration in sorted(by_integration):  # one global order: (integration, alias)
        await aliases.lock(conn, integration, by_integration[integration])


async def _handle(
    conn: Connection,
    cb: rules.Callback,
    body: dict[str, Any],
    *,
    integration: str | None,
    echoes: rules.Echoes,
    remote_addr: str | None,
    now: datetime,
) -> list[dict[str, Any]]:
    keys = await store.matching_aliases(conn, cb.opsgenie_alias, integration) if cb.opsgenie_alias else []
    await _lock(conn, keys)
    if await store.seen_before(conn, cb):
        reason = rules.CallbackReason.DUPLICATE
        cid = await store.insert(
            conn,
            cb,
            store.Match(None, None, None),
            outcome=CallbackOutcome.DUPLICATE,
            reason=reason.text,
            body=None,
            remote_addr=remote_addr,
        )
        return [{"id": cid, "outcome": CallbackOutcome.DUPLICATE.value, "reason": reason.text}]
    if not keys:
        decision = rules.decide(cb, None, echoes)
        cid = await store.insert(
            conn,
            cb,
            store.Match(None, None, None),
            outcome=decision.outcome,
            reason=decision.reason,
            body=body,
            remote_addr=remote_addr,
        )
        return [{"id": cid, "outcome": decision.outcome.value, "reason": decision.reason}]
    results = []
    for key in keys:
        view = await store.view(conn, *key)
        decision = rules.decide(cb, view, echoes)
        assert view is not None
        cancelled = await store.apply(conn, view, cb, decision, now)
        cid = await store.insert(
            conn,
            cb,
            store.Match(view.integration, view.alias, view.generation),
            outcome=decision.outcome,
            reason=decision.reason,
            body=body,
            remote_addr=remote_addr,
        )
        details: dict[str, Any] = {k: v for k, v in (("alert_id", cb.alert_id), ("tiny_id", cb.tiny_id)) if v}
        if cb.note:
            details["note"] = cb.note
        if cb.owner:
            details["owner"] = cb.owner
        if cancelled:
            details["cancelled_outbox_ids"] = cancelled
        await history.append(
            conn,
            view.integration,
            [
                history.Entry(
                    alias=view.alias,
                    generation=view.generation,
                    origin=HistoryOrigin.CALLBACK,
                    action=cb.action,
                    from_state=view.state,
                    to_state=decision.next_state or view.state,
                    decision=decision.outcome.value,
                    reason_code=decision.code.value,
                    reason=decision.reason,
                    actor=cb.actor,
                    callback_id=cid,
                    details=details,
                )
            ],
            now,
        )
        results.append(
            {
                "id": cid,
                "integration": view.integration,
                "alias": view.alias,
                "generation": view.generation,
                "outcome": decision.outcome.value,
                "reason": decision.reason,
            }
        )
    return results


async def receive(
    db: Database,
    raw: bytes,
    *,
    content_type: str | None = None,
    integration: str | None = None,
    echoes: rules.Echoes = _DEFAULT_ECHOES,
    remote_addr: str | None = None,
    max_depth: int = 64,
) -> CallbackResult:
    """Parse, decide and store one callback. Raises only when the database fails (the caller answers 503)."""
    try:
        body = parse_json_object(raw, max_depth=max_depth, content_type=content_type)
        cb = rules.parse(body)
    except BodyError as exc:
        return CallbackResult(400, {"error": "invalid_body", "message": exc.message})
    except rules.CallbackError as exc:
        return CallbackResult(400, {"error": "invalid_callback", "message": str(exc)})
    now = datetime.now(UTC)
    for attempt in (1, 2):
        try:
            async with db.transaction() as conn:
                results = await _handle(
                    conn, cb, body, integration=integration, echoes=echoes, remote_addr=remote_addr, now=now
                )
            break
        except psycopg.errors.UniqueViolation:  # the same callback twice at once, for no alias of ours
            if attempt == 2:
                raise
    return CallbackResult(200, {"action": cb.action, "results": results})
