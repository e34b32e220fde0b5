"""inbound_events.status: add 'handshake' (source handshakes such as SNS subscription confirmations)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_inbound_events_status"), "inbound_events", type_="check")
    op.create_check_constraint(
        op.f("ck_inbound_events_status"),
        "inbound_events",
        "status IN ('processed', 'template_error', 'invalid', 'too_large', 'handshake')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_inbound_events_status"), "inbound_events", type_="check")
    op.create_check_constraint(
        op.f("ck_inbound_events_status"),
        "inbound_events",
        "status IN ('processed', 'template_error', 'invalid', 'too_large')",
    )
