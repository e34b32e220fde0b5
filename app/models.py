"""The tables. Typed SQLAlchemy models, no queries and no I/O.

Reading order for an auditor: ``inbound_events`` (what came in, and the ``template_versions`` row that rendered
it) -> ``outbox`` (one row per rendered event: what we decided and what we sent) -> ``delivery_attempts`` (every
HTTP call and what OpsGenie answered); ``aliases`` is the current state of every alias. ``integrations`` holds
what the config file and the console declare; ``admin_audit`` every change made in the console or the admin API.

Secrets are never stored in clear: webhook tokens, admin tokens and session ids as SHA-256 hashes, console
passwords as argon2 hashes, console-entered OpsGenie API keys Fernet-encrypted (``ALERTBRIDGE_SECRET_KEY``).
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
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
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
    PAYLOAD_ERROR = "payload_error"  # the payload lacks what the template needs (fail_payload/require): 422
    INVALID = "invalid"  # the body is not acceptable JSON: 400
    TOO_LARGE = "too_large"  # the body exceeded the cap: 413, body not kept
    HANDSHAKE = "handshake"  # a source's handshake (SNS subscription confirmation): answered, never an alert


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # due at next_attempt_at (first try or a retry)
    IN_FLIGHT = "in_flight"  # claimed by a worker until lease_until
    DELIVERED = "delivered"  # OpsGenie answered 2xx
    DEAD = "dead"  # rejected, or retries ran out: `alertbridge replay --dead` re-queues
    SKIPPED = "skipped"  # never sent: ignored by the state machine or coalesced
    DISCARDED = "discarded"  # a dead letter an admin gave up on (the reason is on the row and in admin_audit)


class AliasState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


def _values(e: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{m.value}'" for m in e)


class ManagedBy(enum.StrEnum):
    FILE = "file"  # declared in the config file (provisioning): the file wins at every apply
    CONSOLE = "console"  # created in the console or the admin API


class AuthMode(enum.StrEnum):
    TOKEN = "token"  # webhook tokens (bearer, basic password, ?token=, a custom header)
    HMAC = "hmac-sha256"
    SENTRY = "sentry"
    SNS = "sns"
    NONE = "none"  # allow_unauthenticated


class Role(enum.StrEnum):
    ADMIN = "admin"  # reads and changes
    VIEWER = "viewer"  # reads only


class Integration(Base):
    """One integration: what the config file (``managed_by = 'file'``) or the console declares. The runtime
    registry of every process is built from these rows (+ the file's secrets for file-managed ones)."""

    __tablename__ = "integrations"
    __table_args__ = (
        CheckConstraint(f"managed_by IN ({_values(ManagedBy)})", name="managed_by"),
        CheckConstraint(f"auth_mode IN ({_values(AuthMode)})", name="auth_mode"),
    )

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    template: Mapped[str] = mapped_column(Text)  # as configured: built-in name or file path (console: the start)
    template_sha256: Mapped[str] = mapped_column(Text)  # of the active version
    target_base_url: Mapped[str] = mapped_column(Text)
    target_region: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    managed_by: Mapped[str] = mapped_column(Text, server_default="file")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    auth_mode: Mapped[str] = mapped_column(Text, server_default="token")
    token_header: Mapped[str | None] = mapped_column(Text)  # lower-case; an extra header carrying the token
    # Console-managed: the OpsGenie API key, Fernet-encrypted with ALERTBRIDGE_SECRET_KEY. NULL for file-managed
    # integrations (their key stays in the config file / environment).
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    default_team: Mapped[str | None] = mapped_column(Text)
    default_priority: Mapped[str | None] = mapped_column(Text)
    default_source: Mapped[str | None] = mapped_column(Text)
    scope_aliases: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    forward_unknown: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    priorities: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    locked: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))  # file: refuse console/API edits
    active_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("template_versions.id", ondelete="SET NULL", use_alter=True)
    )
    # The template source the config file last applied (sha256): the console shows "template changed in console
    # since the file was applied" while the active version differs; when the file's template changes, it wins.
    file_template_sha256: Mapped[str | None] = mapped_column(Text)
    file_applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # [integrations.policies] and the target's pacing (core.policies.PolicySettings.to_dict: only what is set)
    policies: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class TemplateVersion(Base):
    """Immutable: every template an integration ever had, numbered per integration. A restore is a new row."""

    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("integration", "version"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration: Mapped[str] = mapped_column(ForeignKey("integrations.name", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(Text)  # a console user, "token:NAME", or "config file"
    comment: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    restored_from: Mapped[int | None] = mapped_column(Integer)  # the version number this one restores


class IntegrationToken(Base):
    """A webhook token of a console-managed integration, as its SHA-256 (shown once, at creation). Several may
    be valid at once, so a rotation keeps the old one until it is removed."""

    __tablename__ = "integration_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration: Mapped[str] = mapped_column(ForeignKey("integrations.name", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)


class ConfigState(Base):
    """One row: a counter bumped by every change to integrations or templates. Every process polls it (and
    LISTENs on ``alertbridge_config``) and rebuilds its registry when it moved."""

    __tablename__ = "config_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"), autoincrement=False)
    counter: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConsoleUser(Base):
    __tablename__ = "console_users"
    __table_args__ = (CheckConstraint(f"role IN ({_values(Role)})", name="role"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id
    role: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class AdminToken(Base):
    """An admin API token (``Authorization: Bearer``), as its SHA-256; shown once by ``admin create-token``."""

    __tablename__ = "admin_tokens"
    __table_args__ = (CheckConstraint(f"role IN ({_values(Role)})", name="role"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    token_sha256: Mapped[str] = mapped_column(Text, unique=True)
    role: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AdminSession(Base):
    """A console session, server side: the cookie holds the id, this table its SHA-256. Logout deletes it."""

    __tablename__ = "admin_sessions"

    id_sha256: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    remote_addr: Mapped[str | None] = mapped_column(Text)


class LoginFailure(Base):
    """A failed console login: the rate limit counts these (per name and per address), across processes."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    name: Mapped[str] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(Text)


class AdminAudit(Base):
    """Every change made in the console or the admin API: who, when, what, before -> after. Never a secret."""

    __tablename__ = "admin_audit"
    __table_args__ = (Index("ix_admin_audit_at", "at"), Index("ix_admin_audit_target", "target", "id"))

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)  # a console user name or "token:NAME" (or "cli")
    action: Mapped[str] = mapped_column(Text)  # e.g. template.save, integration.create, dead_letter.discard
    target: Mapped[str] = mapped_column(Text)  # e.g. integration:alertmanager, outbox:12
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


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
    template_version_id: Mapped[int | None] = mapped_column(ForeignKey("template_versions.id", ondelete="SET NULL"))
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
    template_version_id: Mapped[int | None] = mapped_column(ForeignKey("template_versions.id", ondelete="SET NULL"))
    events_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (
        CheckConstraint(f"state IN ({_values(AliasState)})", name="state"),
        Index("ix_aliases_opsgenie_alias", "opsgenie_alias"),  # callbacks name the alias we sent
        Index("ix_aliases_last_outbox", "last_outbox_id"),  # keeps the foreign key cheap when outbox rows go
        # The sweeper's scans: live aliases by last webhook (expiry), withheld alerts (the end of a silence).
        Index("ix_aliases_live_seen", "integration", "last_seen_at", postgresql_where=text("state <> 'closed'")),
        Index("ix_aliases_suppressed", "integration", postgresql_where=text("suppressed")),
    )

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
    # Who acknowledged / closed this generation: "source" (the webhook's sender, through us) or the OpsGenie user
    # a callback named; `closed_in_opsgenie` when a human (not our request) closed it in OpsGenie.
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    closed_by: Mapped[str | None] = mapped_column(Text)
    closed_in_opsgenie: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    tiny_id: Mapped[str | None] = mapped_column(Text)
    # Lifecycle policies (core/policies.py): this generation's create was withheld by a silence (OpsGenie does not
    # have it); a close held by close_delay goes out at close_due_at (a firing before it is a flap); recent flaps;
    # when expiry last noted or re-sent the alert.
    suppressed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    close_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    flaps: Mapped[list[datetime]] = mapped_column(ARRAY(DateTime(timezone=True)), server_default=text("'{}'"))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Generation(Base):
    """One row per OpsGenie alert an alias opened: (integration, alias, generation). ``aliases`` is the current
    generation only; this keeps all of them, with what OpsGenie calls the alert (alertId, tinyId "#1234")."""

    __tablename__ = "generations"
    __table_args__ = (
        CheckConstraint(f"state IN ({_values(AliasState)})", name="state"),
        Index("ix_generations_alert_id", "alert_id"),
        Index("ix_generations_opsgenie_alias", "opsgenie_alias"),
        Index("ix_generations_opened_at", "opened_at"),
    )

    integration: Mapped[str] = mapped_column(Text, primary_key=True)
    alias: Mapped[str] = mapped_column(Text, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    opsgenie_alias: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)
    priority: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    source_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the source's own start
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_acknowledged_by: Mapped[str | None] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(Text)
    closed_in_opsgenie: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    occurrences: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    alert_id: Mapped[str | None] = mapped_column(Text)
    tiny_id: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CallbackOutcome(enum.StrEnum):
    APPLIED = "applied"  # changed the alias (a human acked/closed in OpsGenie)
    ECHO = "echo"  # caused by our own request: confirms delivery, never causes a send
    RECORDED = "recorded"  # kept in the history, no state change (a note, an ownership change, ...)
    IGNORED = "ignored"  # not for a current alert of ours (unknown alias, older generation, ...)
    DUPLICATE = "duplicate"  # OpsGenie sent this one before


class Callback(Base):
    """Every authenticated callback from OpsGenie / JSM (their outgoing "Webhook" integration)."""

    __tablename__ = "callbacks"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({_values(CallbackOutcome)})", name="outcome"),
        Index("ix_callbacks_alias", "integration", "alias", "id"),
        Index("ix_callbacks_received_at", "received_at"),
        Index(
            "uq_callbacks_dedup",
            "alert_id",
            "action",
            "updated_at_ns",
            unique=True,
            postgresql_where=text("outcome <> 'duplicate'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    remote_addr: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)  # as OpsGenie named it (Acknowledge, AddNote, ...)
    opsgenie_alias: Mapped[str | None] = mapped_column(Text)
    alert_id: Mapped[str | None] = mapped_column(Text)
    tiny_id: Mapped[str | None] = mapped_column(Text)
    username: Mapped[str | None] = mapped_column(Text)
    source_type: Mapped[str | None] = mapped_column(Text)
    source_name: Mapped[str | None] = mapped_column(Text)
    alert_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at_ns: Mapped[int | None] = mapped_column(BigInteger)  # OpsGenie's updatedAt (nanoseconds)
    at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # when OpsGenie says it happened
    integration: Mapped[str | None] = mapped_column(Text)  # the alias it was matched to, if any
    alias: Mapped[str | None] = mapped_column(Text)
    generation: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # the raw callback (retention may remove it)


class RefusedWebhook(Base):
    """Webhooks refused before anything was stored (bad token, bad signature, unknown integration), counted per
    minute, integration, remote address and reason — never the body or the credential presented."""

    __tablename__ = "refused_webhooks"

    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    integration: Mapped[str] = mapped_column(Text, primary_key=True)  # the name in the URL (may not exist)
    remote_addr: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, primary_key=True)  # unauthorized | bad_signature | unknown_integration
    count: Mapped[int] = mapped_column(Integer, server_default=text("0"))


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
        Index("ix_outbox_replay", "replay_id", postgresql_where=text("replay_id IS NOT NULL")),
        # Delivered requests whose processing nobody has confirmed yet (app/followup.py asks the status API).
        Index(
            "ix_outbox_unconfirmed",
            "delivered_at",
            postgresql_where=text("status = 'delivered' AND opsgenie_success IS NULL AND request_id IS NOT NULL"),
        ),
        Index("ix_outbox_integration_alias", "integration", "alias"),
        # The paced claim: due rows by priority (P1 first), then in order.
        Index(
            "ix_outbox_paced",
            "priority",
            "next_attempt_at",
            "id",
            postgresql_where=text("status IN ('pending', 'in_flight')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The webhook the row comes from; NULL for a row a policy made on its own (expiry, end of a silence, source
    # heartbeat: see reason_code and alias_history).
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_events.id", ondelete="CASCADE"))
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
    # What OpsGenie finally did with the request (it processes asynchronously): from the request-status API or a
    # callback. `opsgenie_success` NULL: not known yet.
    opsgenie_success: Mapped[bool | None] = mapped_column(Boolean)
    opsgenie_status: Mapped[str | None] = mapped_column(Text)  # e.g. "Closed alert", "Alert does not exist"
    opsgenie_processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    discard_reason: Mapped[str | None] = mapped_column(Text)  # status discarded: why (who and when: admin_audit)
    priority: Mapped[int] = mapped_column(SmallInteger, server_default=text("3"))  # 1..5: the order under pacing


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
        # Foreign keys are maintained through these when retention deletes the rows they point at.
        Index("ix_alias_history_inbound", "inbound_id", postgresql_where=text("inbound_id IS NOT NULL")),
        Index("ix_alias_history_outbox", "outbox_id", postgresql_where=text("outbox_id IS NOT NULL")),
        Index("ix_alias_history_callback", "callback_id", postgresql_where=text("callback_id IS NOT NULL")),
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
    callback_id: Mapped[int | None] = mapped_column(ForeignKey("callbacks.id", ondelete="SET NULL"))
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
    # Pacing (core/policies.py): the token bucket every worker takes from (rate and size come from the config),
    # and the share of the rate in use after a 429 that still came (growing back from throttled_at).
    tokens: Mapped[float | None] = mapped_column(Float)
    tokens_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rate_scale: Mapped[float] = mapped_column(Float, server_default=text("1"))
    throttled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    throttle_period: Mapped[float] = mapped_column(Float, server_default=text("60"))


class Silence(Base):
    """A silence or maintenance window: creates it matches are recorded and not sent while it is active
    (core/policies.py). One-off (starts_at .. ends_at) or recurring (``every`` in ``timezone``, optionally only
    between starts_at and ends_at). From the config file (``managed_by = 'file'``) or the console / admin API."""

    __tablename__ = "silences"
    __table_args__ = (
        CheckConstraint(f"managed_by IN ({_values(ManagedBy)})", name="managed_by"),
        CheckConstraint("every IS NOT NULL OR (starts_at IS NOT NULL AND ends_at IS NOT NULL)", name="when"),
        CheckConstraint("ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at", name="order"),
        Index("ix_silences_file_key", "file_key", unique=True, postgresql_where=text("file_key IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration: Mapped[str | None] = mapped_column(Text)  # NULL: every integration
    alias: Mapped[str | None] = mapped_column(Text)  # a glob on the alias as the template rendered it
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))  # each must be on the event
    priorities: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))  # one of them
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))  # key -> glob
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    every: Mapped[str | None] = mapped_column(Text)  # a recurring window, e.g. "sun 02:00-04:00"
    timezone: Mapped[str] = mapped_column(Text, server_default="UTC")
    comment: Mapped[str] = mapped_column(Text, server_default="")
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # expired early
    expired_by: Mapped[str | None] = mapped_column(Text)
    managed_by: Mapped[str] = mapped_column(Text, server_default="console")
    file_key: Mapped[str | None] = mapped_column(Text)  # file-managed: a digest of its definition


class SweeperJob(Base):
    """One row per background job of the sweeper (app/sweeper.py): when it last ran (in any replica), what it did,
    and what it keeps between runs."""

    __tablename__ = "sweeper_jobs"

    job: Mapped[str] = mapped_column(Text, primary_key=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_result: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    runs: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
