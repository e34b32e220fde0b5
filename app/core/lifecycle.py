"""The alias lifecycle, pure: what one rendered event does to an alias.

``decide(state, action)`` answers whether to send the event to OpsGenie, what the alias's next state is, and
why — as a bounded ``Reason`` (usable as a metrics label) plus, where the template gave one, free text.
``advance(record, decision, now)`` is the alias row after the decision. Postgres holds the record, so stateless
sources (a cron job, a Genesys flow) can acknowledge or close the alert they opened earlier.

Base layer: imports nothing from ``alertbridge`` but ``models`` enums.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from alertbridge.models import AliasState

OPEN, ACKED, CLOSED = AliasState.OPEN.value, AliasState.ACKNOWLEDGED.value, AliasState.CLOSED.value
LIVE = (OPEN, ACKED)
ACTIONS = ("create", "acknowledge", "close", "note", "ignore")


class Verdict(enum.StrEnum):
    SEND = "send"  # an outbox row to deliver
    COALESCE = "coalesce"  # folded into a create that is queued and not sent yet
    IGNORE = "ignore"  # recorded, never sent
    SUPPRESS = "suppress"  # recorded, not sent because of a policy (a silence, a flap)
    DELAY = "delay"  # an outbox row to deliver later (a close held by close_delay)


class Reason(enum.StrEnum):
    """Why an event got its verdict. The value is a stable code; ``text`` is what people read."""

    NEW_ALERT = "new_alert"
    NEW_AFTER_CLOSE = "new_after_close"
    COALESCED = "coalesced"
    REPEAT_WHILE_OPEN = "repeat_while_open"
    REPEAT_WHILE_ACKNOWLEDGED = "repeat_while_acknowledged"
    ACKNOWLEDGE_OPEN = "acknowledge_open"
    ALREADY_ACKNOWLEDGED = "already_acknowledged"
    CLOSE_OPEN = "close_open"
    CLOSE_ACKNOWLEDGED = "close_acknowledged"
    NOTE_OPEN = "note_open"
    NOTE_ACKNOWLEDGED = "note_acknowledged"
    NO_OPEN_ALERT = "no_open_alert"
    CLOSED_IN_OPSGENIE = "closed_in_opsgenie"
    FORWARDED_UNKNOWN = "forwarded_unknown"
    IGNORED_BY_TEMPLATE = "ignored_by_template"
    # Policies (core/policies.py; docs/policies.md)
    SILENCED = "silenced"
    WITHHELD_ALERT = "withheld_alert"
    SILENCE_OVER = "silence_over"
    CLOSE_DELAYED = "close_delayed"
    FLAP = "flap"
    FLAPPING = "flapping"
    EXPIRED_CLOSE = "expired_close"
    EXPIRED_NOTE = "expired_note"
    EXPIRED_RESEND = "expired_resend"
    EXPIRED_LOCALLY = "expired_locally"
    SOURCE_SILENT = "source_silent"
    SOURCE_BACK = "source_back"
    PACED = "paced"

    @property
    def text(self) -> str:
        return _TEXT[self]


_TEXT = {
    Reason.NEW_ALERT: "new alert",
    Reason.NEW_AFTER_CLOSE: "new alert after close",
    Reason.COALESCED: "coalesced into the pending create",
    Reason.REPEAT_WHILE_OPEN: "repeat while open: OpsGenie increments count",
    Reason.REPEAT_WHILE_ACKNOWLEDGED: "repeat while acknowledged: OpsGenie increments count",
    Reason.ACKNOWLEDGE_OPEN: "acknowledge open alert",
    Reason.ALREADY_ACKNOWLEDGED: "already acknowledged",
    Reason.CLOSE_OPEN: "close open alert",
    Reason.CLOSE_ACKNOWLEDGED: "close acknowledged alert",
    Reason.NOTE_OPEN: "add note to open alert",
    Reason.NOTE_ACKNOWLEDGED: "add note to acknowledged alert",
    Reason.NO_OPEN_ALERT: "no open alert",
    Reason.CLOSED_IN_OPSGENIE: "already closed in OpsGenie",
    Reason.FORWARDED_UNKNOWN: "no open alert known; forwarded (forward_unknown)",
    Reason.IGNORED_BY_TEMPLATE: "ignored by template",
    Reason.SILENCED: "silenced: recorded, not sent",
    Reason.WITHHELD_ALERT: "OpsGenie does not have this alert (withheld by a silence): recorded, not sent",
    Reason.SILENCE_OVER: "the silence is over and the alert still fires: sent now",
    Reason.CLOSE_DELAYED: "close held for close_delay (flap damping): sent when the delay ends unless it fires again",
    Reason.FLAP: "fired again within close_delay: the held close is cancelled (a flap; no new alert)",
    Reason.FLAPPING: "flapping: noted on the alert",
    Reason.EXPIRED_CLOSE: "expired (expire_after): closed with a note",
    Reason.EXPIRED_NOTE: "expired (expire_after): a note asks whether it still fires",
    Reason.EXPIRED_RESEND: "expired (expire_after): the create is sent again",
    Reason.EXPIRED_LOCALLY: "expired (expire_after): closed here; OpsGenie never had it",
    Reason.SOURCE_SILENT: "the source has been silent longer than expect_every",
    Reason.SOURCE_BACK: "the source sends again",
    Reason.PACED: "paced: waited for a token of its target's rate limit",
}


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    next_state: str | None  # None: the alias row is left as it is (or not created)
    code: Reason
    detail: str | None = None  # free text from the template (ignore reasons)
    new_generation: bool = False  # a create that opens a new OpsGenie alert
    count_delta: int = 0

    @property
    def decision(self) -> str:
        return self.verdict.value

    @property
    def reason(self) -> str:
        return f"{self.code.text}: {self.detail}" if self.detail else self.code.text


def decide(
    state: str | None,
    action: str,
    *,
    create_pending: bool = False,
    forward_unknown: bool = False,
    ignore_reason: str | None = None,
    closed_in_opsgenie: bool = False,
) -> Decision:
    """The next step for ``action`` on an alias whose state is ``state`` (None: never seen).

    ``create_pending``: a create for this alias is queued and not yet sent.
    ``closed_in_opsgenie``: a human closed (or deleted) the alert in OpsGenie (we heard it by callback); an ack,
    close or note from the source is then recorded as such and not sent.
    ``forward_unknown``: send ack/close/note even when we know of no open alert (alerts opened before
    the bridge existed, or by another tool).
    ``ignore_reason``: why the template said "ignore".
    """
    if action == "ignore":
        return Decision(Verdict.IGNORE, None, Reason.IGNORED_BY_TEMPLATE, ignore_reason or None)
    if action == "create":
        if state is None:
            return Decision(Verdict.SEND, OPEN, Reason.NEW_ALERT, new_generation=True, count_delta=1)
        if state == CLOSED:
            return Decision(Verdict.SEND, OPEN, Reason.NEW_AFTER_CLOSE, new_generation=True, count_delta=1)
        if create_pending:
            return Decision(Verdict.COALESCE, state, Reason.COALESCED, count_delta=1)
        repeat = Reason.REPEAT_WHILE_OPEN if state == OPEN else Reason.REPEAT_WHILE_ACKNOWLEDGED
        return Decision(Verdict.SEND, state, repeat, count_delta=1)
    if action not in ("acknowledge", "close", "note"):
        raise ValueError(f"unknown action {action!r}")
    if state == CLOSED and closed_in_opsgenie:
        return Decision(Verdict.IGNORE, None, Reason.CLOSED_IN_OPSGENIE)
    if state not in LIVE:
        if forward_unknown:
            return Decision(Verdict.SEND, None, Reason.FORWARDED_UNKNOWN)
        return Decision(Verdict.IGNORE, None, Reason.NO_OPEN_ALERT)
    if action == "acknowledge":
        if state == ACKED:
            return Decision(Verdict.IGNORE, None, Reason.ALREADY_ACKNOWLEDGED)
        return Decision(Verdict.SEND, ACKED, Reason.ACKNOWLEDGE_OPEN)
    if action == "close":
        return Decision(Verdict.SEND, CLOSED, Reason.CLOSE_OPEN if state == OPEN else Reason.CLOSE_ACKNOWLEDGED)
    return Decision(Verdict.SEND, None, Reason.NOTE_OPEN if state == OPEN else Reason.NOTE_ACKNOWLEDGED)


_QUEUES_A_CREATE = frozenset({Reason.REPEAT_WHILE_OPEN, Reason.REPEAT_WHILE_ACKNOWLEDGED, Reason.SILENCE_OVER})


@dataclass(frozen=True)
class AliasRecord:
    """The part of an ``aliases`` row that webhooks decide (delivery owns the OpsGenie request ids)."""

    state: str
    generation: int
    count: int  # creates seen in this generation
    opened_at: datetime | None = None
    acknowledged_at: datetime | None = None
    closed_at: datetime | None = None
    create_pending: bool = False  # a create of this generation is queued and not sent yet
    acknowledged_by: str | None = None  # SOURCE, or the OpsGenie user a callback named
    closed_by: str | None = None
    closed_in_opsgenie: bool = False  # closed by a human in OpsGenie, not by our request
    # Policies (core/policies.py)
    suppressed: bool = False  # this generation's create was withheld by a silence: OpsGenie does not have it
    close_due_at: datetime | None = None  # a close held by close_delay goes out then (a firing before is a flap)
    flaps: tuple[datetime, ...] = ()  # recent flaps (for flap_threshold)
    priority: str | None = None  # the alert's priority (read from its generation; not written by plan)


#: Who acted, when the source's webhook (sent on by the bridge) acknowledged or closed an alert.
SOURCE = "source"


def advance(record: AliasRecord | None, decision: Decision, now: datetime) -> AliasRecord | None:
    """The alias after ``decision`` (None: still no row). Ignored events leave it as it was; a forwarded action
    for an alias we never saw creates no row."""
    if decision.verdict == Verdict.IGNORE:
        return record
    if decision.verdict == Verdict.SUPPRESS and decision.code == Reason.FLAP and record is not None:
        # The held close never went: the alert is live again, as it was before the close.
        state = decision.next_state or record.state
        return replace(
            record,
            state=state,
            count=record.count + decision.count_delta,
            closed_at=None,
            closed_by=None,
            close_due_at=None,
        )
    if decision.new_generation:
        suppressed = decision.verdict == Verdict.SUPPRESS
        return AliasRecord(
            state=OPEN,
            generation=(record.generation if record else 0) + 1,
            count=decision.count_delta,
            opened_at=now,
            create_pending=not suppressed,
            suppressed=suppressed,
        )
    if record is None:
        return None
    state = decision.next_state or record.state
    acked, closed = state == ACKED and record.state != ACKED, state == CLOSED and record.state != CLOSED
    return replace(
        record,
        state=state,
        count=record.count + decision.count_delta,
        create_pending=record.create_pending or decision.code in _QUEUES_A_CREATE,
        suppressed=record.suppressed and decision.code != Reason.SILENCE_OVER and state != CLOSED,
        acknowledged_at=now if acked else record.acknowledged_at,
        acknowledged_by=SOURCE if acked else record.acknowledged_by,
        closed_at=now if closed else record.closed_at,
        closed_by=SOURCE if closed else record.closed_by,
    )
