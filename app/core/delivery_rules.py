"""Per-alias delivery rules, pure: what a queued or dead row may do, given what happened to the other rows of its
alias. The end state in OpsGenie must always match the alias state in Postgres.

The claim (``store/outbox.py``) already holds a row while an older row of its alias is pending or in flight. Two
things it cannot see are decided here:

* **Before a send** (``before_send``): an acknowledge / close / note of a generation whose create is *dead* (and no
  other create of that generation was delivered) is not sent: the alert does not exist in OpsGenie, so the action
  would fail ("Alert does not exist") and a later replay of the create would open an alert nobody closes. The row
  dies with its create (``blocked``), visibly, and ``alertbridge replay --dead`` re-sends both in order. Rows of a
  *newer* generation are not held: a new alert still goes out while an old one waits for an operator.
* **Replaying dead rows** (``plan_replay``): a dead row is re-queued only when sending it now moves OpsGenie towards
  the alias state in Postgres. Rows of an older generation are superseded (a create would be merged into the newer
  alert, a close would close it); a create whose alert was closed since is re-sent only together with that close
  (create-then-close), never alone; an acknowledge or note after a delivered close is superseded.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

ACTIONS_NEEDING_AN_ALERT = frozenset({"acknowledge", "close", "note"})


@dataclass(frozen=True)
class CreateFacts:
    """The creates of a row's alias and generation that are older than the row."""

    delivered: bool = False  # some create of this generation reached OpsGenie
    dead_id: int | None = None  # the newest dead create of this generation


@dataclass(frozen=True)
class Precheck:
    send: bool
    blocked_by: int | None = None  # the dead create's outbox id
    reason: str = ""


SEND = Precheck(True)


def blocked_reason(dead_id: int) -> str:
    return (
        f"blocked behind dead row {dead_id}: the create of this alert is dead, so OpsGenie has no alert to act on; "
        "`alertbridge replay --dead` re-sends both in order"
    )


def before_send(action: str, facts: CreateFacts) -> Precheck:
    """May a row with ``action`` be sent now? (Its older rows are finished: the claim saw to that.)"""
    if action not in ACTIONS_NEEDING_AN_ALERT or facts.delivered or facts.dead_id is None:
        return SEND  # a create; or its alert's create went out; or there is no create (forward_unknown)
    return Precheck(False, facts.dead_id, blocked_reason(facts.dead_id))


# --- replaying dead rows --------------------------------------------------------------------------------------


class ReplayVerdict(enum.StrEnum):
    REQUEUE = "requeue"
    SUPERSEDED = "superseded"  # not re-sent: newer history makes it wrong now


@dataclass(frozen=True)
class DeadRow:
    id: int
    action: str
    generation: int


@dataclass(frozen=True)
class AliasNow:
    state: str  # open | acknowledged | closed
    generation: int


@dataclass(frozen=True)
class DeliveredRow:
    """A row of the same alias that reached OpsGenie."""

    id: int
    action: str
    generation: int


@dataclass(frozen=True)
class ReplayStep:
    id: int
    verdict: ReplayVerdict
    reason: str

    @property
    def requeue(self) -> bool:
        return self.verdict == ReplayVerdict.REQUEUE


def plan_replay(
    dead: Sequence[DeadRow], alias: AliasNow | None, delivered: Sequence[DeliveredRow] = ()
) -> list[ReplayStep]:
    """The verdict for each dead row of ONE alias (``alias``: its row in ``aliases``, None if it has none)."""
    rows = sorted(dead, key=lambda r: r.id)
    steps: dict[int, ReplayStep] = {}
    dropped_creates: set[int] = set()  # generations whose dead create is not re-sent

    def closed_later(row: DeadRow) -> int | None:
        later = [d.id for d in delivered if d.generation == row.generation and d.action == "close" and d.id > row.id]
        return min(later) if later else None

    def requeued_close_after(row: DeadRow) -> bool:
        return any(
            r.generation == row.generation and r.action == "close" and r.id > row.id and r.id not in steps for r in rows
        )

    for row in rows:
        verdict, reason = ReplayVerdict.REQUEUE, "re-queued"
        if alias is not None and row.generation < alias.generation:
            verdict = ReplayVerdict.SUPERSEDED
            reason = (
                f"not re-sent: a newer alert (generation {alias.generation}) of this alias exists since, and "
                f"OpsGenie would apply this {row.action} to it"
            )
        elif row.action == "create":
            closed = closed_later(row)
            if closed is not None:
                verdict = ReplayVerdict.SUPERSEDED
                reason = f"not re-sent: the alert was closed since (outbox {closed}); a lone create would reopen it"
            elif alias is not None and alias.state == "closed" and row.generation == alias.generation:
                if requeued_close_after(row):
                    reason = "re-queued with the close that follows it (create, then close)"
                else:
                    verdict = ReplayVerdict.SUPERSEDED
                    reason = "not re-sent: the alert is closed and no close follows; a lone create would open it"
        elif row.generation in dropped_creates:
            verdict = ReplayVerdict.SUPERSEDED
            reason = f"not re-sent: the create of this alert (generation {row.generation}) is not re-sent"
        elif row.action in ("acknowledge", "note") and (closed := closed_later(row)) is not None:
            verdict = ReplayVerdict.SUPERSEDED
            reason = f"not re-sent: the alert was closed since (outbox {closed})"
        elif row.action == "close" and (closed := closed_later(row)) is not None:
            verdict = ReplayVerdict.SUPERSEDED
            reason = f"not re-sent: a later close was delivered (outbox {closed})"
        if row.action == "create" and verdict == ReplayVerdict.SUPERSEDED:
            dropped_creates.add(row.generation)
        steps[row.id] = ReplayStep(row.id, verdict, reason)
    return [steps[r.id] for r in rows]
