"""The ingest use case, top to bottom: body -> template -> events (``prepare``, CPU only) -> one transaction:
inbound row + lock and load the aliases + ``plan`` (pure) + outbox rows + alias rows + history rows.
Whatever happens after authentication, the webhook is stored before we answer.

Replay and preview (``alertbridge render``, the console) go through the same ``prepare`` and ``plan``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from alertbridge import metrics
from alertbridge.core.lifecycle import AliasRecord, Reason
from alertbridge.core.plan import AliasWrite, GenerationWrite, Plan, PlannedEvent, PlanSpec, alias_keys, plan
from alertbridge.core.policies import NO_POLICIES, Policies
from alertbridge.db import Connection, Database
from alertbridge.filters import PRIORITY_OVERRIDES
from alertbridge.limits import Defaults, Event, EventError, normalize_event
from alertbridge.models import HistoryOrigin, InboundStatus, OutboxStatus
from alertbridge.parsing import BodyError, parse_json_object
from alertbridge.rendering import CompiledTemplate, RenderLimits, TemplateError, render
from alertbridge.store import aliases, generations, history, inbound, outbox


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
    base_url: str = "https://api.opsgenie.com"  # the target, for the exact requests a preview shows
    version_id: int | None = None  # the template_versions row of `template` (None: not from Postgres)
    policies: Policies = NO_POLICIES  # silences and [integrations.policies] (core/policies.py)

    @property
    def spec(self) -> PlanSpec:
        return PlanSpec(self.name, self.scope_aliases, self.forward_unknown, self.base_url, self.policies)


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
class Prepared:
    status: str  # an InboundStatus value
    events: list[Event] = field(default_factory=list)
    error: dict[str, Any] | None = None


def prepare(route: Route, inbound: Inbound, limits: RenderLimits | None = None) -> Prepared:
    """Parse, render and validate (CPU only, no I/O). ``limits``: instead of the route's (a shorter time limit)."""
    try:
        payload = parse_json_object(inbound.body, max_depth=route.max_json_depth, content_type=inbound.content_type)
    except BodyError as exc:
        return Prepared(InboundStatus.INVALID, error={"kind": "body", "message": exc.message})
    context = {
        "payload": payload,
        "headers": dict(inbound.headers),
        "query": dict(inbound.query),
        "integration": route.name,
        PRIORITY_OVERRIDES: dict(route.priorities),
    }
    try:
        with metrics.render_timer(route.name):
            raw_events = render(route.template, context, limits or route.render_limits)
        events = [normalize_event(raw, i, route.defaults) for i, raw in enumerate(raw_events)]
    except TemplateError as exc:
        status = InboundStatus.PAYLOAD_ERROR if exc.kind == "payload" else InboundStatus.TEMPLATE_ERROR
        return Prepared(status, error=exc.to_dict())
    except EventError as exc:
        error: dict[str, Any] = {"kind": "event", "message": str(exc), "event": exc.index}
        if exc.field:
            error["field"] = exc.field
        return Prepared(InboundStatus.TEMPLATE_ERROR, error=error)
    return Prepared(InboundStatus.PROCESSED, events=events)


def outbox_row(e: PlannedEvent) -> outbox.NewRow:
    """The outbox row of a planned event (ingest, replay, and the policies' own plans)."""
    return outbox.NewRow(
        seq=e.seq,
        action=e.action,
        alias=e.alias,
        opsgenie_alias=e.opsgenie_alias,
        generation=e.generation,
        payload=e.event.fields,
        cuts=e.cuts,
        decision=e.decision.decision,
        reason=e.decision.reason,
        reason_code=e.decision.code.value,
        status=OutboxStatus.PENDING if e.send else OutboxStatus.SKIPPED,
        not_before=e.due_at,
        priority=e.priority,
    )


