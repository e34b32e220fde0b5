"""ix_outbox_unconfirmed: delivered requests whose processing OpsGenie has not confirmed yet (request-status
follow-up)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

WHERE = "status = 'delivered' AND opsgenie_success IS NULL AND request_id IS NOT NULL"


def upgrade() -> None:
    op.create_index("ix_outbox_unconfirmed", "outbox", ["delivered_at"], unique=False, postgresql_where=sa.text(WHERE))


def downgrade() -> None:
    op.drop_index("ix_outbox_unconfirmed", table_name="outbox", postgresql_where=sa.text(WHERE))
