"""The callback decision, as a table: every action x alias state x echo/not x current/older generation."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alertbridge.core.callbacks import (
    AliasView,
    Callback,
    CallbackError,
    CallbackReason,
    Echoes,
    decide,
    parse,
)
from alertbridge.models import CallbackOutcome

FIXTURES = Path(__file__).parent / "fixtures" / "opsgenie_callback"
OPENED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ALERT = "alert-current"
OLD_ALERT = "alert-older"


def view(state: str, *, alert_id: str | None = ALERT, last_sent: str | None = "create") -> AliasView:
    return AliasView("am", "a", 2, state, OPENED, alert_id, frozenset({OLD_ALERT}), last_sent)


def cb(action: str, *, echo: bool = False, alert_id: str = ALERT, created: datetime | None = None) -> Callback:
    return Callback(
        action=action,
        opsgenie_alias="am:a",
        alert_id=alert_id,
        tiny_id="7",
        username="alertbridge" if echo else "dana@example.com",
        source_type="API" if echo else "web",
        source_name="API" if echo else "",
        alert_created_at=created or OPENED + timedelta(seconds=1),
        updated_at_ns=1_800_000_000_000_000_000,
    )


A, R, IGN, E = CallbackOutcome.APPLIED, CallbackOutcome.RECORDED, CallbackOutcome.IGNORED, CallbackOutcome.ECHO
# action, state -> (outcome, reason, next state) for a human's action on the current alert
HUMAN = {
    ("Acknowledge", "open"): (A, CallbackReason.ACKNOWLEDGED, "acknowledged"),
    ("Acknowledge", "acknowledged"): (R, CallbackReason.ALREADY_ACKNOWLEDGED, None),
    ("Acknowledge", "closed"): (R, CallbackReason.ALERT_CLOSED, None),
    ("UnAcknowledge", "open"): (R, CallbackReason.NOT_ACKNOWLEDGED, None),
    ("UnAcknowledge", "acknowledged"): (A, CallbackReason.UNACKNOWLEDGED, "open"),
    ("UnAcknowledge", "closed"): (R, CallbackReason.ALERT_CLOSED, None),
    ("Close", "open"): (A, CallbackReason.CLOSED, "closed"),
    ("Close", "acknowledged"): (A, CallbackReason.CLOSED, "closed"),
    ("Close", "closed"): (R, CallbackReason.ALREADY_CLOSED, None),
    ("Delete", "open"): (A, CallbackReason.CLOSED, "closed"),
    ("Delete", "acknowledged"): (A, CallbackReason.CLOSED, "closed"),
    ("Delete", "closed"): (R, CallbackReason.ALREADY_CLOSED, None),
}
OTHER_ACTIONS = ("AddNote", "AssignOwnership", "TakeOwnership", "Escalate", "EscalateNext", "Snooze", "AddTags", "X")
STATES = ("open", "acknowledged", "closed")


@pytest.mark.parametrize(("action", "state"), sorted(HUMAN))
def test_a_humans_action_on_the_current_alert(action: str, state: str) -> None:
    d = decide(cb(action), view(state, last_sent="create"))
    assert (d.outcome, d.code, d.next_state) == HUMAN[(action, state)]
    assert d.cancel_pending == (d.next_state == "closed")


@pytest.mark.parametrize(("action", "state"), list(itertools.product(OTHER_ACTIONS, STATES)))
def test_other_actions_are_recorded_never_change_state(action: str, state: str) -> None:
    d = decide(cb(action), view(state))
    assert (d.outcome, d.next_state, d.cancel_pending) == (R, None, False)


@pytest.mark.parametrize(
    ("action", "state"), list(itertools.product(["Acknowledge", "UnAcknowledge", "Close", "Delete", "AddNote"], STATES))
)
def test_echoes_never_change_state(action: str, state: str) -> None:
    d = decide(cb(action, echo=True), view(state))
    assert (d.outcome, d.code, d.next_state, d.cancel_pending) == (E, CallbackReason.ECHO, None, False)


@pytest.mark.parametrize(("sent", "action"), [("acknowledge", "Acknowledge"), ("close", "Close"), ("note", "AddNote")])
def test_same_action_as_our_last_request_is_an_echo_even_without_our_user(sent: str, action: str) -> None:
    callback = Callback(action, "am:a", ALERT, "7", "System", "API", "Some API", OPENED, 1)
    assert decide(callback, view("acknowledged", last_sent=sent)).outcome == E
    # ... but a human doing the same thing in the UI is not.
    assert decide(cb(action), view("open", last_sent=sent)).outcome != E


@pytest.mark.parametrize("action", [*sorted({a for a, _ in HUMAN}), *OTHER_ACTIONS, "Create"])
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("echo", [False, True])
def test_an_older_generation_never_touches_the_current_one(action: str, state: str, echo: bool) -> None:
    # Known by its alertId ...
    d = decide(cb(action, echo=echo, alert_id=OLD_ALERT), view(state))
    assert (d.outcome, d.code, d.next_state, d.learn_alert) == (IGN, CallbackReason.OLDER_GENERATION, None, False)
    # ... or, before the current alert's id is known, by being created long before the generation opened.
    early = OPENED - timedelta(hours=1)
    d = decide(cb(action, echo=echo, alert_id="unknown", created=early), view(state, alert_id=None))
    assert (d.outcome, d.code, d.next_state) == (IGN, CallbackReason.OLDER_GENERATION, None)


def test_another_alert_with_our_alias_is_not_ours() -> None:
    d = decide(cb("Close", alert_id="someone-elses"), view("open"))
    assert (d.outcome, d.code, d.next_state) == (IGN, CallbackReason.OTHER_ALERT, None)


def test_create_confirms_and_learns_the_alert() -> None:
    d = decide(cb("Create", echo=True), view("open", alert_id=None))
    assert (d.outcome, d.learn_alert, d.next_state) == (E, True, None)
    # A Create for our alert that we did not just send (OpsGenie sends one when a team is added) is recorded.
    d = decide(cb("Create"), view("acknowledged", last_sent="acknowledge"))
    assert (d.outcome, d.code, d.next_state) == (R, CallbackReason.ALERT_CREATED, None)


def test_learns_the_alert_id_from_the_first_callback_that_names_it() -> None:
    assert decide(cb("Acknowledge"), view("open", alert_id=None)).learn_alert
    assert not decide(cb("Acknowledge"), view("open")).learn_alert


def test_unknown_alias_and_no_alias() -> None:
    assert decide(cb("Close"), None).code == CallbackReason.UNKNOWN_ALIAS
    no_alias = Callback("Close", None, ALERT, None, "x", "web", "", None, None)
    assert decide(no_alias, view("open")).code == CallbackReason.NO_ALIAS


def test_configured_echo_sources_and_users() -> None:
    ours = Callback("Acknowledge", "am:a", ALERT, "7", "System", "API", "prod-bridge", OPENED, 1)
    assert decide(ours, view("open", last_sent="create")).outcome == A
    assert decide(ours, view("open", last_sent="create"), Echoes(sources=frozenset({"prod-bridge"}))).outcome == E
    robot = Callback("Close", "am:a", ALERT, "7", "robot", "API", "x", OPENED, 1)
    assert decide(robot, view("open"), Echoes(users=frozenset({"robot"}))).outcome == E


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("0*.json")))
def test_the_shared_fixtures_parse(name: str) -> None:
    callback = parse(json.loads((FIXTURES / name).read_text()))
    assert callback.alert_id and callback.opsgenie_alias and callback.tiny_id == "4711"
    assert callback.updated_at_ns is not None and callback.updated_at_ns > 2**53  # kept exact
    assert callback.at is not None and callback.at.year == 2026
    assert callback.alert_created_at == datetime(2026, 9, 14, 8, 31, 42, 481000, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [
        [],
        "Acknowledge",
        {},
        {"action": None, "alert": {}},
        {"action": "Acknowledge"},
        {"action": "Acknowledge", "alert": "x"},
        {"action": {"x": 1}, "alert": {}},
        {"action": "Acknowledge", "alert": {"alias": ["a"]}},
        {"action": "Acknowledge", "alert": {"username": {"a": 1}}},
        {"action": "Acknowledge", "alert": {"alias": True}},
    ],
)
def test_hostile_bodies_are_refused_with_a_reason(body: object) -> None:
    with pytest.raises(CallbackError):
        parse(body)


def test_hostile_but_readable_bodies_parse() -> None:
    huge = {"action": "Acknowledge", "alert": {"alias": "a", "createdAt": 10**30, "updatedAt": -5, "tinyId": 12}}
    callback = parse(huge)
    assert (callback.alert_created_at, callback.updated_at_ns, callback.tiny_id) == (None, None, "12")
    assert parse({"action": "Whatever", "alert": {"alias": None}}).opsgenie_alias is None
    assert len(parse({"action": "A" * 5000, "alert": {"note": "n" * 5000}}).action) == 100
