"""inbound_events.status and inbound_replays.status: add 'payload_error' (the sender's payload lacks something
the template needs: answered 422 with what is missing; before, it was filed as a template error)

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None

OLD = "status IN ('processed', 'template_error', 'invalid', 'too_large', 'handshake')"
NEW = "status IN ('processed', 'template_error', 'payload_error', 'invalid', 'too_large', 'handshake')"
TABLES = ("inbound_events", "inbound_replays")


def upgrade() -> None:
    for table in TABLES:
        op.drop_constraint(op.f(f"ck_{table}_status"), table, type_="check")
        op.create_check_constraint(op.f(f"ck_{table}_status"), table, NEW)


def downgrade() -> None:
    op.execute("UPDATE inbound_events SET current_status = 'template_error' WHERE current_status = 'payload_error'")
    for table in TABLES:
        op.execute(f"UPDATE {table} SET status = 'template_error' WHERE status = 'payload_error'")
        op.drop_constraint(op.f(f"ck_{table}_status"), table, type_="check")
        op.create_check_constraint(op.f(f"ck_{table}_status"), table, OLD)
