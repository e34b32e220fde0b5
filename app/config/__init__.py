"""The TOML config file: text and an environment mapping in, frozen dataclasses out.

- `model`: the dataclasses and `ConfigError` (which lists every problem found);
- `values`: the checker of each kind of value, and the context that collects every error;
- `schema`: every accepted key, by table, with its checker;
- `env`: scalar settings from ALERTBRIDGE_<SECTION>_<KEY> environment variables, which win over the file;
- `parse`: the sections, `parse_config`, `load_config` and `inspect_config` (all errors at once);
- `demo`: the no-config-file demo.
"""

from __future__ import annotations

from alertbridge.config.demo import DEMO_API_KEY, DEMO_CALLBACK_TOKEN, DEMO_INTEGRATIONS, DEMO_TOKEN, demo_config
from alertbridge.config.model import (
    PRIORITIES,
    REGION_BASE_URLS,
    SENTRY_SIGNATURE_HEADER,
    SENTRY_TIMESTAMP_HEADER,
    SIGNATURE_KINDS,
    CallbacksConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    DeliveryConfig,
    IntegrationConfig,
    RenderingConfig,
    RetentionConfig,
    ServerConfig,
    SignatureConfig,
    TargetConfig,
    WorkerConfig,
)
from alertbridge.config.parse import (
    Report,
    TemplateRef,
    inspect_config,
    inspect_config_file,
    load_config,
    parse_config,
)
from alertbridge.config.schema import key_paths as _key_paths
from alertbridge.config.values import MIN_TOKEN_LENGTH, NAME_PATTERN

__all__ = [
    "DEMO_API_KEY",
    "DEMO_CALLBACK_TOKEN",
    "DEMO_INTEGRATIONS",
    "DEMO_TOKEN",
    "MIN_TOKEN_LENGTH",
    "NAME_PATTERN",
    "PRIORITIES",
    "REGION_BASE_URLS",
    "SENTRY_SIGNATURE_HEADER",
    "SENTRY_TIMESTAMP_HEADER",
    "SIGNATURE_KINDS",
    "CallbacksConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "DeliveryConfig",
    "IntegrationConfig",
    "RenderingConfig",
    "RetentionConfig",
    "Report",
    "ServerConfig",
    "SignatureConfig",
    "TargetConfig",
    "TemplateRef",
    "WorkerConfig",
    "_key_paths",
    "demo_config",
    "inspect_config",
    "inspect_config_file",
    "load_config",
    "parse_config",
]
