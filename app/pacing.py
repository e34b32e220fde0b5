"""Rate pacing toward OpsGenie: the claim side of the token bucket of every paced target (``[integrations.target]
rate_per_minute``). The bucket lives in Postgres (``delivery_targets``, ``store/targets.py``), so every worker
process takes from the same one: a claim takes as many tokens as it has room for, claims at most that many rows
of the target (P1 creates before P5 notes, an alias's rows in order), and gives back what it could not use. A
status check or follow-up GET to a paced target takes a token of its own. The decisions (refill, capacity, the
rate after a 429) are ``core/policies.py``.

Rows that waited for a token are visible: a ``paced`` row in the alias history (with how long it waited) and the
``alertbridge_paced_total`` counter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from alertbridge import metrics
from alertbridge.core.lifecycle import Reason, Verdict
from alertbridge.core.policies import Bucket, format_duration
from alertbridge.db import Database
from alertbridge.models import HistoryOrigin
from alertbridge.store import history, outbox, targets

#: A row that waited at least this long for its claim under pacing gets a "paced" history row.
PACED_AFTER = 1.0


class _Target(Protocol):
    base_url: str
    key: str
    bucket: Bucket | None


@dataclass(frozen=True)
class PacedClaim:
    rows: list[outbox.Claimed]
    wait: float | None  # seconds until a paced target has a token again (None: no paced target ran dry)


def paced_integrations(target_of: Mapping[str, _Target]) -> dict[str, list[str]]:
    """Target key -> the integrations delivering to it, for the paced targets."""
    out: dict[str, list[str]] = {}
    for name, t in sorted(target_of.items()):
        if t.bucket is not None:
            out.setdefault(t.key, []).append(name)
    return out


async def claim(
    db: Database, *, worker: str, targets_of: Mapping[str, Any], free: int, lease_seconds: float
) -> PacedClaim:
    """Claim rows of the paced targets, each within its bucket (one short transaction per paced target)."""
    groups = paced_integrations(targets_of)
    target_map = {name: t.key for name, t in targets_of.items()}
    rows: list[outbox.Claimed] = []
    waits: list[float] = []
    for key, names in groups.items():
        if free - len(rows) <= 0:
            break
        t = targets_of[names[0]]
        bucket = _bucket_of(targets_of, names)
        async with db.transaction() as conn:
            got = await targets.take_tokens(conn, key, t.base_url, bucket, free - len(rows))
            claimed = await outbox.claim_paced(
                conn,
                worker=worker,
                limit=got.granted,
                lease_seconds=lease_seconds,
                integrations=names,
                target_of=target_map,
            )
            await targets.give_back(conn, key, bucket, got.granted - len(claimed))
            await _record_waits(conn, claimed, bucket, got.scale)
        if got.available < 1:
            waits.append(got.wait)
        rows += claimed
    return PacedClaim(rows, min(waits) if waits else None)


def _bucket_of(targets_of: Mapping[str, Any], names: list[str]) -> Bucket:
    """Integrations sharing a target may configure it differently: the slowest setting wins."""
    buckets = [targets_of[n].bucket for n in names]
    return min(buckets, key=lambda b: (b.rate_per_minute, b.capacity))


async def take_one(db: Database, target: _Target) -> bool:
    """One token for a call outside the claim (a status check, a follow-up GET); False: none now."""
    assert target.bucket is not None
    async with db.transaction() as conn:
        got = await targets.take_tokens(conn, target.key, target.base_url, target.bucket, 1)
    return got.granted == 1


async def _record_waits(conn: Any, rows: list[outbox.Claimed], bucket: Bucket, scale: float) -> None:
    """A ``paced`` history row for each claimed row that waited (the claim's transaction)."""
    waited = [r for r in rows if r.age >= PACED_AFTER and r.attempts == 0 and not r.reclaimed]
    by_integration: dict[str, list[history.Entry]] = {}
    rate = bucket.rate_per_minute * scale
    for r in waited:
        reason = f"{Reason.PACED.text}: waited {format_duration(r.age)} ({rate:g}/min)"
        by_integration.setdefault(r.integration, []).append(
            history.Entry(
                alias=r.alias,
                generation=r.generation,
                origin=HistoryOrigin.POLICY,
                action=r.action,
                from_state=None,
                to_state=None,
                decision=Verdict.SEND.value,
                reason_code=Reason.PACED.value,
                reason=reason,
                actor="policy",
                outbox_id=r.id,
                details={"waited_seconds": round(r.age, 3), "rate_per_minute": rate},
            )
        )
    if not by_integration:
        return
    now = await _now(conn)
    for integration, entries in by_integration.items():
        await history.append(conn, integration, entries, now)
        metrics.paced(integration, len(entries))


async def _now(conn: Any) -> Any:
    cur = await conn.execute("SELECT now() AS now")
    row = await cur.fetchone()
    return row["now"]
