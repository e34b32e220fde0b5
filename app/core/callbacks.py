"""Callbacks from OpsGenie / JSM (their outgoing "Webhook" integration), pure: parse one, and decide what it does
to the alias it names.

OpsGenie cannot sign callbacks, so the web layer authenticates them by a shared token; here the body is untrusted
data. A callback names the alert by the alias *we sent* (scoped, fitted), its ``alertId``/``tinyId``, the action
and who did it. Rules (docs/decisions.md, "Callbacks"):

- **Echo**: a callback caused by our own request (the user we send, one of our OpsGenie API integrations, or the
  same action as our last request for that alert) only confirms delivery. It never changes state and never causes a
  send.
- **Generations**: a callback for an older alert of the alias (its ``alertId`` belongs to an older generation, or
  the alert was created before the current generation opened) never touches the current one.
- **State**: an ack in OpsGenie makes the alias ``acknowledged`` (by whom, when); ``UnAcknowledge`` reopens; a close
  or delete closes the generation *in OpsGenie*, so a later resolve from the source is recorded and not sent.
- Anything else (a note, an ownership change, an escalation, an action we do not know) is recorded, never an error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from alertbridge.core.lifecycle import ACKED, CLOSED, LIVE, OPEN
from alertbridge.models import CallbackOutcome

#: OpsGenie's action name for each action the bridge sends.
SENT_ACTIONS = {"create": "Create", "acknowledge": "Acknowledge", "close": "Close", "note": "AddNote"}
#: How much earlier than the current generation's opening an alert must have been created to count as older
#: (OpsGenie's clock and ours differ a little; OpsGenie creates the alert after we opened the generation).
CLOCK_SKEW = timedelta(seconds=30)
MAX_TEXT = 1000
_INT64 = 2**63 - 1


class CallbackError(ValueError):
    """A body that is not an OpsGenie callback at all (answered 400)."""


class CallbackReason(enum.StrEnum):
    NO_ALIAS = "no_alias"
    UNKNOWN_ALIAS = "unknown_alias"
    OLDER_GENERATION = "older_generation"
    OTHER_ALERT = "other_alert"
    ECHO = "echo"
    ALERT_CREATED = "alert_created"
    ACKNOWLEDGED = "acknowledged"
    ALREADY_ACKNOWLEDGED = "already_acknowledged"
    UNACKNOWLEDGED = "unacknowledged"
    NOT_ACKNOWLEDGED = "not_acknowledged"
    CLOSED = "closed"
    ALREADY_CLOSED = "already_closed"
    ALERT_CLOSED = "alert_closed"
    RECORDED = "recorded"
    DUPLICATE = "duplicate"

    @property
    def text(self) -> str:
        return _TEXT[self]


_TEXT = {
    CallbackReason.NO_ALIAS: "the callback names no alias",
    CallbackReason.UNKNOWN_ALIAS: "no alias of ours has this OpsGenie alias (never sent by the bridge)",
    CallbackReason.OLDER_GENERATION: "for an older alert of this alias; the current one is not touched",
    CallbackReason.OTHER_ALERT: "for another OpsGenie alert with this alias; the current one is not touched",
    CallbackReason.ECHO: "echo of our own request: delivery confirmed",
    CallbackReason.ALERT_CREATED: "the alert exists in OpsGenie",
    CallbackReason.ACKNOWLEDGED: "acknowledged in OpsGenie",
    CallbackReason.ALREADY_ACKNOWLEDGED: "acknowledged in OpsGenie; already acknowledged here",
    CallbackReason.UNACKNOWLEDGED: "unacknowledged in OpsGenie: open again",
    CallbackReason.NOT_ACKNOWLEDGED: "unacknowledged in OpsGenie; was not acknowledged here",
    CallbackReason.CLOSED: "closed in OpsGenie",
    CallbackReason.ALREADY_CLOSED: "closed in OpsGenie; already closed here",
    CallbackReason.ALERT_CLOSED: "the alert is closed here; recorded only",
    CallbackReason.RECORDED: "recorded (no change of state)",
    CallbackReason.DUPLICATE: "OpsGenie sent this callback before; nothing done",
}


@dataclass(frozen=True)
class Callback:
    action: str
    opsgenie_alias: str | None
    alert_id: str | None
    tiny_id: str | None
    username: str | None
    source_type: str | None
    source_name: str | None
    alert_created_at: datetime | None
    updated_at_ns: int | None
    note: str | None = None
    owner: str | None = None

    @property
    def at(self) -> datetime | None:
        """When OpsGenie says the action happened (its ``updatedAt``, nanoseconds since the epoch)."""
        if self.updated_at_ns is None:
            return None
        try:
            return datetime.fromtimestamp(self.updated_at_ns / 1e9, UTC)
        except (OverflowError, OSError, ValueError):
            return None

    @property
    def actor(self) -> str:
        return self.username or self.source_name or "OpsGenie"


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise CallbackError(f"{where} must be a string, got {type(value).__name__}")
    text = str(value).replace("\x00", "").strip()
    return text[:MAX_TEXT] or None


def _int(value: Any) -> int | None:
    """An integer within Postgres's bigint, else None (OpsGenie's updatedAt is in ns: above 2^53, keep it exact)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT64:
        return None
    return value


