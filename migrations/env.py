"""Alembic environment: the URL comes from the caller (config.attributes["url"]) or the environment,
the metadata from alertbridge.models. Never from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from alertbridge.db import sqlalchemy_url
from alertbridge.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return str(url)
    from alertbridge import settings

    if not settings.DATABASE_URL:
        raise SystemExit("alembic: set ALERTBRIDGE_DATABASE_URL (or use `alertbridge migrate`)")
    return sqlalchemy_url(str(settings.DATABASE_URL))


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
