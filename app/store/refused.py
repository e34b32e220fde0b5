"""``refused_webhooks``: requests refused before anything was stored, counted per minute, integration (the name in
the URL), remote address and reason. Never the body or the credential presented."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from alertbridge.db import Connection

Key = tuple[datetime, str, str, str]  # minute, integration, remote address, reason

_ADD = """
INSERT INTO refused_webhooks AS r (minute, integration, remote_addr, reason, count)
SELECT * FROM unnest(%(minute)s::timestamptz[], %(integration)s::text[], %(remote)s::text[], %(reason)s::text[],
                     %(count)s::int[])
ON CONFLICT (minute, integration, remote_addr, reason) DO UPDATE SET count = r.count + EXCLUDED.count
"""


async def add(conn: Connection, counts: Mapping[Key, int]) -> None:
    if not counts:
        return
    keys = sorted(counts)
    await conn.execute(
        _ADD,
        {
            "minute": [k[0] for k in keys],
            "integration": [k[1] for k in keys],
            "remote": [k[2] for k in keys],
            "reason": [k[3] for k in keys],
            "count": [counts[k] for k in keys],
        },
    )
