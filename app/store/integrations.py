"""``integrations``: what the config file (and later the console) declares, mirrored for SQL and the console.
No secret is written here (tokens and API keys stay in the file / environment)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from alertbridge.db import Connection


@dataclass(frozen=True)
class FileIntegration:
    name: str
    template: str
    template_sha256: str
    target_base_url: str
    target_region: str | None
    settings: dict[str, Any]
    enabled: bool


_UPSERT = """
INSERT INTO integrations (name, template, template_sha256, target_base_url, target_region, settings, managed_by,
                          enabled)
VALUES (%(name)s, %(template)s, %(template_sha256)s, %(target_base_url)s, %(target_region)s, %(settings)s, 'file',
        %(enabled)s)
ON CONFLICT (name) DO UPDATE SET
    template = EXCLUDED.template, template_sha256 = EXCLUDED.template_sha256,
    target_base_url = EXCLUDED.target_base_url, target_region = EXCLUDED.target_region,
    settings = EXCLUDED.settings, managed_by = 'file', enabled = EXCLUDED.enabled,
    updated_at = now()
WHERE (integrations.template, integrations.template_sha256, integrations.target_base_url,
       integrations.target_region, integrations.settings, integrations.managed_by, integrations.enabled)
      IS DISTINCT FROM
      (EXCLUDED.template, EXCLUDED.template_sha256, EXCLUDED.target_base_url,
       EXCLUDED.target_region, EXCLUDED.settings, 'file', EXCLUDED.enabled)
"""


async def sync_from_file(conn: Connection, integrations: Sequence[FileIntegration]) -> None:
    """Provisioning, Grafana style: file-managed rows follow the file; ones no longer in it are disabled."""
    for integ in integrations:
        await conn.execute(_UPSERT, {**integ.__dict__, "settings": Jsonb(integ.settings)})
    await conn.execute(
        "UPDATE integrations SET enabled = false, updated_at = now() "
        "WHERE managed_by = 'file' AND enabled AND NOT (name = ANY(%(names)s::text[]))",
        {"names": [i.name for i in integrations]},
    )
