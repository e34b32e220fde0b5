"""``integrations``: what the config file (``managed_by = 'file'``) and the console (``'console'``) declare. The
registry of every process is built from these rows. No secret in clear: a console-entered API key is stored
Fernet-encrypted; file-managed integrations keep their secrets in the file / environment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.db import Connection
from alertbridge.store import config_state, versions

FILE_AUTHOR = "config file"


@dataclass(frozen=True)
class FileIntegration:
    name: str
    template: str  # as configured: a built-in name or a path
    template_source: str
    template_sha256: str
    target_base_url: str
    target_region: str | None
    settings: dict[str, Any]
    enabled: bool
    auth_mode: str = "token"
    token_header: str | None = None
    default_team: str | None = None
    default_priority: str | None = None
    default_source: str | None = None
    scope_aliases: bool = True
    forward_unknown: bool = False
    priorities: dict[str, str] = field(default_factory=dict)
    locked: bool = False
    policies: dict[str, Any] = field(default_factory=dict)  # core.policies.PolicySettings.to_dict()


_FILE_COLUMNS = (
    "template, target_base_url, target_region, settings, enabled, auth_mode, token_header, default_team, "
    "default_priority, default_source, scope_aliases, forward_unknown, priorities, locked, policies"
)
_UPSERT = f"""
INSERT INTO integrations (name, template_sha256, managed_by, {_FILE_COLUMNS})
VALUES (%(name)s, %(template_sha256)s, 'file', %(template)s, %(target_base_url)s, %(target_region)s, %(settings)s,
        %(enabled)s, %(auth_mode)s, %(token_header)s, %(default_team)s, %(default_priority)s, %(default_source)s,
        %(scope_aliases)s, %(forward_unknown)s, %(priorities)s, %(locked)s, %(policies)s)
ON CONFLICT (name) DO UPDATE SET ({_FILE_COLUMNS}, managed_by, api_key_encrypted, updated_at) =
    ({", ".join("EXCLUDED." + c.strip() for c in _FILE_COLUMNS.split(","))}, 'file', NULL::text, now())
WHERE ({", ".join("integrations." + c.strip() for c in _FILE_COLUMNS.split(","))}, integrations.managed_by,
       integrations.api_key_encrypted)
      IS DISTINCT FROM
      ({", ".join("EXCLUDED." + c.strip() for c in _FILE_COLUMNS.split(","))}, 'file', NULL::text)
RETURNING name
"""

_FILE_TEMPLATE = """
SELECT i.file_template_sha256, v.sha256 AS active_sha256
FROM integrations i LEFT JOIN template_versions v ON v.id = i.active_version_id
WHERE i.name = %(name)s FOR UPDATE OF i
"""

_ACTIVATE = """
UPDATE integrations SET active_version_id = %(vid)s, template_sha256 = %(sha)s, updated_at = now()
WHERE name = %(name)s
"""


async def sync_from_file(conn: Connection, integrations: Sequence[FileIntegration], *, origin: str) -> bool:
    """Provisioning, Grafana style (caller's transaction): file-managed rows follow the file; ones no longer in it
    are disabled. A file template that differs from what the file last applied becomes a new version (author
    "config file") and the active one — so the file wins again when ITS template changes, while a console edit
    of an unchanged file template stays. Returns whether anything changed (then the change is announced)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('alertbridge:provisioning', 0))")
    changed = False
    for integ in integrations:
        params = {
            **integ.__dict__,
            "settings": Jsonb(integ.settings),
            "priorities": Jsonb(dict(integ.priorities)),
            "policies": Jsonb(dict(integ.policies)),
        }
        cur = await conn.execute(_UPSERT, params)
        changed |= bool(await cur.fetchall())
        cur = await conn.execute(_FILE_TEMPLATE, {"name": integ.name})
        row = await cur.fetchone()
        assert row is not None
        if row["file_template_sha256"] == integ.template_sha256:
            continue
        changed = True
        if row["active_sha256"] != integ.template_sha256:
            version = await versions.insert(
                conn,
                integ.name,
                source=integ.template_source,
                sha256=integ.template_sha256,
                author=FILE_AUTHOR,
                comment=f"template {integ.template!r} from {origin}",
            )
            await conn.execute(_ACTIVATE, {"vid": version["id"], "sha": integ.template_sha256, "name": integ.name})
        await conn.execute(
            "UPDATE integrations SET file_template_sha256 = %(sha)s, file_applied_at = now() WHERE name = %(name)s",
            {"sha": integ.template_sha256, "name": integ.name},
        )
    cur = await conn.execute(
        "UPDATE integrations SET enabled = false, updated_at = now() "
        "WHERE managed_by = 'file' AND enabled AND NOT (name = ANY(%(names)s::text[])) RETURNING name",
        {"names": [i.name for i in integrations]},
    )
    changed |= bool(await cur.fetchall())
    if changed:
        await config_state.bump(conn)
    return changed


