"""Alembic migrations, installed as the package ``alertbridge.migrations`` (``alertbridge migrate`` runs them)."""