def history_entry(
    e: PlannedEvent,
    inbound_id: int | None,
    outbox_id: int | None,
    *,
    by_policy: bool = False,
    details: Mapping[str, Any] | None = None,
) -> history.Entry:
    """The alias-history row of a planned event (``by_policy``: a policy's own plan, not a webhook's)."""
    policy = by_policy or e.by_policy
    return history.Entry(
        alias=e.alias,
        generation=e.generation,
        origin=HistoryOrigin.POLICY if policy else HistoryOrigin.WEBHOOK,
        action=e.action,
        from_state=e.before.state if e.before else None,
        to_state=e.after.state if e.after else None,
        decision=e.decision.decision,
        reason_code=e.decision.code.value,
        reason=e.decision.reason,
        actor="policy" if policy else None,
        inbound_id=inbound_id,
        outbox_id=outbox_id,
        details={**e.details, **(details or {})},
    )


#: A webhook is rendered on the event loop (no thread hop; and no render thread holding the GIL while the loop's
#: database calls wait to get it back) within this budget. A render that exceeds it is started again in a thread
#: with the integration's full time limit (templates are pure: rendering twice is harmless); when that render
#: really needed more CPU than the budget (not merely a process that was not scheduled for a while), its template
#: renders in a thread for ``SLOW_FOR`` seconds. A slow template never holds other webhooks for longer than this.
INLINE_BUDGET = 0.05
SLOW_FOR = 60.0
_slow_until: dict[str, float] = {}  # template sha256 -> monotonic time until which it renders in a thread


def _prepare_timed(route: Route, inbound: Inbound) -> tuple[Prepared, float]:
    started = time.thread_time()
    prepared = prepare(route, inbound)
    return prepared, time.thread_time() - started


async def prepare_async(route: Route, inbound: Inbound) -> Prepared:
    """``prepare`` without blocking the event loop for longer than ``INLINE_BUDGET``."""
    sha = route.template.sha256
    limits = route.render_limits
    if _slow_until.get(sha, 0.0) > time.monotonic():
        return await anyio.to_thread.run_sync(prepare, route, inbound)
    if limits.timeout_seconds <= INLINE_BUDGET:
        return prepare(route, inbound)
    prepared = prepare(route, inbound, replace(limits, timeout_seconds=INLINE_BUDGET))
    if prepared.error is None or prepared.error.get("kind") != "timeout":
        return prepared
    prepared, cpu = await anyio.to_thread.run_sync(_prepare_timed, route, inbound)
    if cpu > INLINE_BUDGET:
        _slow_until[sha] = time.monotonic() + SLOW_FOR
    return prepared


async def _plan(
    conn: Connection,
    route: Route,
    events: list[Event],
    records: dict[str, AliasRecord | None],
    now: datetime,
    batch: _Writes | None = None,
) -> Plan:
    """``plan``, then settle its flaps (caller's transaction, holding the aliases' locks): a flap cancels the alias's
    held close. One held by an earlier webhook of the same ``batch`` is not committed yet, so it is cancelled there
    by id; a committed one is cancelled in Postgres, and one a worker took meanwhile (its delay ran out) is being
    sent: then the events are planned again without it. Rare, so the round trip is paid only then."""
    result = plan(events, records, route.spec, now)
    flapped = sorted({e.alias for e in result.events if e.cancels_close})
    if not flapped:
        return result
    ours = {a for a in flapped if batch is not None and (route.name, a) in batch.held}
    if batch is not None:
        batch.cancelled += [batch.held.pop((route.name, a)) for a in ours]
    others = [a for a in flapped if a not in ours]
    missed = set(others) - await outbox.cancel_delayed_closes(conn, route.name, others)
    if not missed:
        return result
    records = {a: replace(r, close_due_at=None) if a in missed and r is not None else r for a, r in records.items()}
    return plan(events, records, route.spec, now)


async def _apply(
    conn: Connection,
    route: Route,
    inbound_id: int,
    events: list[Event],
    traceparent: str | None,
    *,
    replay_id: int | None = None,
    now: datetime,
) -> tuple[Plan, dict[int, int]]:
    """Lock and load the aliases, plan, and write outbox, alias and history rows (caller's transaction).
    Returns the plan and its outbox ids by seq."""
    keys = alias_keys(events)
    await aliases.lock(conn, route.name, keys)
    records = await aliases.load(conn, route.name, keys)
    result = await _plan(conn, route, events, dict(records), now)
    ids = await outbox.insert(
        conn,
        integration=route.name,
        inbound_id=inbound_id,
        replay_id=replay_id,
        traceparent=traceparent,
        rows=[outbox_row(e) for e in result.events],
    )
    await aliases.write(conn, route.name, result.aliases, ids, now)
    await generations.write(conn, route.name, result.generations, now)
    await history.append(
        conn,
        route.name,
        [history_entry(e, inbound_id, ids.get(e.seq)) for e in result.events if e.touches_alias],
        now,
    )
    if result.sends:
        await outbox.notify(conn)
    metrics.policies_planned(route.name, result)
    return result, ids


