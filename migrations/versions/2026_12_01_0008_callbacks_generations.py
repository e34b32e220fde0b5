"""callbacks from OpsGenie, one row per alert generation, refused-webhook counts, who acked/closed, and what
OpsGenie finally did with each request

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("aliases", sa.Column("acknowledged_by", sa.Text(), nullable=True))
    op.add_column("aliases", sa.Column("closed_by", sa.Text(), nullable=True))
    op.add_column(
        "aliases", sa.Column("closed_in_opsgenie", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.add_column("aliases", sa.Column("tiny_id", sa.Text(), nullable=True))
    op.create_index("ix_aliases_opsgenie_alias", "aliases", ["opsgenie_alias"], unique=False)
    op.add_column("outbox", sa.Column("opsgenie_success", sa.Boolean(), nullable=True))
    op.add_column("outbox", sa.Column("opsgenie_status", sa.Text(), nullable=True))
    op.add_column("outbox", sa.Column("opsgenie_processed_at", TS, nullable=True))
    op.create_table(
        "generations",
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("alias", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("opsgenie_alias", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("source_started_at", TS, nullable=True),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("first_acknowledged_at", TS, nullable=True),
        sa.Column("first_acknowledged_by", sa.Text(), nullable=True),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("closed_by", sa.Text(), nullable=True),
        sa.Column("closed_in_opsgenie", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("occurrences", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("alert_id", sa.Text(), nullable=True),
        sa.Column("tiny_id", sa.Text(), nullable=True),
        sa.Column("updated_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("state IN ('open', 'acknowledged', 'closed')", name=op.f("ck_generations_state")),
        sa.PrimaryKeyConstraint("integration", "alias", "generation", name=op.f("pk_generations")),
    )
    op.create_index("ix_generations_alert_id", "generations", ["alert_id"], unique=False)
    op.create_index("ix_generations_opsgenie_alias", "generations", ["opsgenie_alias"], unique=False)
    op.create_index("ix_generations_opened_at", "generations", ["opened_at"], unique=False)
    # Existing aliases: their current generation becomes a row.
    op.execute(
        """
        INSERT INTO generations (integration, alias, generation, opsgenie_alias, state, opened_at,
                                 acknowledged_at, first_acknowledged_at, closed_at, occurrences, alert_id)
        SELECT integration, alias, generation, opsgenie_alias, state, COALESCE(opened_at, first_seen_at),
               acknowledged_at, acknowledged_at, closed_at, count, alert_id
        FROM aliases
        """
    )
    op.create_table(
        "callbacks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("received_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("remote_addr", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("opsgenie_alias", sa.Text(), nullable=True),
        sa.Column("alert_id", sa.Text(), nullable=True),
        sa.Column("tiny_id", sa.Text(), nullable=True),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("source_type", sa.Text(), nullable=True),
        sa.Column("source_name", sa.Text(), nullable=True),
        sa.Column("alert_created_at", TS, nullable=True),
        sa.Column("updated_at_ns", sa.BigInteger(), nullable=True),
        sa.Column("at", TS, nullable=True),
        sa.Column("integration", sa.Text(), nullable=True),
        sa.Column("alias", sa.Text(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('applied', 'echo', 'recorded', 'ignored', 'duplicate')", name=op.f("ck_callbacks_outcome")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
    )
    op.create_index("ix_callbacks_alias", "callbacks", ["integration", "alias", "id"], unique=False)
    op.create_index("ix_callbacks_received_at", "callbacks", ["received_at"], unique=False)
    op.create_index(
        "uq_callbacks_dedup",
        "callbacks",
        ["alert_id", "action", "updated_at_ns"],
        unique=True,
        postgresql_where=sa.text("outcome <> 'duplicate'"),
    )
    op.add_column("alias_history", sa.Column("callback_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_alias_history_callback_id_callbacks"),
        "alias_history",
        "callbacks",
        ["callback_id"],
        ["id"],
        ondelete="SET NULL",
    )
    # Indexes behind the foreign keys, so deleting old rows (retention) does not scan whole tables.
    for name, table, column in (
        ("ix_alias_history_inbound", "alias_history", "inbound_id"),
        ("ix_alias_history_outbox", "alias_history", "outbox_id"),
        ("ix_alias_history_callback", "alias_history", "callback_id"),
        ("ix_outbox_replay", "outbox", "replay_id"),
    ):
        op.create_index(name, table, [column], unique=False, postgresql_where=sa.text(f"{column} IS NOT NULL"))
    op.create_index("ix_aliases_last_outbox", "aliases", ["last_outbox_id"], unique=False)
    op.create_table(
        "refused_webhooks",
        sa.Column("minute", TS, nullable=False),
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("remote_addr", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("minute", "integration", "remote_addr", "reason", name=op.f("pk_refused_webhooks")),
    )


def downgrade() -> None:
    op.drop_table("refused_webhooks")
    op.drop_index("ix_aliases_last_outbox", table_name="aliases")
    for name, table, column in (
        ("ix_alias_history_inbound", "alias_history", "inbound_id"),
        ("ix_alias_history_outbox", "alias_history", "outbox_id"),
        ("ix_alias_history_callback", "alias_history", "callback_id"),
        ("ix_outbox_replay", "outbox", "replay_id"),
    ):
        op.drop_index(name, table_name=table, postgresql_where=sa.text(f"{column} IS NOT NULL"))
    op.drop_constraint(op.f("fk_alias_history_callback_id_callbacks"), "alias_history", type_="foreignkey")
    op.drop_column("alias_history", "callback_id")
    op.drop_index("uq_callbacks_dedup", table_name="callbacks", postgresql_where=sa.text("outcome <> 'duplicate'"))
    op.drop_index("ix_callbacks_received_at", table_name="callbacks")
    op.drop_index("ix_callbacks_alias", table_name="callbacks")
    op.drop_table("callbacks")
    op.drop_index("ix_generations_opened_at", table_name="generations")
    op.drop_index("ix_generations_opsgenie_alias", table_name="generations")
    op.drop_index("ix_generations_alert_id", table_name="generations")
    op.drop_table("generations")
    op.drop_column("outbox", "opsgenie_processed_at")
    op.drop_column("outbox", "opsgenie_status")
    op.drop_column("outbox", "opsgenie_success")
    op.drop_index("ix_aliases_opsgenie_alias", table_name="aliases")
    op.drop_column("aliases", "tiny_id")
    op.drop_column("aliases", "closed_in_opsgenie")
    op.drop_column("aliases", "closed_by")
    op.drop_column("aliases", "acknowledged_by")