def _millis(value: Any) -> datetime | None:
    number = _int(value)
    if number is None:
        return None
    try:
        return datetime.fromtimestamp(number / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse(body: Any) -> Callback:
    """Read a callback body; CallbackError says what is wrong with one that is not a callback."""
    if not isinstance(body, dict):
        raise CallbackError("the body must be a JSON object (an OpsGenie alert action callback)")
    raw_action = body.get("action")
    action = _text(raw_action, "action") if isinstance(raw_action, str) else None
    if not action:
        raise CallbackError("'action' is missing: not an OpsGenie alert action callback")
    alert = body.get("alert")
    if not isinstance(alert, dict):
        raise CallbackError("'alert' must be an object")
    source = body.get("source")
    source = source if isinstance(source, dict) else {}
    return Callback(
        action=action[:100],
        opsgenie_alias=_text(alert.get("alias"), "alert.alias"),
        alert_id=_text(alert.get("alertId"), "alert.alertId"),
        tiny_id=_text(alert.get("tinyId"), "alert.tinyId"),
        username=_text(alert.get("username"), "alert.username"),
        source_type=_text(source.get("type"), "source.type"),
        source_name=_text(source.get("name"), "source.name"),
        alert_created_at=_millis(alert.get("createdAt")),
        updated_at_ns=_int(alert.get("updatedAt")),
        note=_text(alert.get("note"), "alert.note"),
        owner=_text(alert.get("owner"), "alert.owner"),
    )


@dataclass(frozen=True)
class AliasView:
    """What a callback is decided against: the alias's current generation, as Postgres has it."""

    integration: str
    alias: str
    generation: int
    state: str
    opened_at: datetime | None
    alert_id: str | None  # of the current generation, once known
    older_alert_ids: frozenset[str] = frozenset()
    last_sent_action: str | None = None  # our newest delivered/in-flight request of this generation


@dataclass(frozen=True)
class Echoes:
    """How to recognise our own requests (config ``[callbacks]``)."""

    users: frozenset[str] = frozenset({"alertbridge"})  # the `user` the bridge sends
    sources: frozenset[str] = frozenset()  # names of the OpsGenie API integrations the bridge uses


@dataclass(frozen=True)
class CallbackDecision:
    outcome: CallbackOutcome
    code: CallbackReason
    next_state: str | None = None  # None: the alias's state is not changed
    learn_alert: bool = False  # store alertId/tinyId on the current generation
    cancel_pending: bool = False  # skip our queued ack/close/note of this generation (closed in OpsGenie)

    @property
    def reason(self) -> str:
        return self.code.text


def is_echo(cb: Callback, view: AliasView, echoes: Echoes) -> bool:
    if cb.username is not None and cb.username in echoes.users:
        return True
    if cb.source_type == "API" and cb.source_name is not None and cb.source_name in echoes.sources:
        return True
    ours = SENT_ACTIONS.get(view.last_sent_action or "")
    return ours is not None and ours == cb.action and cb.source_type in (None, "API")


def _generation_matches(cb: Callback, view: AliasView) -> CallbackReason | None:
    """None when the callback is about the current generation's alert, else why not."""
    if cb.alert_id is not None and cb.alert_id in view.older_alert_ids:
        return CallbackReason.OLDER_GENERATION
    created_before = (
        cb.alert_created_at is not None
        and view.opened_at is not None
        and cb.alert_created_at < view.opened_at - CLOCK_SKEW
    )
    if cb.alert_id is not None and view.alert_id is not None and cb.alert_id != view.alert_id:
        return CallbackReason.OLDER_GENERATION if created_before else CallbackReason.OTHER_ALERT
    if view.alert_id is None and created_before:
        return CallbackReason.OLDER_GENERATION
    return None


def decide(cb: Callback, view: AliasView | None, echoes: Echoes = Echoes()) -> CallbackDecision:
    """What ``cb`` does to the alias ``view`` (None: no alias of ours has the callback's OpsGenie alias)."""
    if cb.opsgenie_alias is None:
        return CallbackDecision(CallbackOutcome.IGNORED, CallbackReason.NO_ALIAS)
    if view is None:
        return CallbackDecision(CallbackOutcome.IGNORED, CallbackReason.UNKNOWN_ALIAS)
    mismatch = _generation_matches(cb, view)
    if mismatch is not None:
        return CallbackDecision(CallbackOutcome.IGNORED, mismatch)
    learn = cb.alert_id is not None and view.alert_id is None
    if cb.action == "Create":
        # Only the bridge creates alerts with our aliases; a Create is also sent when a team is added.
        echo = is_echo(cb, view, echoes) or view.last_sent_action == "create"
        outcome = CallbackOutcome.ECHO if echo else CallbackOutcome.RECORDED
        return CallbackDecision(outcome, CallbackReason.ECHO if echo else CallbackReason.ALERT_CREATED, None, learn)
    if is_echo(cb, view, echoes):
        return CallbackDecision(CallbackOutcome.ECHO, CallbackReason.ECHO, None, learn)
    state = view.state
    if cb.action == "Acknowledge":
        if state == OPEN:
            return CallbackDecision(CallbackOutcome.APPLIED, CallbackReason.ACKNOWLEDGED, ACKED, learn)
        code = CallbackReason.ALREADY_ACKNOWLEDGED if state == ACKED else CallbackReason.ALERT_CLOSED
        return CallbackDecision(CallbackOutcome.RECORDED, code, None, learn)
    if cb.action == "UnAcknowledge":
        if state == ACKED:
            return CallbackDecision(CallbackOutcome.APPLIED, CallbackReason.UNACKNOWLEDGED, OPEN, learn)
        code = CallbackReason.NOT_ACKNOWLEDGED if state == OPEN else CallbackReason.ALERT_CLOSED
        return CallbackDecision(CallbackOutcome.RECORDED, code, None, learn)
    if cb.action in ("Close", "Delete"):
        if state in LIVE:
            return CallbackDecision(CallbackOutcome.APPLIED, CallbackReason.CLOSED, CLOSED, learn, cancel_pending=True)
        return CallbackDecision(CallbackOutcome.RECORDED, CallbackReason.ALREADY_CLOSED, None, learn)
    return CallbackDecision(CallbackOutcome.RECORDED, CallbackReason.RECORDED, None, learn)
