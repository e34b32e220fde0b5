"""The ingest use case, top to bottom: body -> template -> events -> (one transaction) inbound row + alias
decisions + outbox rows. Whatever happens after authentication, the webhook is stored before we answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alertbridge import aliases, outbox
from alertbridge.filters import PRIORITY_OVERRIDES
from alertbridge.limits import Defaults, Event, EventError, fit_alias, normalize_event
from alertbridge.models import InboundStatus, OutboxStatus
from alertbridge.parsing import BodyError, parse_json_object
from alertbridge.rendering import CompiledTemplate, RenderLimits, TemplateError, render


@dataclass(frozen=True)
class Route:
    """What ingest needs to know about one integration."""

    name: str
    template: CompiledTemplate
    defaults: Defaults = Defaults()
    scope_aliases: bool = True
    forward_unknown: bool = False
    render_limits: RenderLimits = RenderLimits()
    max_json_depth: int = 64
    priorities: Mapping[str, str] = field(default_factory=dict)  # [integrations.priorities]

    def opsgenie_alias(self, alias: str) -> tuple[str, dict[str, Any] | None]:
        scoped = f"{self.name}:{alias}" if self.scope_aliases else alias
        fitted, cut = fit_alias(scoped)
        return fitted, (cut.to_dict() if cut else None)


@dataclass(frozen=True)
class Inbound:
    body: bytes
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # already redacted
    query: Mapping[str, str] = field(default_factory=dict)  # already redacted
    remote_addr: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True)
class Result:
    status: int  # the HTTP status to answer
    body: dict[str, Any]


@dataclass(frozen=True)
class _Prepared:
    status: str  # an InboundStatus value
    events: list[Event] = field(default_factory=list)
    error: dict[str, Any] | None = None


def prepare(route: Route, inbound: Inbound) -> _Prepared:
    """Parse, render and validate (CPU only, no I/O)."""
    try:
        payload = parse_json_object(inbound.body, max_depth=route.max_json_depth, content_type=inbound.content_type)
    except BodyError as exc:
        return _Prepared(InboundStatus.INVALID, error={"kind": "body", "message": exc.message})
    context = {
        "payload": payload,
        "headers": dict(inbound.headers),
        "query": dict(inbound.query),
        "integration": route.name,
        PRIORITY_OVERRIDES: dict(route.priorities),
    }
    try:
        raw_events = render(route.template, context, route.render_limits)
        events = [normalize_event(raw, i, route.defaults) for i, raw in enumerate(raw_events)]
    except TemplateError as exc:
        return _Prepared(InboundStatus.TEMPLATE_ERROR, error=exc.to_dict())
    except EventError as exc:
        error: dict[str, Any] = {"kind": "event", "message": str(exc), "event": exc.index}
        if exc.field:
            error["field"] = exc.field
        return _Prepared(InboundStatus.TEMPLATE_ERROR, error=error)
    return _Prepared(InboundStatus.PROCESSED, events=events)


async def _enqueue(
    conn: AsyncConnection, route: Route, inbound_id: int, events: list[Event], traceparent: str | None
) -> list[dict[str, Any]]:
    """Apply the alias state machine to each event and write its outbox row (caller's transaction)."""
    await aliases.lock(conn, route.name, [e.alias for e in events if e.action != "ignore"])
    results: list[dict[str, Any]] = []
    wake = False
    for seq, event in enumerate(events):
        current = await aliases.load(conn, route.name, event.alias) if event.action != "ignore" else None
        decision = aliases.decide(
            current["state"] if current else None,
            event.action,
            create_pending=bool(current and current["create_pending"]),
            forward_unknown=route.forward_unknown,
            ignore_reason=event.reason,
        )
        generation = aliases.generation_for(current["generation"] if current else None, decision)
        og_alias, alias_cut = route.opsgenie_alias(event.alias)
        cuts = [c.to_dict() for c in event.cuts] + ([alias_cut] if alias_cut else [])
        send = decision.decision == aliases.SEND
        outbox_id = await outbox.insert(
            conn,
            outbox.NewRow(
                inbound_id=inbound_id,
                seq=seq,
                integration=route.name,
                action=event.action,
                alias=event.alias,
                opsgenie_alias=og_alias,
                generation=generation,
                payload=event.fields,
                cuts=cuts,
                decision=decision.decision,
                reason=decision.reason,
                traceparent=traceparent,
                status=OutboxStatus.PENDING if send else OutboxStatus.SKIPPED,
            ),
        )
        if event.action != "ignore":
            await aliases.apply(
                conn,
                integration=route.name,
                alias=event.alias,
                opsgenie_alias=og_alias,
                action=event.action,
                decision=decision,
                generation=generation,
                outbox_id=outbox_id,
            )
        wake = wake or send
        results.append(
            {
                "seq": seq,
                "action": event.action,
                "alias": event.alias,
                "opsgenie_alias": og_alias,
                "decision": decision.decision,
                "reason": decision.reason,
                "outbox_id": outbox_id,
                **({"cuts": cuts} if cuts else {}),
            }
        )
    if wake:
        await outbox.notify(conn)
    return results


def _answer(inbound_id: int, prepared: _Prepared, events: list[dict[str, Any]]) -> Result:
    if prepared.status == InboundStatus.PROCESSED:
        return Result(202, {"id": inbound_id, "status": "accepted", "events": events})
    if prepared.status == InboundStatus.INVALID:
        assert prepared.error is not None
        return Result(400, {"id": inbound_id, "error": "invalid_body", "message": prepared.error["message"]})
    return Result(
        422,
        {
            "id": inbound_id,
            "error": "template_error",
            **(prepared.error or {}),
            "hint": f"the webhook is stored; fix the template, then `alertbridge replay {inbound_id}`",
        },
    )


_INSERT_INBOUND = text(
    """
    INSERT INTO inbound_events (integration, remote_addr, content_type, headers, query, body, body_size, status,
                                error, template_sha256, events_count, traceparent, processed_at)
    VALUES (:integration, :remote_addr, :content_type, CAST(:headers AS jsonb), CAST(:query AS jsonb), :body,
            :body_size, :status, CAST(:error AS jsonb), :sha, :n, :traceparent, now())
    RETURNING id
    """
)


async def _insert_inbound(
    conn: AsyncConnection,
    route: Route,
    inbound: Inbound,
    *,
    status: str,
    error: dict[str, Any] | None,
    body: bytes | None,
    body_size: int,
    events: int = 0,
) -> int:
    result = await conn.execute(
        _INSERT_INBOUND,
        {
            "integration": route.name,
            "remote_addr": inbound.remote_addr,
            "content_type": inbound.content_type,
            "headers": json.dumps(dict(inbound.headers)),
            "query": json.dumps(dict(inbound.query)),
            "body": body,
            "body_size": body_size,
            "status": status,
            "error": json.dumps(error) if error else None,
            "sha": route.template.sha256 if body is not None else None,
            "n": events,
            "traceparent": inbound.traceparent,
        },
    )
    return int(result.scalar_one())


async def ingest(engine: AsyncEngine, route: Route, inbound: Inbound) -> Result:
    """Store, render, decide, enqueue. Raises only when the database fails (the caller answers 503)."""
    prepared = await anyio.to_thread.run_sync(prepare, route, inbound)
    async with engine.begin() as conn:
        inbound_id = await _insert_inbound(
            conn,
            route,
            inbound,
            status=prepared.status.value,
            error=prepared.error,
            body=inbound.body,
            body_size=len(inbound.body),
            events=len(prepared.events),
        )
        events = await _enqueue(conn, route, inbound_id, prepared.events, inbound.traceparent)
    return _answer(inbound_id, prepared, events)


async def record_too_large(engine: AsyncEngine, route: Route, inbound: Inbound, size: int | None, limit: int) -> Result:
    """A body over the cap is not read to the end, but that it came is recorded (without the body)."""
    message = f"body is larger than {limit} bytes" + (f" ({size} bytes)" if size is not None else "")
    async with engine.begin() as conn:
        inbound_id = await _insert_inbound(
            conn,
            route,
            inbound,
            status=InboundStatus.TOO_LARGE.value,
            error={"kind": "body", "message": message},
            body=None,
            body_size=size if size is not None else limit + 1,
        )
    return Result(413, {"id": inbound_id, "error": "body_too_large", "message": message})


async def record_handshake(engine: AsyncEngine, route: Route, inbound: Inbound, answer: dict[str, Any]) -> Result:
    """A source's handshake (SNS subscription confirmation): recorded, answered 200, never an alert."""
    async with engine.begin() as conn:
        inbound_id = await _insert_inbound(
            conn,
            route,
            inbound,
            status=InboundStatus.HANDSHAKE.value,
            error={"kind": "handshake", **answer},
            body=inbound.body,
            body_size=len(inbound.body),
        )
    return Result(200, {"id": inbound_id, **answer})


class ReplayError(Exception):
    pass


async def replay(engine: AsyncEngine, routes: Mapping[str, Route], inbound_id: int, *, force: bool = False) -> Result:
    """Run a stored webhook through its integration's current template again (``alertbridge replay ID``).

    A webhook that was processed already is refused unless ``force`` (it would send its events again).
    """
    async with engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    text(
                        "SELECT integration, status, body, content_type, headers, query, remote_addr, traceparent "
                        "FROM inbound_events WHERE id = :id"
                    ),
                    {"id": inbound_id},
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise ReplayError(f"inbound event {inbound_id} does not exist")
    if row["status"] == InboundStatus.HANDSHAKE:
        raise ReplayError(f"inbound event {inbound_id} is a handshake (nothing to replay)")
    if row["status"] == InboundStatus.TOO_LARGE:
        raise ReplayError(f"inbound event {inbound_id} was too large; its body was not kept")
    if row["status"] == InboundStatus.PROCESSED and not force:
        raise ReplayError(
            f"inbound event {inbound_id} was processed already; --force replays it anyway (its events are queued again)"
        )
    route = routes.get(row["integration"])
    if route is None:
        raise ReplayError(f"integration {row['integration']!r} of inbound event {inbound_id} is not configured")
    inbound = Inbound(
        body=bytes(row["body"]),
        content_type=row["content_type"],
        headers=row["headers"],
        query=row["query"],
        remote_addr=row["remote_addr"],
        traceparent=row["traceparent"],
    )
    prepared = await anyio.to_thread.run_sync(prepare, route, inbound)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
                UPDATE inbound_events SET status = :status, error = CAST(:error AS jsonb), template_sha256 = :sha,
                       events_count = :n, replay_count = replay_count + 1, processed_at = now()
                WHERE id = :id
                """
            ),
            {
                "id": inbound_id,
                "status": prepared.status.value,
                "error": json.dumps(prepared.error) if prepared.error else None,
                "sha": route.template.sha256,
                "n": len(prepared.events),
            },
        )
        events = await _enqueue(conn, route, inbound_id, prepared.events, inbound.traceparent)
    return _answer(inbound_id, prepared, events)
