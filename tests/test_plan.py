"""The plan step is pure: events + alias records + spec + now -> decisions, cuts, requests and alias writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alertbridge.core.lifecycle import AliasRecord, Reason, Verdict
from alertbridge.core.plan import PlanSpec, alias_keys, plan
from alertbridge.limits import normalize_event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)
SPEC = PlanSpec("am", scope_aliases=True, base_url="https://api.eu.opsgenie.com")


def ev(action: str, alias: str = "a", **fields: object) -> object:
    return normalize_event({"action": action, "alias": alias, "message": "m", **fields})


def rec(state: str, generation: int = 1, count: int = 1, pending: bool = False) -> AliasRecord:
    return AliasRecord(state, generation, count, opened_at=EARLIER, create_pending=pending)


# (records before, actions in one webhook, expected (verdict, reason) per event, the alias row written:
# (state, generation, count), or None when nothing is written)
TABLE = [
    ({}, ["create"], [("send", Reason.NEW_ALERT)], ("open", 1, 1)),
    ({}, ["create", "create"], [("send", Reason.NEW_ALERT), ("coalesce", Reason.COALESCED)], ("open", 1, 2)),
    ({}, ["create", "close"], [("send", Reason.NEW_ALERT), ("send", Reason.CLOSE_OPEN)], ("closed", 1, 1)),
    (
        {},
        ["create", "close", "create"],
        [("send", Reason.NEW_ALERT), ("send", Reason.CLOSE_OPEN), ("send", Reason.NEW_AFTER_CLOSE)],
        ("open", 2, 1),
    ),
    ({"a": rec("open")}, ["create"], [("send", Reason.REPEAT_WHILE_OPEN)], ("open", 1, 2)),
    (
        {"a": rec("open")},
        ["create", "create"],
        [("send", Reason.REPEAT_WHILE_OPEN), ("coalesce", Reason.COALESCED)],
        ("open", 1, 3),
    ),
    ({"a": rec("open", pending=True)}, ["create"], [("coalesce", Reason.COALESCED)], ("open", 1, 2)),
    (
        {"a": rec("open")},
        ["acknowledge", "acknowledge"],
        [("send", Reason.ACKNOWLEDGE_OPEN), ("ignore", Reason.ALREADY_ACKNOWLEDGED)],
        ("acknowledged", 1, 1),
    ),
    ({"a": rec("closed", 3)}, ["close"], [("ignore", Reason.NO_OPEN_ALERT)], None),
    ({"a": rec("closed", 3)}, ["create"], [("send", Reason.NEW_AFTER_CLOSE)], ("open", 4, 1)),
    ({}, ["note"], [("ignore", Reason.NO_OPEN_ALERT)], None),
]


@pytest.mark.parametrize(("records", "actions", "expected", "final"), TABLE)
def test_plan_threads_state_through_one_webhook(records, actions, expected, final) -> None:  # type: ignore[no-untyped-def]
    events = [ev(a, note="n") for a in actions]
    p = plan(events, records, SPEC, NOW)
    assert [(e.decision.verdict.value, e.decision.code) for e in p.events] == expected
    if final is None:
        assert p.aliases == []
    else:
        (write,) = p.aliases
        assert (write.record.state, write.record.generation, write.record.count) == final
        assert write.last_seq == max(i for i, (verdict, _) in enumerate(expected) if verdict != "ignore")


def test_timestamps_follow_the_lifecycle() -> None:
    p = plan([ev("create"), ev("acknowledge"), ev("close")], {}, SPEC, NOW)
    r = p.aliases[0].record
    assert (r.opened_at, r.acknowledged_at, r.closed_at) == (NOW, NOW, NOW)
    reopened = plan([ev("create")], {"a": r}, SPEC, NOW + timedelta(minutes=5)).aliases[0].record
    assert (reopened.generation, reopened.opened_at, reopened.acknowledged_at, reopened.closed_at) == (
        2,
        NOW + timedelta(minutes=5),
        None,
        None,
    )


def test_requests_scoped_aliases_and_cuts() -> None:
    long_alias = "x" * 600
    p = plan([ev("create", long_alias, priority="P1"), ev("close", "b")], {}, SPEC, NOW)
    create, close = p.events
    assert create.opsgenie_alias.startswith("am:x") and len(create.opsgenie_alias) == 512
    assert any(c["field"] == "alias" for c in create.cuts)
    assert create.request is not None and create.request.url == "https://api.eu.opsgenie.com/v2/alerts"
    assert create.request.json is not None and create.request.json["priority"] == "P1"
    # An ignored close still shows the request it maps to, but is not a send.
    assert close.decision.verdict == Verdict.IGNORE and not close.send
    assert close.request is not None and close.request.url.endswith("/am%3Ab/close?identifierType=alias")


def test_ignore_events_touch_no_alias() -> None:
    p = plan([normalize_event({"action": "ignore", "reason": "test notification"})], {}, SPEC, NOW)
    (e,) = p.events
    assert (e.decision.verdict, e.decision.reason, e.request, e.touches_alias) == (
        Verdict.IGNORE,
        "ignored by template: test notification",
        None,
        False,
    )
    assert p.aliases == [] and not p.sends


def test_forward_unknown_sends_without_a_row() -> None:
    spec = PlanSpec("am", forward_unknown=True)
    p = plan([ev("close", "never-seen")], {}, spec, NOW)
    assert p.events[0].decision.code == Reason.FORWARDED_UNKNOWN and p.sends and p.aliases == []


def test_alias_keys_sorted_unique_without_ignores() -> None:
    events = [ev("create", "b"), ev("close", "a"), ev("note", "b", note="x"), normalize_event({"action": "ignore"})]
    assert alias_keys(events) == ["a", "b"]
