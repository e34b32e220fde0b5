"""What the sweeper does to aliases, one alias per short transaction: stale-alert expiry, sending withheld alerts
once their silence is over, and source heartbeats. Each is a pure decision (``core/policies.py``) turned into
events that go through the same ``plan`` as every webhook (so silences and the lifecycle apply to them too), then
written like a webhook's: outbox rows (without an inbound webhook), alias and generation rows, and an
``alias_history`` row with origin ``policy`` and its reason. A policy never moves ``last_seen_at`` (the expiry clock
belongs to the source).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from alertbridge import metrics
from alertbridge.core import policies as pol
from alertbridge.core.lifecycle import LIVE, OPEN, SOURCE, AliasRecord, Reason, Verdict
from alertbridge.core.plan import Plan, PlannedEvent, plan
from alertbridge.db import Connection, Database
from alertbridge.ingest import Route, history_entry, outbox_row
from alertbridge.limits import Event, EventError, normalize_event
from alertbridge.store import aliases, generations, history, inbound, outbox
from alertbridge.store import silences as silences_store

log = logging.getLogger("alertbridge.sweeper")

BATCH = 200  # aliases per integration and run
WITHHELD_BATCH = 5000  # withheld aliases looked at per integration and run (matched against the silences in memory)


@dataclass(frozen=True)
class Done:
    """What one job did, by reason code (for sweeper_jobs.last_result and the metrics)."""

    counts: dict[str, int]

    def add(self, code: str) -> None:
        self.counts[code] = self.counts.get(code, 0) + 1


def _event(route: Route, raw: dict[str, Any]) -> Event | None:
    try:
        return normalize_event(raw, 0, route.defaults)
    except EventError as exc:  # a stored payload that no longer fits (it did when it was made): say so, skip it
        log.warning(
            "integration %s: cannot build the %s event for %s: %s", route.name, raw["action"], raw["alias"], exc
        )
        return None


def _override(e: PlannedEvent, code: Reason, detail: str | None) -> PlannedEvent:
    """The policy's own reason on a sent event (the lifecycle's would say "close open alert")."""
    if e.decision.verdict != Verdict.SEND:
        return e
    return replace(e, decision=replace(e.decision, code=code, detail=detail))


async def _write(conn: Connection, route: Route, result: Plan, now: datetime, details: Mapping[str, Any]) -> None:
    """A policy's plan, written as a webhook's would be (without an inbound webhook), history origin 'policy'."""
    ids = await outbox.insert(
        conn,
        integration=route.name,
        inbound_id=None,
        traceparent=None,
        rows=[outbox_row(e) for e in result.events],
    )
    await aliases.write(conn, route.name, result.aliases, ids, now, seen=False)
    await generations.write(conn, route.name, result.generations, now)
    entries = [history_entry(e, None, ids.get(e.seq), by_policy=True, details=details) for e in result.events]
    await history.append(conn, route.name, entries, now)
    if result.sends:
        await outbox.notify(conn)
    for e in result.events:
        metrics.policy(route.name, e.decision.code.value)


def _closed_by_bridge(result: Plan) -> Plan:
    """A close the bridge decided (expiry, a source that sends again) was not the source's."""
    aliases_ = [replace(w, record=_by_bridge(w.record)) for w in result.aliases]
    gens = [replace(g, record=_by_bridge(g.record)) for g in result.generations]
    return replace(result, aliases=aliases_, generations=gens)


def _by_bridge(record: AliasRecord) -> AliasRecord:
    return (
        replace(record, closed_by="alertbridge") if record.state == "closed" and record.closed_by == SOURCE else record
    )


def _spec(route: Route, silences: Sequence[pol.Silence] | None = None) -> Any:
    spec = replace(route.spec, delay_closes=False)
    if silences is not None:
        fresh = tuple(s for s in silences if s.integration in (None, route.name))
        spec = replace(spec, policies=replace(spec.policies, silences=fresh))
    return spec


# --- stale-alert expiry ------------------------------------------------------------------------------------------


async def expire(db: Database, route: Route, now: datetime, done: Done) -> None:
    settings = route.policies.settings
    if settings.expire_after <= 0:
        return
    async with db.connection() as conn:
        candidates = await aliases.stale(
            conn, route.name, quiet_since=now - timedelta(seconds=settings.expire_after), limit=BATCH
        )
    for alias in candidates:
        async with db.transaction() as conn:
            await aliases.lock(conn, route.name, [alias])
            row = await aliases.get(conn, route.name, alias)
            record = (await aliases.load(conn, route.name, [alias])).get(alias)
            if row is None or record is None:
                continue
            step = pol.expiry(
                state=record.state,
                last_seen_at=row["last_seen_at"],
                expired_at=row["expired_at"],
                suppressed=record.suppressed,
                now=now,
                settings=settings,
            )
            if step is None:
                continue
            await _expire_one(conn, route, alias, record, step, now, done)


_EXPIRY_CODES = {
    "close": Reason.EXPIRED_CLOSE,
    "note": Reason.EXPIRED_NOTE,
    "resend": Reason.EXPIRED_RESEND,
    "close_locally": Reason.EXPIRED_LOCALLY,
}


