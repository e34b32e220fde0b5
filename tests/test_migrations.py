"""The migrations build exactly the schema the models declare."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from alertbridge.db import migrate, sqlalchemy_url
from alertbridge.models import Base


def test_migrations_match_models(database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_migrate_is_idempotent(database_url: str, db: psycopg.Connection) -> None:
    migrate(database_url)
    migrate(database_url)
    (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone() or (None,)
    assert version is not None
    tables = {r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"integrations", "inbound_events", "aliases", "outbox", "delivery_attempts"} <= tables


def test_downgrade_to_base_and_up_again(database_url: str, db: psycopg.Connection) -> None:
    from alembic import command

    from alertbridge.db import alembic_config

    cfg = alembic_config(database_url)
    command.downgrade(cfg, "base")
    assert db.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'outbox'"
    ).fetchone() == (0,)
    command.upgrade(cfg, "head")
    assert db.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'outbox'"
    ).fetchone() == (1,)
