"""delivery_targets (429 pause and circuit breaker per target, shared by every worker process);
delivery_attempts.finished_at (the attempt row is written before the HTTP call and completed after it)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("delivery_attempts", sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE delivery_attempts SET finished_at = started_at WHERE finished_at IS NULL")
    op.create_table(
        "delivery_targets",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), server_default="up", nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("probe_failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("down_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_probe_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probe_outbox_id", sa.BigInteger(), nullable=True),
        sa.Column("probe_owner", sa.Text(), nullable=True),
        sa.Column("probe_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("state IN ('up', 'down')", name=op.f("ck_delivery_targets_state")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_delivery_targets")),
    )


def downgrade() -> None:
    op.drop_table("delivery_targets")
    op.drop_column("delivery_attempts", "finished_at")
