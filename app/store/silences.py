"""``silences``: silences and maintenance windows, from the config file (``managed_by = 'file'``, kept in step with
it at every start and SIGHUP) or made in the console / admin API. Every change bumps the config counter, so every
process's registry (which hands the silences to ``plan``) follows within a second. A silence is never deleted:
expiring one early sets ``expired_at`` (and who did it)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.core.policies import Silence, Window
from alertbridge.db import Connection
from alertbridge.store import config_state

FILE_AUTHOR = "config file"
_COLUMNS = (
    "id, integration, alias, tags, priorities, details, starts_at, ends_at, every, timezone, comment, created_by, "
    "created_at, expired_at, expired_by, managed_by"
)


@dataclass(frozen=True)
class NewSilence:
    created_by: str
    integration: str | None = None
    alias: str | None = None
    tags: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    details: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    every: str | None = None
    timezone: str = "UTC"
    comment: str = ""

    def file_key(self) -> str:
        """What identifies a file-managed silence: a digest of its whole definition."""
        data = {**self.__dict__, "details": dict(self.details), "tags": list(self.tags)}
        data["priorities"] = list(self.priorities)
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def to_policy(row: Mapping[str, Any]) -> Silence:
    """A row as ``core.policies.Silence`` (a stored window always parses: it was checked when it was made)."""
    window = Window.parse(row["every"], row["timezone"]) if row["every"] else None
    return Silence(
        id=row["id"],
        integration=row["integration"],
        alias=row["alias"],
        tags=tuple(row["tags"] or ()),
        priorities=tuple(row["priorities"] or ()),
        details=tuple(sorted((row["details"] or {}).items())),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        window=window,
        comment=row["comment"],
        created_by=row["created_by"],
        expired_at=row["expired_at"],
    )


_INSERT = f"""
INSERT INTO silences (integration, alias, tags, priorities, details, starts_at, ends_at, every, timezone, comment,
                      created_by, managed_by, file_key)
VALUES (%(integration)s, %(alias)s, %(tags)s, %(priorities)s, %(details)s, %(starts_at)s, %(ends_at)s, %(every)s,
        %(timezone)s, %(comment)s, %(created_by)s, %(managed_by)s, %(file_key)s)
ON CONFLICT (file_key) WHERE file_key IS NOT NULL DO UPDATE SET expired_at = NULL, expired_by = NULL
    WHERE silences.expired_by = 'config file'  -- back in the file after it was taken out
RETURNING {_COLUMNS}
"""


def _params(s: NewSilence, managed_by: str, file_key: str | None) -> dict[str, Any]:
    return {
        **s.__dict__,
        "tags": list(s.tags),
        "priorities": list(s.priorities),
        "details": Jsonb(dict(s.details)),
        "managed_by": managed_by,
        "file_key": file_key,
    }


async def create(conn: Connection, silence: NewSilence) -> dict[str, Any]:
    """A silence made in the console or the admin API (caller's transaction; announced to every process)."""
    cur = await conn.execute(_INSERT, _params(silence, "console", None))
    row = await cur.fetchone()
    assert row is not None
    await config_state.bump(conn)
    return row


async def expire(conn: Connection, silence_id: int, by: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """End a silence now (before -> after rows); None when there is no such silence. One already over is
    returned unchanged."""
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM silences WHERE id = %(id)s FOR UPDATE", {"id": silence_id})
    before = await cur.fetchone()
    if before is None:
        return None
    cur = await conn.execute(
        f"UPDATE silences SET expired_at = now(), expired_by = %(by)s WHERE id = %(id)s AND expired_at IS NULL "
        f"AND (ends_at IS NULL OR ends_at > now()) RETURNING {_COLUMNS}",
        {"id": silence_id, "by": by},
    )
    after = await cur.fetchone()
    if after is None:
        return before, before
    await config_state.bump(conn)
    return before, after


async def get(conn: Connection, silence_id: int) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM silences WHERE id = %(id)s", {"id": silence_id})
    return await cur.fetchone()


async def listing(
    conn: Connection, *, integration: str | None = None, include_over: bool = False, limit: int = 200
) -> list[dict[str, Any]]:
    """Newest first; by default only silences that are not over (active now or later)."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM silences WHERE (%(i)s::text IS NULL OR integration = %(i)s OR integration IS NULL) "
        "AND (%(all)s OR (expired_at IS NULL AND (ends_at IS NULL OR ends_at > now()))) "
        "ORDER BY id DESC LIMIT %(n)s",
        {"i": integration, "all": include_over, "n": limit},
    )
    return await cur.fetchall()


async def current(conn: Connection) -> list[Silence]:
    """Every silence that is not over, as the registry hands them to ``plan``."""
    return [to_policy(r) for r in await listing(conn, include_over=False, limit=100_000)]


async def sync_from_file(conn: Connection, silences: Sequence[NewSilence]) -> bool:
    """Provisioning (caller's transaction): the file's silences exist (each once, by its definition's digest);
    file-managed ones no longer in the file end now. True when something changed (then it is announced)."""
    changed = False
    keys = []
    for s in silences:
        key = s.file_key()
        keys.append(key)
        cur = await conn.execute(_INSERT, _params(s, "file", key))
        changed |= await cur.fetchone() is not None
    cur = await conn.execute(
        "UPDATE silences SET expired_at = now(), expired_by = %(by)s WHERE managed_by = 'file' AND expired_at IS NULL "
        "AND (ends_at IS NULL OR ends_at > now()) AND NOT (file_key = ANY(%(keys)s::text[])) RETURNING id",
        {"by": FILE_AUTHOR, "keys": keys},
    )
    changed |= bool(await cur.fetchall())
    if changed:
        await config_state.bump(conn)
    return changed
