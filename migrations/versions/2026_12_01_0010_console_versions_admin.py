"""The console and the admin API: versioned templates (template_versions), editable integrations (auth mode,
hashed webhook tokens, encrypted API keys, defaults, priorities, locked, the active version), console users,
admin tokens, sessions, login failures, the admin audit, the config change counter; inbound_events and
inbound_replays name the template version that rendered them; outbox status 'discarded'

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OUTBOX_OLD = "status IN ('pending', 'in_flight', 'delivered', 'dead', 'skipped')"
OUTBOX_NEW = "status IN ('pending', 'in_flight', 'delivered', 'dead', 'skipped', 'discarded')"
ROLES = "role IN ('admin', 'viewer')"


def _now() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "template_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        _now(),
        sa.Column("restored_from", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration"],
            ["integrations.name"],
            name=op.f("fk_template_versions_integration_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_versions")),
        sa.UniqueConstraint("integration", "version", name=op.f("uq_template_versions_integration")),
    )
    for name, column in [
        ("auth_mode", sa.Column("auth_mode", sa.Text(), server_default="token", nullable=False)),
        ("token_header", sa.Column("token_header", sa.Text(), nullable=True)),
        ("api_key_encrypted", sa.Column("api_key_encrypted", sa.Text(), nullable=True)),
        ("default_team", sa.Column("default_team", sa.Text(), nullable=True)),
        ("default_priority", sa.Column("default_priority", sa.Text(), nullable=True)),
        ("default_source", sa.Column("default_source", sa.Text(), nullable=True)),
        ("scope_aliases", sa.Column("scope_aliases", sa.Boolean(), server_default=sa.text("true"), nullable=False)),
        (
            "forward_unknown",
            sa.Column("forward_unknown", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        ),
        (
            "priorities",
            sa.Column(
                "priorities",
                postgresql.JSONB(astext_type=sa.Text()),
                server_default=sa.text("'{}'::jsonb"),
                nullable=False,
            ),
        ),
        ("locked", sa.Column("locked", sa.Boolean(), server_default=sa.text("false"), nullable=False)),
        ("active_version_id", sa.Column("active_version_id", sa.BigInteger(), nullable=True)),
        ("file_template_sha256", sa.Column("file_template_sha256", sa.Text(), nullable=True)),
        ("file_applied_at", sa.Column("file_applied_at", sa.DateTime(timezone=True), nullable=True)),
    ]:
        assert column.name == name
        op.add_column("integrations", column)
    # Rows written before 0004 keep their settings: copy the defaults out of the settings JSON.
    op.execute(
        "UPDATE integrations SET default_team = settings->>'default_team', "
        "default_priority = settings->>'default_priority', default_source = settings->>'default_source', "
        "scope_aliases = coalesce((settings->>'scope_aliases')::boolean, true), "
        "forward_unknown = coalesce((settings->>'forward_unknown')::boolean, false)"
    )
    op.create_check_constraint(op.f("ck_integrations_managed_by"), "integrations", "managed_by IN ('file', 'console')")
    op.create_check_constraint(
        op.f("ck_integrations_auth_mode"),
        "integrations",
        "auth_mode IN ('token', 'hmac-sha256', 'sentry', 'sns', 'none')",
    )
    op.create_foreign_key(
        op.f("fk_integrations_active_version_id_template_versions"),
        "integrations",
        "template_versions",
        ["active_version_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_table(
        "integration_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        _now(),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration"],
            ["integrations.name"],
            name=op.f("fk_integration_tokens_integration_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_tokens")),
        sa.UniqueConstraint("sha256", name=op.f("uq_integration_tokens_sha256")),
    )
    op.create_index(op.f("ix_integration_tokens_integration"), "integration_tokens", ["integration"], unique=False)
    op.create_table(
        "config_state",
        sa.Column("id", sa.SmallInteger(), server_default=sa.text("1"), autoincrement=False, nullable=False),
        sa.Column("counter", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_config_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_state")),
    )
    op.execute("INSERT INTO config_state (id, counter) VALUES (1, 0)")
    op.create_table(
        "console_users",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        _now(),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint(ROLES, name=op.f("ck_console_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_users")),
        sa.UniqueConstraint("name", name=op.f("uq_console_users_name")),
    )
    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("token_sha256", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        _now(),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(ROLES, name=op.f("ck_admin_tokens_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_admin_tokens_token_sha256")),
    )
    op.create_table(
        "admin_sessions",
        sa.Column("id_sha256", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        _now(),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remote_addr", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["console_users.id"], name=op.f("fk_admin_sessions_user_id_console_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id_sha256", name=op.f("pk_admin_sessions")),
    )
    op.create_index(op.f("ix_admin_sessions_user_id"), "admin_sessions", ["user_id"], unique=False)
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("remote_addr", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index("ix_login_failures_at", "login_failures", ["at"], unique=False)
    op.create_table(
        "admin_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_audit")),
    )
    op.create_index("ix_admin_audit_at", "admin_audit", ["at"], unique=False)
    op.create_index("ix_admin_audit_target", "admin_audit", ["target", "id"], unique=False)
    for table in ("inbound_events", "inbound_replays"):
        op.add_column(table, sa.Column("template_version_id", sa.BigInteger(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_{table}_template_version_id_template_versions"),
            table,
            "template_versions",
            ["template_version_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.add_column("outbox", sa.Column("discard_reason", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_outbox_status"), "outbox", type_="check")
    op.create_check_constraint(op.f("ck_outbox_status"), "outbox", OUTBOX_NEW)


def downgrade() -> None:
    op.execute("UPDATE outbox SET status = 'dead' WHERE status = 'discarded'")
    op.drop_constraint(op.f("ck_outbox_status"), "outbox", type_="check")
    op.create_check_constraint(op.f("ck_outbox_status"), "outbox", OUTBOX_OLD)
    op.drop_column("outbox", "discard_reason")
    for table in ("inbound_replays", "inbound_events"):
        op.drop_constraint(op.f(f"fk_{table}_template_version_id_template_versions"), table, type_="foreignkey")
        op.drop_column(table, "template_version_id")
    op.drop_index("ix_admin_audit_target", table_name="admin_audit")
    op.drop_index("ix_admin_audit_at", table_name="admin_audit")
    op.drop_table("admin_audit")
    op.drop_index("ix_login_failures_at", table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_index(op.f("ix_admin_sessions_user_id"), table_name="admin_sessions")
    op.drop_table("admin_sessions")
    op.drop_table("admin_tokens")
    op.drop_table("console_users")
    op.drop_table("config_state")
    op.drop_index(op.f("ix_integration_tokens_integration"), table_name="integration_tokens")
    op.drop_table("integration_tokens")
    op.drop_constraint(op.f("fk_integrations_active_version_id_template_versions"), "integrations", type_="foreignkey")
    op.drop_constraint(op.f("ck_integrations_auth_mode"), "integrations", type_="check")
    op.drop_constraint(op.f("ck_integrations_managed_by"), "integrations", type_="check")
    for column in (
        "file_applied_at",
        "file_template_sha256",
        "active_version_id",
        "locked",
        "priorities",
        "forward_unknown",
        "scope_aliases",
        "default_source",
        "default_priority",
        "default_team",
        "api_key_encrypted",
        "token_header",
        "auth_mode",
    ):
        op.drop_column("integrations", column)
    op.drop_table("template_versions")