def _answer(inbound_id: int, prepared: Prepared, result: Plan | None, outbox_ids: Mapping[int, int]) -> Result:
    if prepared.status == InboundStatus.PROCESSED:
        events = []
        for e in result.events if result else []:
            item: dict[str, Any] = {
                "seq": e.seq,
                "action": e.action,
                "alias": e.alias,
                "opsgenie_alias": e.opsgenie_alias,
                "decision": e.decision.decision,
                "reason": e.decision.reason,
                "outbox_id": outbox_ids.get(e.seq),
            }
            if e.cuts:
                item["cuts"] = e.cuts
            events.append(item)
        return Result(202, {"id": inbound_id, "status": "accepted", "events": events})
    if prepared.status == InboundStatus.INVALID:
        assert prepared.error is not None
        return Result(400, {"id": inbound_id, "error": "invalid_body", "message": prepared.error["message"]})
    if prepared.status == InboundStatus.PAYLOAD_ERROR:  # for the sender: what its payload lacks
        assert prepared.error is not None
        field_ = prepared.error.get("field")
        fix = f"set {field_!r} in the payload" if field_ else "correct the payload"
        return Result(
            422,
            {
                "id": inbound_id,
                "error": "payload_error",
                "message": prepared.error["message"],
                "field": field_,
                "hint": f"nothing was sent to OpsGenie; {fix} and send it again",
            },
        )
    return Result(
        422,
        {
            "id": inbound_id,
            "error": "template_error",
            **(prepared.error or {}),
            "hint": f"the webhook is stored; fix the template, then `alertbridge replay {inbound_id}`",
        },
    )


def inbound_store_row(
    route: Route, msg: Inbound, *, status: str, error: dict[str, Any] | None, body: bytes | None, size: int, n: int
) -> inbound.NewInbound:
    return inbound.NewInbound(
        integration=route.name,
        remote_addr=msg.remote_addr,
        content_type=msg.content_type,
        headers=dict(msg.headers),
        query=dict(msg.query),
        body=body,
        body_size=size,
        status=status,
        error=error,
        template_sha256=route.template.sha256 if body is not None else None,
        template_version_id=route.version_id if body is not None else None,
        events_count=n,
        traceparent=msg.traceparent,
    )


@dataclass(frozen=True)
class Webhook:
    """One webhook, prepared (parsed and rendered), waiting for the transaction it shares with others."""

    route: Route
    msg: Inbound
    prepared: Prepared


@dataclass
class _Writes:
    """What the plans of a batch write, merged per row: a statement may touch a row only once, and the last plan
    to touch an alias (or a generation) holds its final record."""

    outbox: list[outbox.BatchRow] = field(default_factory=list)
    aliases: dict[tuple[str, str], tuple[str, AliasWrite, int | None]] = field(default_factory=dict)
    generations: dict[tuple[str, str, int], tuple[str, GenerationWrite]] = field(default_factory=dict)
    history: list[tuple[str, history.Entry]] = field(default_factory=list)
    sends: bool = False
    held: dict[tuple[str, str], int] = field(default_factory=dict)  # an alias's held close, written by this batch
    cancelled: list[int] = field(default_factory=list)  # held closes of this batch a later webhook's flap cancels

    def add(self, route: Route, inbound_id: int, traceparent: str | None, result: Plan, ids: dict[int, int]) -> None:
        name = route.name
        self.sends = self.sends or result.sends
        for e in result.events:
            self.outbox.append(outbox.BatchRow(ids[e.seq], inbound_id, name, traceparent, outbox_row(e)))
            if e.send and e.decision.code == Reason.CLOSE_DELAYED:
                self.held[(name, e.alias)] = ids[e.seq]
        for w in result.aliases:
            self.aliases[(name, w.alias)] = (name, w, ids.get(w.last_seq))
        for g in result.generations:
            key = (name, g.alias, g.generation)
            earlier = self.generations.get(key)
            if earlier is not None and g.opening is None and earlier[1].opening is not None:
                g = replace(g, opening=earlier[1].opening)  # the create that opened it came in an earlier webhook
            self.generations[key] = (name, g)
        self.history += [(name, history_entry(e, inbound_id, ids.get(e.seq))) for e in result.events if e.touches_alias]


