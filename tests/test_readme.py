"""The README's SQL runs as written against the real schema."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def readme_sql() -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)
    statements = []
    for block in blocks:
        code = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--"))
        statements += [s.strip() for s in code.split(";") if s.strip()]
    return statements


def test_the_readme_sql_runs(db: psycopg.Connection) -> None:
    statements = readme_sql()
    assert len(statements) >= 3
    for statement in statements:
        db.execute(statement).fetchall()
    (failed,) = [s for s in statements if "FROM inbound_events" in s]
    (per_alias,) = [s for s in statements if "LEFT JOIN delivery_attempts" in s]
    (dead,) = [s for s in statements if "status = 'dead'" in s]
    assert "ORDER BY" in failed and "current_status" in failed
    assert "a.kind" in per_alias
    assert "ORDER BY" in dead
