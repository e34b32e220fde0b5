"""Process settings from the environment, read once. Only main, cli and migrations/env.py import this.

ALERTBRIDGE_CONFIG        path of the TOML config file (same as --config); unset -> demo mode
ALERTBRIDGE_DATABASE_URL  postgresql://... of an external Postgres (DATABASE_URL is read as a fallback);
                          unset -> the embedded PostgreSQL in ALERTBRIDGE_DATA_DIR
ALERTBRIDGE_DATA_DIR      where the embedded PostgreSQL keeps its data (default ./.alertbridge)
ALERTBRIDGE_LOG_LEVEL     DEBUG | INFO | WARNING | ERROR (default INFO)
ALERTBRIDGE_LOG_FORMAT    text | json (default text): json writes one JSON object per line on stderr
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.datastructures import Secret


def _get(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


CONFIG_PATH: str | None = _get("ALERTBRIDGE_CONFIG")
_db = _get("ALERTBRIDGE_DATABASE_URL") or _get("DATABASE_URL")
DATABASE_URL: Secret | None = Secret(_db) if _db else None
DATA_DIR: Path | None = Path(_get("ALERTBRIDGE_DATA_DIR") or "") if _get("ALERTBRIDGE_DATA_DIR") else None
LOG_LEVEL: str = (_get("ALERTBRIDGE_LOG_LEVEL") or "INFO").upper()
LOG_FORMAT: str = (_get("ALERTBRIDGE_LOG_FORMAT") or "text").lower()
ENV: dict[str, str] = dict(os.environ)
