"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 05:38:49.769135
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aliases",
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("alias", sa.Text(), nullable=False),
        sa.Column("opsgenie_alias", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("count", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_action", sa.Text(), nullable=False),
        sa.Column("last_outbox_id", sa.BigInteger(), nullable=True),
        sa.Column("create_request_id", sa.Text(), nullable=True),
        sa.Column("create_confirmed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("alert_id", sa.Text(), nullable=True),
        sa.Column("last_request_id", sa.Text(), nullable=True),
        sa.CheckConstraint("state IN ('open', 'acknowledged', 'closed')", name=op.f("ck_aliases_state")),
        sa.PrimaryKeyConstraint("integration", "alias", name=op.f("pk_aliases")),
    )
    op.create_table(
        "inbound_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("remote_addr", sa.Text(), nullable=True),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column(
            "headers", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "query", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("template_sha256", sa.Text(), nullable=True),
        sa.Column("events_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("traceparent", sa.Text(), nullable=True),
        sa.Column("replay_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('processed', 'template_error', 'invalid', 'too_large')", name=op.f("ck_inbound_events_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_events")),
    )
    op.create_index(
        "ix_inbound_events_integration_received", "inbound_events", ["integration", "received_at"], unique=False
    )
    op.create_table(
        "integrations",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("template_sha256", sa.Text(), nullable=False),
        sa.Column("target_base_url", sa.Text(), nullable=False),
        sa.Column("target_region", sa.Text(), nullable=True),
        sa.Column(
            "settings", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("managed_by", sa.Text(), server_default="file", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_integrations")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("inbound_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.SmallInteger(), nullable=False),
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("alias", sa.Text(), nullable=False),
        sa.Column("opsgenie_alias", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "cuts", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("traceparent", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("last_outcome", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "action IN ('create', 'acknowledge', 'close', 'note', 'ignore')", name=op.f("ck_outbox_action")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'in_flight', 'delivered', 'dead', 'skipped')", name=op.f("ck_outbox_status")
        ),
        sa.ForeignKeyConstraint(
            ["inbound_id"], ["inbound_events.id"], name=op.f("fk_outbox_inbound_id_inbound_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(
        "ix_outbox_alias_active",
        "outbox",
        ["integration", "alias", "id"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'in_flight')"),
    )
    op.create_index(
        "ix_outbox_due",
        "outbox",
        ["next_attempt_at", "id"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'in_flight')"),
    )
    op.create_index("ix_outbox_inbound", "outbox", ["inbound_id"], unique=False)
    op.create_index("ix_outbox_integration_alias", "outbox", ["integration", "alias"], unique=False)
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("worker", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("response_snippet", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_delivery_attempts_outbox_id_outbox"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    op.create_index("ix_delivery_attempts_outbox", "delivery_attempts", ["outbox_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_delivery_attempts_outbox", table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_index("ix_outbox_integration_alias", table_name="outbox")
    op.drop_index("ix_outbox_inbound", table_name="outbox")
    op.drop_index("ix_outbox_due", table_name="outbox", postgresql_where=sa.text("status IN ('pending', 'in_flight')"))
    op.drop_index(
        "ix_outbox_alias_active", table_name="outbox", postgresql_where=sa.text("status IN ('pending', 'in_flight')")
    )
    op.drop_table("outbox")
    op.drop_table("integrations")
    op.drop_index("ix_inbound_events_integration_received", table_name="inbound_events")
    op.drop_table("inbound_events")
    op.drop_table("aliases")