async def _expire_one(
    conn: Connection, route: Route, alias: str, record: AliasRecord, step: pol.Expiry, now: datetime, done: Done
) -> None:
    settings = route.policies.settings
    text = pol.expiry_text(step.action, step.idle, settings.expire_after)
    if step.action == "resend":
        payload = await outbox.latest_create(conn, route.name, alias, record.generation)
        raw: dict[str, Any] = {**(payload or {"message": f"{alias} (still open)"}), "action": "create", "alias": alias}
    elif step.action == "note":
        raw = {"action": "note", "alias": alias, "note": text}
    else:  # close, close_locally (the plan finds OpsGenie never had it: recorded, not sent)
        raw = {"action": "close", "alias": alias, "note": text}
    event = _event(route, raw)
    if event is None:
        return
    result = plan([event], {alias: record}, _spec(route), now)
    code = _EXPIRY_CODES[step.action]
    result = replace(result, events=[_override(e, code, text) for e in result.events])
    if step.action == "close_locally":
        result = replace(
            result,
            events=[replace(e, decision=replace(e.decision, code=code, detail=None)) for e in result.events],
        )
    result = _closed_by_bridge(result)
    await _write(conn, route, result, now, {"idle_seconds": round(step.idle), "expire_after": settings.expire_after})
    if step.action in ("note", "resend"):
        await aliases.mark_expired(conn, route.name, alias, now)
    done.add(code.value)


# --- the end of a silence: send what it withheld if it still fires ------------------------------------------------


async def release(db: Database, route: Route, now: datetime, done: Done) -> None:
    async with db.connection() as conn:
        withheld = await aliases.withheld(conn, route.name, limit=WITHHELD_BATCH)
        fresh = await silences_store.current(conn) if withheld else []
    # Only the ones no silence holds any more (a long maintenance keeps thousands withheld: no transaction for them).
    candidates = [a for a, fields in withheld if pol.silencing(fresh, route.name, a, fields, now) is None]
    for alias in candidates[:BATCH]:
        async with db.transaction() as conn:
            await aliases.lock(conn, route.name, [alias])
            record = (await aliases.load(conn, route.name, [alias])).get(alias)
            if record is None or not record.suppressed or record.state not in LIVE:
                continue
            payload = await outbox.latest_create(conn, route.name, alias, record.generation)
            if payload is None:
                continue
            event = _event(route, {**payload, "action": "create", "alias": alias})
            if event is None:
                continue
            events, start = [event], record
            if record.state != OPEN:  # acknowledged here while withheld: OpsGenie gets the alert, then the ack
                ack = _event(route, {"action": "acknowledge", "alias": alias})
                events, start = ([event, ack] if ack else [event]), replace(record, state=OPEN)
            result = plan(events, {alias: start}, _spec(route, fresh), now)
            if not result.events or result.events[0].decision.code != Reason.SILENCE_OVER:
                continue  # still silenced (by this or another silence)
            await _write(conn, route, result, now, {})
            done.add(Reason.SILENCE_OVER.value)


# --- source heartbeats -----------------------------------------------------------------------------------------------


async def source_heartbeat(db: Database, route: Route, now: datetime, watching: dict[str, str], done: Done) -> None:
    """Alert when the source has been silent for ``expect_every``; close that alert when it speaks again.
    ``watching``: integration -> since when it is expected to send (kept in sweeper_jobs.state)."""
    settings = route.policies.settings
    alias = pol.SOURCE_SILENT_ALIAS
    if settings.expect_every <= 0 and route.name not in watching:
        return  # never watched: no alert of ours can be open
    since = datetime.fromisoformat(watching.setdefault(route.name, now.isoformat()))
    if settings.expect_every <= 0:
        watching.pop(route.name)  # the expectation is gone: close our alert if it is open, then stop looking
    async with db.transaction() as conn:
        await aliases.lock(conn, route.name, [alias])
        record = (await aliases.load(conn, route.name, [alias])).get(alias)
        alert_open = record is not None and record.state in LIVE
        if settings.expect_every <= 0 and not alert_open:
            return
        last = await inbound.last_received(conn, route.name)
        what = pol.source_heartbeat(
            last_webhook_at=last,
            watching_since=since,
            alert_open=alert_open,
            now=now,
            expect_every=settings.expect_every,
        )
        if what is None:
            return
        quiet = pol.format_duration(settings.expect_every)
        if what == "open":
            last_text = last.isoformat(timespec="seconds") if last else "never"
            raw = {
                "action": "create",
                "alias": alias,
                "message": f"{route.name}: no webhook for {quiet}",
                "description": (
                    f"alertbridge expects integration {route.name!r} to send at least every {quiet} "
                    f"(expect_every). Last webhook: {last_text}."
                ),
                "priority": settings.expect_priority,
                "tags": ["alertbridge", "source-silent"],
            }
            code = Reason.SOURCE_SILENT
        else:
            raw = {"action": "close", "alias": alias, "note": f"{route.name} sends again (expect_every = {quiet})."}
            code = Reason.SOURCE_BACK
        event = _event(route, raw)
        if event is None:
            return
        result = plan([event], {alias: record} if record else {}, _spec(route), now)
        result = _closed_by_bridge(replace(result, events=[_override(e, code, None) for e in result.events]))
        await _write(conn, route, result, now, {"expect_every": settings.expect_every})
        done.add(code.value)