_RUNTIME = """
SELECT i.name, i.enabled, i.managed_by, i.auth_mode, i.token_header, i.target_base_url, i.target_region,
       i.api_key_encrypted, i.default_team, i.default_priority, i.default_source, i.scope_aliases,
       i.forward_unknown, i.priorities, i.policies, v.id AS version_id, v.version, v.source, v.sha256,
       coalesce((SELECT array_agg(t.sha256 ORDER BY t.id) FROM integration_tokens t WHERE t.integration = i.name),
                '{}') AS token_hashes
FROM integrations i LEFT JOIN template_versions v ON v.id = i.active_version_id
ORDER BY i.name
"""


async def runtime(conn: Connection) -> tuple[int, list[dict[str, Any]]]:
    """The change counter and every integration with its active version (what a registry is built from). The
    counter is read first: a change committed in between is seen again at the next poll."""
    counter = await config_state.counter(conn)
    cur = await conn.execute(_RUNTIME)
    return counter, await cur.fetchall()


_DETAIL = """
SELECT i.name, i.template, i.template_sha256, i.target_base_url, i.target_region, i.managed_by, i.enabled,
       i.created_at, i.updated_at, i.auth_mode, i.token_header, i.api_key_encrypted IS NOT NULL AS has_api_key,
       i.default_team, i.default_priority, i.default_source, i.scope_aliases, i.forward_unknown, i.priorities,
       i.locked, i.active_version_id, i.file_template_sha256, i.file_applied_at, i.settings, i.policies,
       v.version AS active_version, v.author AS active_author, v.created_at AS active_created_at,
       (i.managed_by = 'file' AND i.file_template_sha256 IS NOT NULL AND v.sha256 IS DISTINCT FROM
        i.file_template_sha256) AS changed_since_file
FROM integrations i LEFT JOIN template_versions v ON v.id = i.active_version_id
"""


async def listing(conn: Connection) -> list[dict[str, Any]]:
    cur = await conn.execute(_DETAIL + " ORDER BY i.name")
    return await cur.fetchall()


async def get(conn: Connection, name: str, *, for_update: bool = False) -> dict[str, Any] | None:
    cur = await conn.execute(
        _DETAIL + " WHERE i.name = %(name)s" + (" FOR UPDATE OF i" if for_update else ""), {"name": name}
    )
    return await cur.fetchone()


async def activate(conn: Connection, name: str, version_id: int, sha256: str) -> None:
    """Make a version the active one (caller's transaction; the caller announces the change)."""
    await conn.execute(_ACTIVATE, {"vid": version_id, "sha": sha256, "name": name})


@dataclass(frozen=True)
class ConsoleIntegration:
    name: str
    template: str  # the built-in template it started from
    template_sha256: str
    target_base_url: str
    target_region: str | None
    api_key_encrypted: str | None
    auth_mode: str = "token"
    token_header: str | None = None
    default_team: str | None = None
    default_priority: str | None = None
    default_source: str | None = None
    scope_aliases: bool = True


_CREATE = """
INSERT INTO integrations (name, template, template_sha256, target_base_url, target_region, managed_by, enabled,
                          auth_mode, token_header, api_key_encrypted, default_team, default_priority,
                          default_source, scope_aliases)
VALUES (%(name)s, %(template)s, %(template_sha256)s, %(target_base_url)s, %(target_region)s, 'console', true,
        %(auth_mode)s, %(token_header)s, %(api_key_encrypted)s, %(default_team)s, %(default_priority)s,
        %(default_source)s, %(scope_aliases)s)
ON CONFLICT (name) DO NOTHING
RETURNING name
"""


async def create(conn: Connection, integ: ConsoleIntegration) -> bool:
    """False when the name is taken."""
    cur = await conn.execute(_CREATE, integ.__dict__)
    return await cur.fetchone() is not None


_EDITABLE = {
    "enabled",
    "target_base_url",
    "target_region",
    "api_key_encrypted",
    "default_team",
    "default_priority",
    "default_source",
    "scope_aliases",
    "auth_mode",
    "token_header",
    "policies",
}


async def update(conn: Connection, name: str, **values: Any) -> None:
    """Set some editable columns of one integration (caller's transaction)."""
    unknown = set(values) - _EDITABLE
    assert not unknown, unknown
    if not values:
        return
    if "policies" in values:
        values = {**values, "policies": Jsonb(dict(values["policies"]))}
    sets = ", ".join(f"{key} = %({key})s" for key in values)
    await conn.execute(
        f"UPDATE integrations SET {sets}, updated_at = now() WHERE name = %(name)s", {**values, "name": name}
    )
