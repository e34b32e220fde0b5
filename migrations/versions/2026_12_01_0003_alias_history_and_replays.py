"""alias_history (append-only decisions per alias); replays as rows (inbound_replays), never overwrites;
outbox.reason_code and outbox.replay_id; aliases.last_outbox_id becomes a foreign key

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATUSES = "status IN ('processed', 'template_error', 'invalid', 'too_large', 'handshake')"


def upgrade() -> None:
    op.add_column("inbound_events", sa.Column("current_status", sa.Text(), nullable=True))
    op.execute("UPDATE inbound_events SET current_status = status")
    op.alter_column("inbound_events", "current_status", nullable=False)
    op.create_table(
        "inbound_replays",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("inbound_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("template_sha256", sa.Text(), nullable=True),
        sa.Column("events_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(STATUSES, name=op.f("ck_inbound_replays_status")),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_events.id"],
            name=op.f("fk_inbound_replays_inbound_id_inbound_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_replays")),
    )
    op.create_index("ix_inbound_replays_inbound", "inbound_replays", ["inbound_id"], unique=False)
    op.add_column("outbox", sa.Column("reason_code", sa.Text(), nullable=True))
    op.add_column("outbox", sa.Column("replay_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_outbox_replay_id_inbound_replays"),
        "outbox",
        "inbound_replays",
        ["replay_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.execute(
        "UPDATE aliases SET last_outbox_id = NULL WHERE last_outbox_id IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.id = aliases.last_outbox_id)"
    )
    op.create_foreign_key(
        op.f("fk_aliases_last_outbox_id_outbox"), "aliases", "outbox", ["last_outbox_id"], ["id"], ondelete="SET NULL"
    )
    op.create_table(
        "alias_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("alias", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=True),
        sa.Column("to_state", sa.Text(), nullable=True),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("reason_code", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("inbound_id", sa.BigInteger(), nullable=True),
        sa.Column("outbox_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.CheckConstraint(
            "origin IN ('webhook', 'callback', 'console', 'policy')", name=op.f("ck_alias_history_origin")
        ),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_events.id"],
            name=op.f("fk_alias_history_inbound_id_inbound_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_alias_history_outbox_id_outbox"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_history")),
    )
    op.create_index("ix_alias_history_alias", "alias_history", ["integration", "alias", "id"], unique=False)
    op.create_index("ix_alias_history_at", "alias_history", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alias_history_at", table_name="alias_history")
    op.drop_index("ix_alias_history_alias", table_name="alias_history")
    op.drop_table("alias_history")
    op.drop_constraint(op.f("fk_aliases_last_outbox_id_outbox"), "aliases", type_="foreignkey")
    op.drop_constraint(op.f("fk_outbox_replay_id_inbound_replays"), "outbox", type_="foreignkey")
    op.drop_column("outbox", "replay_id")
    op.drop_column("outbox", "reason_code")
    op.drop_index("ix_inbound_replays_inbound", table_name="inbound_replays")
    op.drop_table("inbound_replays")
    op.drop_column("inbound_events", "current_status")
