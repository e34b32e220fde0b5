"""The per-alias delivery rules and the target circuit breaker are pure: table tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alertbridge.core.circuit import (
    DOWN,
    UP,
    CircuitPolicy,
    Signal,
    TargetState,
    after_response,
    probe_delay,
    signal,
    target_key,
)
from alertbridge.core.delivery_rules import (
    AliasNow,
    CreateFacts,
    DeadRow,
    DeliveredRow,
    ReplayVerdict,
    before_send,
    plan_replay,
)

R, S = ReplayVerdict.REQUEUE, ReplayVerdict.SUPERSEDED


@pytest.mark.parametrize(
    ("action", "facts", "send", "blocked_by"),
    [
        ("create", CreateFacts(False, 7), True, None),  # a create always goes (it is what opens the alert)
        ("close", CreateFacts(True, None), True, None),
        ("close", CreateFacts(False, None), True, None),  # no create at all: forward_unknown
        ("close", CreateFacts(False, 7), False, 7),  # its create is dead: dies with it
        ("acknowledge", CreateFacts(False, 3), False, 3),
        ("note", CreateFacts(False, 3), False, 3),
        ("note", CreateFacts(True, 3), True, None),  # another create of the generation went out: the alert exists
    ],
)
def test_before_send(action: str, facts: CreateFacts, send: bool, blocked_by: int | None) -> None:
    check = before_send(action, facts)
    assert (check.send, check.blocked_by) == (send, blocked_by)
    if not send:
        assert f"blocked behind dead row {blocked_by}" in check.reason


def d(i: int, action: str, gen: int = 1) -> DeadRow:
    return DeadRow(i, action, gen)


REPLAYS = [
    # dead rows, alias now, delivered later rows -> verdicts
    ([d(1, "create")], AliasNow("open", 1), [], [R]),
    ([d(1, "create"), d(2, "close")], AliasNow("closed", 1), [], [R, R]),  # create, then close
    ([d(1, "create")], AliasNow("closed", 1), [], [S]),  # closed, no close follows: never a lone create
    ([d(1, "create")], AliasNow("closed", 1), [DeliveredRow(2, "close", 1)], [S]),
    ([d(1, "create"), d(2, "close")], AliasNow("open", 2), [DeliveredRow(3, "create", 2)], [S, S]),  # newer alert
    ([d(1, "close")], AliasNow("closed", 1), [], [R]),
    ([d(1, "close")], AliasNow("open", 2), [], [S]),  # would close the newer alert
    ([d(1, "acknowledge")], AliasNow("closed", 1), [DeliveredRow(2, "close", 1)], [S]),
    ([d(1, "acknowledge")], AliasNow("acknowledged", 1), [DeliveredRow(2, "note", 1)], [R]),
    ([d(1, "note"), d(2, "close")], AliasNow("closed", 1), [], [R, R]),
    ([d(1, "create"), d(2, "acknowledge")], AliasNow("closed", 1), [DeliveredRow(3, "close", 1)], [S, S]),
    ([d(2, "close", 0)], None, [], [R]),  # forwarded (forward_unknown): no alias row
    ([d(1, "create"), d(2, "close"), d(4, "create", 2)], AliasNow("open", 2), [], [S, S, R]),
]


@pytest.mark.parametrize(("dead", "alias", "delivered", "verdicts"), REPLAYS)
def test_plan_replay(
    dead: list[DeadRow], alias: AliasNow | None, delivered: list[DeliveredRow], verdicts: list[ReplayVerdict]
) -> None:
    steps = plan_replay(dead, alias, delivered)
    assert [s.verdict for s in steps] == verdicts
    assert [s.id for s in steps] == sorted(r.id for r in dead)
    assert all(s.reason for s in steps)


# --- circuit breaker --------------------------------------------------------------------------------------------

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
P = CircuitPolicy(failures=3, probe_base=1.0, probe_max=5.0, rate_limit_default=2.0)


@pytest.mark.parametrize(
    ("status", "sig"),
    [(None, Signal.FAILURE), (200, Signal.OK), (202, Signal.OK), (404, Signal.OK), (422, Signal.OK), (401, Signal.OK)]
    + [(429, Signal.RATE_LIMITED), (500, Signal.FAILURE), (503, Signal.FAILURE), (501, Signal.OK)],
)
def test_signal(status: int | None, sig: Signal) -> None:
    assert signal(status) == sig


def test_failures_take_the_target_down_then_a_probe_brings_it_back() -> None:
    s = TargetState()
    for n in (1, 2):
        t = after_response(s, Signal.FAILURE, now=NOW, policy=P)
        assert (t.after.state, t.after.failures, t.went_down) == (UP, n, False)
        s = t.after
    t = after_response(s, Signal.FAILURE, now=NOW, policy=P, error="503 server error")
    assert (t.after.state, t.went_down, t.after.down_since) == (DOWN, True, NOW)
    assert t.after.next_probe_at == NOW + timedelta(seconds=1)
    # a send that was under way does not move the probe schedule
    t2 = after_response(t.after, Signal.FAILURE, now=NOW, policy=P)
    assert t2.after.next_probe_at == t.after.next_probe_at and t2.after.probe_failures == 0
    # failed probes back off: 2, 4, 5 (capped) seconds
    s = t.after
    for n, wait in ((1, 2), (2, 4), (3, 5), (4, 5)):
        s = after_response(s, Signal.FAILURE, now=NOW, policy=P, probe=True).after
        assert (s.state, s.probe_failures, s.next_probe_at) == (DOWN, n, NOW + timedelta(seconds=wait))
    back = after_response(s, Signal.OK, now=NOW, policy=P, probe=True)
    assert (back.after.state, back.after.failures, back.resumed) == (UP, 0, True)


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    s = after_response(TargetState(failures=2), Signal.OK, now=NOW, policy=P)
    assert (s.after.failures, s.resumed) == (0, False)
    assert after_response(s.after, Signal.FAILURE, now=NOW, policy=P).after.state == UP


@pytest.mark.parametrize(
    ("retry_after", "before_until", "until"),
    [
        (5.0, None, NOW + timedelta(seconds=5)),
        (None, None, NOW + timedelta(seconds=2)),  # nothing said: rate_limit_default
        (1.0, NOW + timedelta(seconds=10), NOW + timedelta(seconds=10)),  # never shortens a longer pause
    ],
)
def test_429_pauses_the_whole_target(retry_after: float | None, before_until: datetime | None, until: datetime) -> None:
    t = after_response(
        TargetState(paused_until=before_until), Signal.RATE_LIMITED, now=NOW, policy=P, retry_after=retry_after
    )
    assert (t.after.state, t.after.paused_until) == (UP, until)


def test_a_429_probe_means_the_target_is_back_but_paused() -> None:
    down = TargetState(DOWN, 5, 2, None, NOW, NOW)
    t = after_response(down, Signal.RATE_LIMITED, now=NOW, policy=P, retry_after=3.0, probe=True)
    assert (t.after.state, t.resumed, t.after.paused_until) == (UP, True, NOW + timedelta(seconds=3))


def test_probe_delay_and_target_key() -> None:
    assert [probe_delay(n, P) for n in range(5)] == [1, 2, 4, 5, 5]
    k = target_key("https://api.opsgenie.com/", "secret-key")
    assert k == target_key("https://api.opsgenie.com", "secret-key") and len(k) == 64 and "secret" not in k
    assert k != target_key("https://api.eu.opsgenie.com", "secret-key")
    assert k != target_key("https://api.opsgenie.com", "other-key")
