"""Retention, pure: how old each kind of data may get, given the settings and the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Cutoffs:
    """Data older than these is removed; None keeps that kind forever."""

    raw_bodies: datetime | None  # webhook and callback bodies are emptied (the rows stay)
    events: datetime | None  # webhooks, outbox rows, attempts, history, callbacks, closed generations and aliases
    refused: datetime | None  # refused-webhook counts


def cutoffs(now: datetime, *, raw_bodies_days: float, events_days: float, refused_days: float) -> Cutoffs:
    def before(days: float) -> datetime | None:
        return now - timedelta(days=days) if days > 0 else None

    raw = before(raw_bodies_days)
    events = before(events_days)
    if raw is not None and events is not None and raw < events:
        raw = events  # a body never outlives its row
    return Cutoffs(raw, events, before(refused_days))
