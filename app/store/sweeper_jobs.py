"""``sweeper_jobs``: one row per background job of the sweeper (app/sweeper.py) — when it last ran in any replica,
how often, what it did, and what it keeps between runs (``state``)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.db import Connection


async def get(conn: Connection, job: str) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM sweeper_jobs WHERE job = %(j)s", {"j": job})
    return await cur.fetchone()


async def record_run(conn: Connection, job: str, result: dict[str, Any], state: dict[str, Any] | None = None) -> None:
    await conn.execute(
        "INSERT INTO sweeper_jobs AS s (job, last_run_at, last_result, runs, state) "
        "VALUES (%(j)s, now(), %(r)s, 1, coalesce(%(st)s, '{}'::jsonb)) "
        "ON CONFLICT (job) DO UPDATE SET last_run_at = now(), last_result = EXCLUDED.last_result, runs = s.runs + 1, "
        "state = coalesce(%(st)s, s.state)",
        {"j": job, "r": Jsonb(result), "st": Jsonb(state) if state is not None else None},
    )


async def listing(conn: Connection) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM sweeper_jobs ORDER BY job")
    return await cur.fetchall()