async def commit(db: Database, batch: Sequence[Webhook]) -> list[Result]:
    """Store, decide and enqueue a batch of webhooks in ONE transaction (group commit), in two round trips:

    1. insert the webhooks; lock their aliases (all of them, in one global order); load the alias records; reserve
       the outbox ids (after the locks: ids follow the order of decisions about an alias);
    2. (``plan`` per webhook, in arrival order, each seeing the alias records the webhooks before it left) insert the
       outbox rows, the alias, generation and history rows, NOTIFY, COMMIT.

    Either every webhook of the batch is stored with its outbox rows, or none is (the exception propagates: each
    sender gets a 503 and sends again). Statements are set-based: their number does not grow with the batch."""
    now = datetime.now(UTC)
    processed = [w.prepared.status == InboundStatus.PROCESSED for w in batch]
    keys = [
        (w.route.name, a) for w, p in zip(batch, processed, strict=True) if p for a in alias_keys(w.prepared.events)
    ]
    n_events = sum(len(w.prepared.events) for w, p in zip(batch, processed, strict=True) if p)
    rows = [
        inbound_store_row(
            w.route,
            w.msg,
            status=w.prepared.status.value,
            error=w.prepared.error,
            body=w.msg.body,
            size=len(w.msg.body),
            n=len(w.prepared.events),
        )
        for w in batch
    ]
    async with db.pipeline() as conn:
        inbound_ids_later = await inbound.insert_many(conn, rows)
        await aliases.lock_many(conn, keys)
        records_later = await aliases.load_many(conn, keys)
        reserved_later = await outbox.reserve_ids(conn, n_events)
        inbound_ids = await inbound_ids_later()
        current: dict[tuple[str, str], AliasRecord | None] = dict(await records_later())
        reserved = iter(await reserved_later())
        writes = _Writes()
        answers: list[tuple[Plan | None, dict[int, int]]] = []
        for w, inbound_id, p in zip(batch, inbound_ids, processed, strict=True):
            if not p:
                answers.append((None, {}))
                continue
            name = w.route.name
            records = {a: current.get((name, a)) for a in alias_keys(w.prepared.events)}
            result = await _plan(conn, w.route, w.prepared.events, records, now, writes)
            metrics.policies_planned(name, result)
            for e in result.events:  # the next webhook of the batch sees what this one decided
                if e.touches_alias:
                    current[(name, e.alias)] = e.after
            ids = {}
            for e in result.events:
                nxt = next(reserved, None)
                if nxt is None:  # a policy added events (the flapping note): reserve more (a rare round trip)
                    reserved = iter(await (await outbox.reserve_ids(conn, len(result.events)))())
                    nxt = next(reserved)
                ids[e.seq] = nxt
            writes.add(w.route, inbound_id, w.msg.traceparent, result, ids)
            answers.append((result, ids))
        await outbox.insert_many(conn, writes.outbox)
        await outbox.cancel_closes(conn, writes.cancelled)
        await aliases.write_many(conn, list(writes.aliases.values()), now)
        await generations.write_many(conn, list(writes.generations.values()), now)
        await history.append_many(conn, [(i, e) for i, e in writes.history], now)
        if writes.sends:
            await outbox.notify(conn)
    return [
        _answer(inbound_id, w.prepared, result, ids)
        for w, inbound_id, (result, ids) in zip(batch, inbound_ids, answers, strict=True)
    ]


async def ingest(db: Database, route: Route, msg: Inbound) -> Result:
    """Store, render, decide, enqueue one webhook (a batch of one; ``committer.Committer`` groups concurrent
    webhooks). Raises only when the database fails (the caller answers 503)."""
    prepared = await prepare_async(route, msg)
    return (await commit(db, [Webhook(route, msg, prepared)]))[0]


