"""``template_versions``: every template an integration ever had. Rows are never updated or deleted."""

from __future__ import annotations

from typing import Any

from alertbridge.db import Connection

COLUMNS = "id, integration, version, source, sha256, author, comment, created_at, restored_from"

_INSERT = f"""
INSERT INTO template_versions (integration, version, source, sha256, author, comment, restored_from)
SELECT %(i)s, coalesce(max(version), 0) + 1, %(source)s, %(sha)s, %(author)s, %(comment)s, %(restored_from)s
FROM template_versions WHERE integration = %(i)s
RETURNING {COLUMNS}
"""


async def insert(
    conn: Connection,
    integration: str,
    *,
    source: str,
    sha256: str,
    author: str,
    comment: str,
    restored_from: int | None = None,
) -> dict[str, Any]:
    """A new version, numbered after the last one. The caller holds the integration row's lock (FOR UPDATE), so
    two saves cannot take the same number (the unique constraint would refuse it anyway)."""
    cur = await conn.execute(
        _INSERT,
        {
            "i": integration,
            "source": source,
            "sha": sha256,
            "author": author,
            "comment": comment,
            "restored_from": restored_from,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def get(conn: Connection, integration: str, version: int) -> dict[str, Any] | None:
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM template_versions WHERE integration = %(i)s AND version = %(v)s",
        {"i": integration, "v": version},
    )
    return await cur.fetchone()


async def by_id(conn: Connection, version_id: int) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {COLUMNS} FROM template_versions WHERE id = %(id)s", {"id": version_id})
    return await cur.fetchone()


async def listing(conn: Connection, integration: str, *, limit: int = 500) -> list[dict[str, Any]]:
    """Newest first, without the sources."""
    cur = await conn.execute(
        "SELECT id, integration, version, sha256, author, comment, created_at, restored_from, length(source) AS size "
        "FROM template_versions WHERE integration = %(i)s ORDER BY version DESC LIMIT %(n)s",
        {"i": integration, "n": limit},
    )
    return await cur.fetchall()
