"""Lifecycle policies: silences, sweeper_jobs; integrations.policies; aliases: suppressed, close_due_at, flaps,
expired_at; outbox: priority (the order under pacing), inbound_id NULL for rows a policy made; delivery_targets:
the token bucket and the rate after a 429

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

LIVE = "state <> 'closed'"
QUEUED = "status IN ('pending', 'in_flight')"


def upgrade() -> None:
    op.add_column(
        "integrations",
        sa.Column("policies", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    op.add_column("aliases", sa.Column("suppressed", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.add_column("aliases", sa.Column("close_due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "aliases",
        sa.Column(
            "flaps", postgresql.ARRAY(sa.DateTime(timezone=True)), server_default=sa.text("'{}'"), nullable=False
        ),
    )
    op.add_column("aliases", sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_aliases_live_seen", "aliases", ["integration", "last_seen_at"], postgresql_where=sa.text(LIVE))
    op.create_index("ix_aliases_suppressed", "aliases", ["integration"], postgresql_where=sa.text("suppressed"))
    op.alter_column("outbox", "inbound_id", existing_type=sa.BigInteger(), nullable=True)
    op.add_column("outbox", sa.Column("priority", sa.SmallInteger(), server_default=sa.text("3"), nullable=False))
    op.create_index(
        "ix_outbox_paced", "outbox", ["priority", "next_attempt_at", "id"], postgresql_where=sa.text(QUEUED)
    )
    op.add_column("delivery_targets", sa.Column("tokens", sa.Float(), nullable=True))
    op.add_column("delivery_targets", sa.Column("tokens_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("delivery_targets", sa.Column("rate_scale", sa.Float(), server_default=sa.text("1"), nullable=False))
    op.add_column("delivery_targets", sa.Column("throttled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "delivery_targets", sa.Column("throttle_period", sa.Float(), server_default=sa.text("60"), nullable=False)
    )
    op.create_table(
        "silences",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("integration", sa.Text(), nullable=True),
        sa.Column("alias", sa.Text(), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("priorities", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("details", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("every", sa.Text(), nullable=True),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_by", sa.Text(), nullable=True),
        sa.Column("managed_by", sa.Text(), server_default="console", nullable=False),
        sa.Column("file_key", sa.Text(), nullable=True),
        sa.CheckConstraint("managed_by IN ('file', 'console')", name=op.f("ck_silences_managed_by")),
        sa.CheckConstraint(
            "every IS NOT NULL OR (starts_at IS NOT NULL AND ends_at IS NOT NULL)", name=op.f("ck_silences_when")
        ),
        sa.CheckConstraint(
            "ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at", name=op.f("ck_silences_order")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    op.create_index(
        "ix_silences_file_key", "silences", ["file_key"], unique=True, postgresql_where=sa.text("file_key IS NOT NULL")
    )
    op.create_table(
        "sweeper_jobs",
        sa.Column("job", sa.Text(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_result", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("runs", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("state", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_sweeper_jobs")),
    )


def downgrade() -> None:
    op.drop_table("sweeper_jobs")
    op.drop_index("ix_silences_file_key", table_name="silences", postgresql_where=sa.text("file_key IS NOT NULL"))
    op.drop_table("silences")
    for column in ("throttle_period", "throttled_at", "rate_scale", "tokens_at", "tokens"):
        op.drop_column("delivery_targets", column)
    op.drop_index("ix_outbox_paced", table_name="outbox", postgresql_where=sa.text(QUEUED))
    op.drop_column("outbox", "priority")
    op.execute("DELETE FROM outbox WHERE inbound_id IS NULL")
    op.alter_column("outbox", "inbound_id", existing_type=sa.BigInteger(), nullable=False)
    op.drop_index("ix_aliases_suppressed", table_name="aliases", postgresql_where=sa.text("suppressed"))
    op.drop_index("ix_aliases_live_seen", table_name="aliases", postgresql_where=sa.text(LIVE))
    for column in ("expired_at", "flaps", "close_due_at", "suppressed"):
        op.drop_column("aliases", column)
    op.drop_column("integrations", "policies")
