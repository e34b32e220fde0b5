"""An integration's lifecycle policies (``[integrations.policies]`` and the pacing keys of its target) as admins set
them for a console-managed integration; a file-managed one is set in the file. The values are checked exactly as
the config file's, and the change is audited and live in every process within a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alertbridge.admin.actor import Actor
from alertbridge.admin.errors import Conflict, Invalid, NotFound
from alertbridge.config import schema
from alertbridge.config.values import Ctx
from alertbridge.core.policies import PolicySettings
from alertbridge.db import Database
from alertbridge.models import ManagedBy
from alertbridge.store import audit, config_state, integrations

PACING = {k: schema.TARGET[k] for k in ("rate_per_minute", "burst")}
KEYS = {**schema.POLICIES, **PACING}


def check(data: dict[str, Any]) -> PolicySettings:
    """The settings a JSON body gives (durations as "2m" or seconds); Invalid lists every problem."""
    ctx = Ctx({}, "policies", Path("."), literal=True)
    values = schema.table(data, "", ctx, KEYS, "integrations.policies") or {}
    if ctx.errors:
        raise Invalid("; ".join(e.removeprefix("policies: ") for e in ctx.errors))
    return PolicySettings(**values)


async def get(db: Database, name: str) -> dict[str, Any]:
    async with db.connection() as conn:
        row = await integrations.get(conn, name)
    if row is None:
        raise NotFound(f"no integration {name!r}")
    return {"integration": name, "managed_by": row["managed_by"], "policies": row["policies"] or {}}


async def put(db: Database, actor: Actor, name: str, data: dict[str, Any]) -> dict[str, Any]:
    """Replace the policies of a console-managed integration (keys left out are off / their default)."""
    actor.require_admin()
    settings = check(data)
    async with db.transaction() as conn:
        row = await integrations.get(conn, name, for_update=True)
        if row is None:
            raise NotFound(f"no integration {name!r}")
        if row["managed_by"] != ManagedBy.CONSOLE:
            raise Conflict(f"integration {name!r} is managed by the config file: set [integrations.policies] there")
        after = settings.to_dict()
        await integrations.update(conn, name, policies=after)
        await audit.record(
            conn,
            actor=actor.label,
            action="integration.policies",
            target=f"integration:{name}",
            before=row["policies"] or {},
            after=after,
        )
        await config_state.bump(conn)
    return {"integration": name, "managed_by": row["managed_by"], "policies": after}
