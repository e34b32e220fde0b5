"""The no-config-file demo: one integration per token-authenticated built-in template."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from starlette.datastructures import Secret

from alertbridge.config.env import overrides
from alertbridge.config.model import CallbacksConfig, Config, IntegrationConfig, TargetConfig
from alertbridge.config.parse import parse_config

DEMO_TOKEN = "demo-token"
DEMO_CALLBACK_TOKEN = "demo-callback-token"
DEMO_API_KEY = "demo-key"
# Sources a newcomer can curl with a token (Sentry and SNS need signatures, so they are not in the demo).
DEMO_INTEGRATIONS = ("alertmanager", "generic", "grafana", "genesys", "azure_monitor", "datadog")


def demo_config(
    emulator_base_url: str, *, data_dir: Path = Path(".alertbridge"), env: Mapping[str, str] | None = None
) -> Config:
    """Each integration is named after its template, accepts the token "demo-token" (also in the X-Bridge-Token
    header) and delivers to the built-in emulator, which calls back to /callbacks/opsgenie with the token
    "demo-callback-token". `env`'s scalar settings (ALERTBRIDGE_<SECTION>_<KEY>) apply as
    they do with a config file."""
    env = env or {}
    base = parse_config("", env, source="<demo>")
    target = TargetConfig(
        base_url=emulator_base_url.rstrip("/"),
        region=None,
        api_key=Secret(DEMO_API_KEY),
        default_source="alertbridge",
        scope_aliases=True,
    )
    integrations = tuple(
        IntegrationConfig(
            name=name, template=name, tokens=(Secret(DEMO_TOKEN),), target=target, token_header="x-bridge-token"
        )
        for name in DEMO_INTEGRATIONS
    )
    if "data_dir" not in overrides(env, "database"):
        base = replace(base, database=replace(base.database, data_dir=data_dir))
    return Config(
        server=base.server,
        database=base.database,
        delivery=base.delivery,
        rendering=base.rendering,
        integrations=integrations,
        source="<demo>",
        base_dir=Path("."),
        worker=base.worker,
        callbacks=CallbacksConfig(tokens=(Secret(DEMO_CALLBACK_TOKEN),)),
        retention=base.retention,
    )
