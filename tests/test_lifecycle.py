"""The alias lifecycle, as a table: (state, action, flags) -> (decision, next state, reason)."""

from __future__ import annotations

import pytest

from alertbridge.core.lifecycle import decide

NONE, OPEN, ACKED, CLOSED = None, "open", "acknowledged", "closed"

TABLE = [
    # state   action         pending fwd    decision    next     reason (prefix)                   new_gen delta
    (NONE, "create", False, False, "send", OPEN, "new alert", True, 1),
    (CLOSED, "create", False, False, "send", OPEN, "new alert after close", True, 1),
    (OPEN, "create", False, False, "send", OPEN, "repeat while open", False, 1),
    (OPEN, "create", True, False, "coalesce", OPEN, "coalesced into the pending create", False, 1),
    (ACKED, "create", False, False, "send", ACKED, "repeat while acknowledged", False, 1),
    (ACKED, "create", True, False, "coalesce", ACKED, "coalesced", False, 1),
    (OPEN, "acknowledge", False, False, "send", ACKED, "acknowledge open alert", False, 0),
    (ACKED, "acknowledge", False, False, "ignore", None, "already acknowledged", False, 0),
    (NONE, "acknowledge", False, False, "ignore", None, "no open alert", False, 0),
    (CLOSED, "acknowledge", False, False, "ignore", None, "no open alert", False, 0),
    (NONE, "acknowledge", False, True, "send", None, "no open alert known; forwarded", False, 0),
    (OPEN, "close", False, False, "send", CLOSED, "close open alert", False, 0),
    (ACKED, "close", False, False, "send", CLOSED, "close acknowledged alert", False, 0),
    (NONE, "close", False, False, "ignore", None, "no open alert", False, 0),
    (CLOSED, "close", False, False, "ignore", None, "no open alert", False, 0),
    (CLOSED, "close", False, True, "send", None, "no open alert known; forwarded", False, 0),
    (OPEN, "note", False, False, "send", None, "add note to open alert", False, 0),
    (ACKED, "note", False, False, "send", None, "add note to acknowledged alert", False, 0),
    (NONE, "note", False, False, "ignore", None, "no open alert", False, 0),
    (CLOSED, "note", False, True, "send", None, "no open alert known; forwarded", False, 0),
    (OPEN, "ignore", False, False, "ignore", None, "ignored by template", False, 0),
    (NONE, "ignore", False, True, "ignore", None, "ignored by template", False, 0),
]


@pytest.mark.parametrize(
    ("state", "action", "pending", "fwd", "decision", "next_state", "reason", "new_gen", "delta"), TABLE
)
def test_decide(state, action, pending, fwd, decision, next_state, reason, new_gen, delta) -> None:  # type: ignore[no-untyped-def]
    d = decide(state, action, create_pending=pending, forward_unknown=fwd)
    assert (d.decision, d.next_state, d.new_generation, d.count_delta) == (decision, next_state, new_gen, delta)
    assert d.reason.startswith(reason)


def test_every_outcome_has_a_reason() -> None:
    for state in (NONE, OPEN, ACKED, CLOSED):
        for action in ("create", "acknowledge", "close", "note", "ignore"):
            for pending in (False, True):
                for fwd in (False, True):
                    assert decide(state, action, create_pending=pending, forward_unknown=fwd).reason


def test_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        decide(OPEN, "escalate")