async def record_too_large(db: Database, route: Route, msg: Inbound, size: int | None, limit: int) -> Result:
    """A body over the cap is not read to the end, but that it came is recorded (without the body)."""
    message = f"body is larger than {limit} bytes" + (f" ({size} bytes)" if size is not None else "")
    async with db.transaction() as conn:
        inbound_id = await inbound.insert(
            conn,
            inbound_store_row(
                route,
                msg,
                status=InboundStatus.TOO_LARGE.value,
                error={"kind": "body", "message": message},
                body=None,
                size=size if size is not None else limit + 1,
                n=0,
            ),
        )
    return Result(413, {"id": inbound_id, "error": "body_too_large", "message": message})


async def record_handshake(db: Database, route: Route, msg: Inbound, answer: dict[str, Any]) -> Result:
    """A source's handshake (SNS subscription confirmation): recorded, answered 200, never an alert."""
    async with db.transaction() as conn:
        inbound_id = await inbound.insert(
            conn,
            inbound_store_row(
                route,
                msg,
                status=InboundStatus.HANDSHAKE.value,
                error={"kind": "handshake", **answer},
                body=msg.body,
                size=len(msg.body),
                n=0,
            ),
        )
    return Result(200, {"id": inbound_id, **answer})


async def preview(db: Database | None, route: Route, msg: Inbound) -> tuple[Prepared, Plan | None]:
    """What ingest would do with ``msg`` now — against the current alias states when ``db`` is given (read only,
    nothing is written, nothing is locked), else as if every alias were new."""
    prepared = await prepare_async(route, msg)
    if prepared.status != InboundStatus.PROCESSED:
        return prepared, None
    records = {}
    if db is not None:
        async with db.connection() as conn:
            records = await aliases.load(conn, route.name, alias_keys(prepared.events))
    return prepared, plan(prepared.events, records, route.spec, datetime.now(UTC))


class ReplayError(Exception):
    pass


async def replay(
    db: Database, routes: Mapping[str, Route], inbound_id: int, *, force: bool = False, actor: str = "cli"
) -> Result:
    """Run a stored webhook through its integration's current template again (``alertbridge replay ID``).

    The replay is a row of its own (``inbound_replays``); the webhook's first outcome stays as it was. A webhook
    that was processed already is refused unless ``force`` (it would send its events again).
    """
    async with db.connection() as conn:
        row = await inbound.get(conn, inbound_id)
    if row is None:
        raise ReplayError(f"inbound event {inbound_id} does not exist")
    if row["status"] == InboundStatus.HANDSHAKE:
        raise ReplayError(f"inbound event {inbound_id} is a handshake (nothing to replay)")
    if row["status"] == InboundStatus.TOO_LARGE:
        raise ReplayError(f"inbound event {inbound_id} was too large; its body was not kept")
    if row["body"] is None:
        raise ReplayError(f"inbound event {inbound_id} has no body any more (removed by retention)")
    if row["current_status"] == InboundStatus.PROCESSED and not force:
        raise ReplayError(
            f"inbound event {inbound_id} was processed already; --force replays it anyway (its events are queued again)"
        )
    route = routes.get(row["integration"])
    if route is None:
        raise ReplayError(f"integration {row['integration']!r} of inbound event {inbound_id} is not configured")
    msg = Inbound(
        body=bytes(row["body"]),
        content_type=row["content_type"],
        headers=row["headers"],
        query=row["query"],
        remote_addr=row["remote_addr"],
        traceparent=row["traceparent"],
    )
    prepared = await prepare_async(route, msg)
    now = datetime.now(UTC)
    async with db.transaction() as conn:
        replay_id = await inbound.record_replay(
            conn,
            inbound_id,
            actor=actor,
            status=prepared.status.value,
            error=prepared.error,
            template_sha256=route.template.sha256,
            template_version_id=route.version_id,
            events_count=len(prepared.events),
        )
        result, ids = await _apply(
            conn, route, inbound_id, prepared.events, msg.traceparent, replay_id=replay_id, now=now
        )
    answer = _answer(inbound_id, prepared, result, ids)
    return Result(answer.status, {**answer.body, "replay_id": replay_id, "template_version_id": route.version_id})
