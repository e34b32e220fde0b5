"""The plan step, pure: rendered events + the current alias records -> what to store and what to send.

Ingest, replay, ``alertbridge render`` and the console preview all call ``plan``, so a preview is exactly what
production would do. For each event it gives the decision against the alias state (threaded through the events
of one webhook in order: a create then a close of the same alias in one webhook see each other), the alias sent
to OpsGenie (scoped and fitted), every cut made to fit OpsGenie's limits, the exact HTTP request, and the alias
records to write back. The lifecycle policies of the integration (``spec.policies``: silences, the close delay,
flap counting; ``core/policies.py``) are applied here too, so a preview shows a silenced or delayed event exactly
as production would handle it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from alertbridge.core import policies as pol
from alertbridge.core.lifecycle import AliasRecord, Decision, Reason, Verdict, advance, decide
from alertbridge.limits import Event, fit_alias
from alertbridge.opsgenie import Request, build_request


@dataclass(frozen=True)
class PlanSpec:
    """What planning needs to know about the integration."""

    integration: str
    scope_aliases: bool = True
    forward_unknown: bool = False
    base_url: str = "https://api.opsgenie.com"  # for the exact request a preview shows
    policies: pol.Policies = pol.NO_POLICIES  # silences and [integrations.policies]
    delay_closes: bool = True  # False for the sweeper's own closes (expiry, source heartbeat)

    def opsgenie_alias(self, alias: str) -> tuple[str, dict[str, Any] | None]:
        scoped = f"{self.integration}:{alias}" if self.scope_aliases else alias
        fitted, cut = fit_alias(scoped)
        return fitted, (cut.to_dict() if cut else None)


@dataclass(frozen=True)
class PlannedEvent:
    seq: int  # position of the event in the webhook
    event: Event
    opsgenie_alias: str  # "" for ignore events
    generation: int
    decision: Decision
    cuts: list[dict[str, Any]]  # what was shortened or dropped to fit OpsGenie's limits (incl. the alias)
    request: Request | None  # the HTTP request this event maps to (sent only when the decision is "send")
    before: AliasRecord | None
    after: AliasRecord | None
    due_at: datetime | None = None  # a delayed close: not sent before then
    cancels_close: bool = False  # a flap: the alias's held close is cancelled
    details: dict[str, Any] = field(default_factory=dict)  # what a policy adds to the alias history
    priority: int = 3  # 1..5, the alert's priority (the order under pacing)

    @property
    def action(self) -> str:
        return self.event.action

    @property
    def alias(self) -> str:
        return self.event.alias

    @property
    def send(self) -> bool:
        """An outbox row to deliver (now, or at ``due_at``)."""
        return self.decision.verdict in (Verdict.SEND, Verdict.DELAY)

    @property
    def by_policy(self) -> bool:
        """A policy decided this event (its history row has origin 'policy')."""
        return self.decision.verdict in (Verdict.SUPPRESS, Verdict.DELAY) or self.decision.code in _POLICY_CODES

    @property
    def touches_alias(self) -> bool:
        """Whether the event is about an alias at all (ignore events of the template are not)."""
        return self.event.action != "ignore"


@dataclass(frozen=True)
class AliasWrite:
    """The alias row to write after the plan: its final record and the event that last touched it."""

    alias: str
    opsgenie_alias: str
    record: AliasRecord
    last_action: str
    last_seq: int
    new_generation: bool  # some event of the plan opened a new generation (reset what OpsGenie told us)


@dataclass(frozen=True)
class GenerationWrite:
    """One OpsGenie alert (alias generation) as the plan leaves it; ``opening`` is the create that opened it in
    this plan (its message, priority and the source's start time), None when it was opened earlier."""

    alias: str
    generation: int
    opsgenie_alias: str
    record: AliasRecord
    opening: Event | None


@dataclass(frozen=True)
class Plan:
    events: list[PlannedEvent] = field(default_factory=list)
    aliases: list[AliasWrite] = field(default_factory=list)
    generations: list[GenerationWrite] = field(default_factory=list)

    @property
    def sends(self) -> bool:
        return any(e.send for e in self.events)

    def to_dict(self) -> list[dict[str, Any]]:
        """The plan as JSON-ready data (what the 202, `render` and the preview show)."""
        out: list[dict[str, Any]] = []
        for e in self.events:
            item: dict[str, Any] = {
                "seq": e.seq,
                "action": e.action,
                "alias": e.alias,
                "opsgenie_alias": e.opsgenie_alias,
                "decision": e.decision.decision,
                "reason": e.decision.reason,
                "reason_code": e.decision.code.value,
            }
            if e.due_at is not None:
                item["due_at"] = e.due_at.isoformat()
            if e.details:
                item["policy"] = e.details
            if e.touches_alias:
                item["generation"] = e.generation
                item["state"] = {
                    "before": e.before.state if e.before else None,
                    "after": e.after.state if e.after else None,
                }
            if e.cuts:
                item["cuts"] = e.cuts
            if e.request is not None:
                item["request"] = {"method": e.request.method, "url": e.request.url, "json": e.request.json}
            out.append(item)
        return out


def alias_keys(events: Sequence[Event]) -> list[str]:
    """The aliases a list of events touches, sorted and unique (the order locks are taken in)."""
    return sorted({e.alias for e in events if e.action != "ignore"})


def plan(
    events: Sequence[Event],
    records: Mapping[str, AliasRecord | None],
    spec: PlanSpec,
    now: datetime,
) -> Plan:
    """Decide every event against the alias records (``records[alias]``; missing or None: never seen)."""
    current: dict[str, AliasRecord | None] = dict(records)
    planned: list[PlannedEvent] = []
    writes: dict[str, AliasWrite] = {}
    generations: dict[tuple[str, int], GenerationWrite] = {}
    marks: list[tuple[Event, str, AliasRecord, PlannedEvent]] = []
    for seq, event in enumerate(events):
        if event.action == "ignore":
            decision = decide(None, "ignore", ignore_reason=event.reason)
            planned.append(PlannedEvent(seq, event, "", 0, decision, _cuts(event), None, None, None))
            continue
        before = current.get(event.alias)
        base = decide(
            before.state if before else None,
            event.action,
            create_pending=bool(before and before.create_pending),
            forward_unknown=spec.forward_unknown,
            closed_in_opsgenie=bool(before and before.closed_in_opsgenie),
        )
        outcome = pol.apply(
            base,
            event.action,
            event.alias,
            event.fields,
            before,
            integration=spec.integration,
            now=now,
            policies=spec.policies,
            delay_closes=spec.delay_closes,
        )
        decision = outcome.decision
        after = _policy_record(advance(before, decision, now), outcome, event)
        og_alias, alias_cut = spec.opsgenie_alias(event.alias)
        cuts = _cuts(event) + ([alias_cut] if alias_cut else [])
        step = _step(seq, event, og_alias, decision, cuts, spec, before, after, outcome)
        planned.append(step)
        current[event.alias] = after
        if after is not None and decision.verdict != Verdict.IGNORE:
            earlier = writes.get(event.alias)
            writes[event.alias] = AliasWrite(
                alias=event.alias,
                opsgenie_alias=og_alias,
                record=after,
                last_action=event.action,
                last_seq=seq,
                new_generation=decision.new_generation or bool(earlier and earlier.new_generation),
            )
            key = (event.alias, after.generation)
            opened = generations[key].opening if key in generations else None
            generations[key] = GenerationWrite(
                event.alias, after.generation, og_alias, after, event if decision.new_generation else opened
            )
        if outcome.flaps is not None and outcome.flaps.marked and after is not None:
            marks.append((event, og_alias, after, step))
    # The flapping marks: a note on each alert that reached flap_threshold, after the webhook's own events.
    for n, (event, og_alias, record, step) in enumerate(marks, start=len(events)):
        s = spec.policies.settings
        fields = {"note": pol.flapping_note(s.flap_threshold, s.flap_window)}
        fields.update((k, event.fields[k]) for k in ("user", "source") if event.fields.get(k) is not None)
        note = Event("note", event.alias, fields, ())
        decision = Decision(Verdict.SEND, None, Reason.FLAPPING, f"{s.flap_threshold} flaps")
        request = build_request(spec.base_url, "note", og_alias, fields)
        details = {"flaps": s.flap_threshold, "flap_window": s.flap_window}
        planned.append(
            PlannedEvent(
                n,
                note,
                og_alias,
                record.generation,
                decision,
                [],
                request,
                record,
                record,
                details=details,
                priority=step.priority,
            )
        )
    return Plan(planned, list(writes.values()), list(generations.values()))


_POLICY_CODES = frozenset({Reason.SILENCE_OVER, Reason.FLAPPING})


def _policy_record(after: AliasRecord | None, outcome: pol.Outcome, event: Event) -> AliasRecord | None:
    """The alias after the decision, with what the policies keep on it (the held close's due time, the flaps,
    the alert's priority)."""
    if after is None:
        return None
    changes: dict[str, Any] = {}
    if outcome.due_at is not None:
        changes["close_due_at"] = outcome.due_at
    if outcome.flaps is not None:
        changes["flaps"] = outcome.flaps.recent
    if outcome.decision.new_generation:
        changes["priority"] = event.fields.get("priority")
    return replace(after, **changes) if changes else after


def _step(
    seq: int,
    event: Event,
    og_alias: str,
    decision: Decision,
    cuts: list[dict[str, Any]],
    spec: PlanSpec,
    before: AliasRecord | None,
    after: AliasRecord | None,
    outcome: pol.Outcome,
) -> PlannedEvent:
    generation = after.generation if after else (before.generation if before else 0)
    request = build_request(spec.base_url, event.action, og_alias, event.fields)
    if event.action == "create":
        priority = pol.priority_rank(event.fields.get("priority"))
    else:
        priority = pol.priority_rank((after or before).priority if (after or before) else None)  # type: ignore[union-attr]
    return PlannedEvent(
        seq,
        event,
        og_alias,
        generation,
        decision,
        cuts,
        request,
        before,
        after,
        due_at=outcome.due_at,
        cancels_close=outcome.cancels_close,
        details=outcome.details,
        priority=priority,
    )


def _cuts(event: Event) -> list[dict[str, Any]]:
    return [c.to_dict() for c in event.cuts]
