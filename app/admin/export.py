"""Export, so console changes can go back into git: a template version as a ``.j2`` file, and the integrations
as a config file (TOML) whose templates point at those files. Secrets are never exported: tokens and API keys
become ``${VAR}`` references to fill in from the environment."""

from __future__ import annotations

import json
import re
from typing import Any

from alertbridge.db import Database
from alertbridge.store import integrations


def _s(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML escapes)."""
    return json.dumps(value, ensure_ascii=True)


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _s(key)


def env_name(name: str, what: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_" + what


def template_file(name: str) -> str:
    return f"templates/{name}.j2"


def toml(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# alertbridge integrations, exported from the console.",
        "# Templates: save each integration's active version (console: Versions > .j2) to the file named below.",
        "# Secrets are not exported: set the ${...} environment variables (new tokens for console-made ones).",
        "",
    ]
    for row in rows:
        name = row["name"]
        lines += [
            "[[integrations]]",
            f"name = {_s(name)}",
            f"template = {_s(template_file(name))}  # active version {row['active_version']}",
        ]
        if row["auth_mode"] == "none":
            lines.append("allow_unauthenticated = true")
        elif row["auth_mode"] == "token":
            lines.append(f"tokens = [{_s('${' + env_name(name, 'TOKEN') + '}')}]")
        else:
            lines.append(f"# signature kind {row['auth_mode']!r}: copy [integrations.signature] from the original file")
        if row["token_header"]:
            lines.append(f"token_header = {_s(row['token_header'])}")
        lines.append(f"forward_unknown = {'true' if row['forward_unknown'] else 'false'}")
        lines.append(f"enabled = {'true' if row['enabled'] else 'false'}")
        if row["locked"]:
            lines.append("locked = true")
        lines += ["", "[integrations.target]"]
        if row["target_region"]:
            lines.append(f"region = {_s(row['target_region'])}")
        else:
            lines.append(f"base_url = {_s(row['target_base_url'])}")
        lines.append(f"api_key = {_s('${' + env_name(name, 'OPSGENIE_API_KEY') + '}')}")
        for key in ("default_team", "default_priority", "default_source"):
            if row[key]:
                lines.append(f"{key} = {_s(row[key])}")
        lines.append(f"scope_aliases = {'true' if row['scope_aliases'] else 'false'}")
        policies = dict(row.get("policies") or {})
        for key in ("rate_per_minute", "burst"):  # pacing lives in the target table
            if key in policies:
                lines.append(f"{key} = {json.dumps(policies.pop(key))}")
        if policies:
            lines += ["", "[integrations.policies]"]
            lines += [f"{key} = {json.dumps(value)}" for key, value in sorted(policies.items())]
        if row["priorities"]:
            lines += ["", "[integrations.priorities]"]
            lines += [f"{_key(k)} = {_s(v)}" for k, v in sorted(row["priorities"].items())]
        lines.append("")
    return "\n".join(lines)


async def integrations_toml(db: Database) -> str:
    async with db.connection() as conn:
        return toml(await integrations.listing(conn))
