"""The tables. Typed SQLAlchemy models, no queries and no I/O.

Reading order for an auditor: ``inbound_events`` (what came in) -> ``outbox`` (one row per rendered event:
what we decided and what we sent) -> ``delivery_attempts`` (every HTTP call and what OpsGenie answered);
``aliases`` is the current state of every alias. ``integrations`` mirrors the config file.

Secrets (inbound tokens, API keys) are never stored in any of these tables.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InboundStatus(enum.StrEnum):
    PROCESSED = "processed"  # rendered; its events are in the outbox
    TEMPLATE_ERROR = "template_error"  # the template (or an event it produced) failed: 422, replayable
    INVALID = "invalid"  # the body is not acceptable JSON: 400
    TOO_LARGE = "too_large"  # the body exceeded the cap: 413, body not kept
    HANDSHAKE = "handshake"  # a source's handshake (SNS subscription confirmation): answered, never an alert


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # due at next_attempt_at (first try or a retry)
    IN_FLIGHT = "in_flight"  # claimed by a worker until lease_until
    DELIVERED = "delivered"  # OpsGenie answered 2xx
    DEAD = "dead"  # rejected, or retries ran out: `alertbridge replay --dead` re-queues
    SKIPPED = "skipped"  # never sent: ignored by the state machine or coalesced


class AliasState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


def _values(e: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{m.value}'" for m in e)


class Integration(Base):
    __tablename__ = "integrations"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    template: Mapped[str] = mapped_column(Text)  # built-in name or file path, as configured
    template_sha256: Mapped[str] = mapped_column(Text)
    target_base_url: Mapped[str] = mapped_column(Text)
    target_region: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    managed_by: Mapped[str] = mapped_column(Text, server_default="file")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class InboundEvent(Base):
    __tablename__ = "inbound_events"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(InboundStatus)})", name="status"),
        Index("ix_inbound_events_integration_received", "integration", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    remote_addr: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    query: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    body_size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text)
    # What went wrong ({kind, message, line, ...}), or for a handshake what was answered ({kind: handshake, ...}).
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    template_sha256: Mapped[str | None] = mapped_column(Text)
    events_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    traceparent: Mapped[str | None] = mapped_column(Text)
    replay_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # `status` is what happened when the webhook arrived and never changes; `current_status` follows replays
    # (each replay is an `inbound_replays` row), so a fixed failure stays visible next to its fix.
    current_status: Mapped[str] = mapped_column(Text)


class InboundReplay(Base):
    """One replay of a stored webhook: when, with which template, by whom, and what it produced."""

    __tablename__ = "inbound_replays"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(InboundStatus)})", name="status"),
        Index("ix_inbound_replays_inbound", "inbound_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_events.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)  # "cli", or the console/API user
    status: Mapped[str] = mapped_column(Text)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    template_sha256: Mapped[str | None] = mapped_column(Text)
    events_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (CheckConstraint(f"state IN ({_values(AliasState)})", name="state"),)

    integration: Mapped[str] = mapped_column(Text, primary_key=True)
    alias: Mapped[str] = mapped_column(Text, primary_key=True)
    opsgenie_alias: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    count: Mapped[int] = mapped_column(Integer, server_default=text("1"))  # creates seen in this generation
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_action: Mapped[str] = mapped_column(Text)
    last_outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    # What OpsGenie returned for this generation's create: the requestId of the 202, then (once the
    # request status says it was processed) the alertId.
    create_request_id: Mapped[str | None] = mapped_column(Text)
    create_confirmed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    alert_id: Mapped[str | None] = mapped_column(Text)
    last_request_id: Mapped[str | None] = mapped_column(Text)


class Outbox(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(OutboxStatus)})", name="status"),
        CheckConstraint("action IN ('create', 'acknowledge', 'close', 'note', 'ignore')", name="action"),
        # The queue: due rows in order.
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            "id",
            postgresql_where=text("status IN ('pending', 'in_flight')"),
        ),
        # Per-alias ordering: "is an older row of this alias still unfinished?"
        Index(
            "ix_outbox_alias_active",
            "integration",
            "alias",
            "id",
            postgresql_where=text("status IN ('pending', 'in_flight')"),
        ),
        Index("ix_outbox_inbound", "inbound_id"),
        Index("ix_outbox_integration_alias", "integration", "alias"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_events.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(SmallInteger)  # position of the event in the webhook
    integration: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    alias: Mapped[str] = mapped_column(Text)  # the local alias, as the template rendered it
    opsgenie_alias: Mapped[str] = mapped_column(Text)  # what is sent (scoped, fitted to 512)
    generation: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)  # OpsGenie body fields, after limits
    cuts: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    decision: Mapped[str] = mapped_column(Text)  # send | coalesce | ignore
    reason: Mapped[str] = mapped_column(Text)  # readable
    reason_code: Mapped[str | None] = mapped_column(Text)  # a core.lifecycle.Reason value (bounded)
    replay_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_replays.id", ondelete="CASCADE"))
    traceparent: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(Text)
    # delivered | retry | config_error | rejected | waiting | blocked (its alert's create is dead) | expired (too old
    # while its target was down) | superseded (a replay found newer history: not re-sent)
    last_outcome: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Retry age is measured from here; `replay` resets it.
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class HistoryOrigin(enum.StrEnum):
    WEBHOOK = "webhook"  # a rendered event decided by the lifecycle
    CALLBACK = "callback"  # OpsGenie told us (an ack, a close by a human)
    CONSOLE = "console"  # an admin in the console or the admin API
    POLICY = "policy"  # a lifecycle policy (silence, debounce, expiry)


class AliasHistory(Base):
    """Append-only: one row per decision about an alias, whatever caused it. ``aliases`` is the current state."""

    __tablename__ = "alias_history"
    __table_args__ = (
        CheckConstraint(f"origin IN ({_values(HistoryOrigin)})", name="origin"),
        Index("ix_alias_history_alias", "integration", "alias", "id"),
        Index("ix_alias_history_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration: Mapped[str] = mapped_column(Text)
    alias: Mapped[str] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    origin: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)  # create | acknowledge | close | note, or a callback's action
    from_state: Mapped[str | None] = mapped_column(Text)
    to_state: Mapped[str | None] = mapped_column(Text)
    decision: Mapped[str | None] = mapped_column(Text)  # send | coalesce | ignore | ...
    reason_code: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(Text)  # who: the source, an OpsGenie user, a console user
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_events.id", ondelete="SET NULL"))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_outbox", "outbox_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)  # send | status_check
    worker: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    http_status: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    response_snippet: Mapped[str | None] = mapped_column(Text)
    # The row is written *before* the call (outcome 'started', finished_at NULL) and completed after it, so a
    # request OpsGenie may have acted on is in the audit even when the worker dies mid-call ('abandoned').
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TargetState(enum.StrEnum):
    UP = "up"
    DOWN = "down"  # the circuit is open: one probe at a time, the other rows wait


class DeliveryTarget(Base):
    """One OpsGenie target (base URL + API key) as every worker process sees it: a 429 pause and the circuit
    breaker live here, not in memory. ``key`` is a SHA-256 of the base URL and the API key; the key itself is
    never stored."""

    __tablename__ = "delivery_targets"
    __table_args__ = (CheckConstraint(f"state IN ({_values(TargetState)})", name="state"),)

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    base_url: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, server_default="up")
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # consecutive retryable failures
    probe_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # failed probes while down
    paused_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # 429: no request before
    down_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_probe_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    probe_outbox_id: Mapped[int | None] = mapped_column(BigInteger)  # the one row allowed through while down
    probe_owner: Mapped[str | None] = mapped_column(Text)
    probe_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the probe's lease
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
