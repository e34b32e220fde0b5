"""Config file text (and the environment) in, a `Config` out — or every problem found, at once.

Every string value may use `${VAR}` (read from the given environment) and `$${` for a literal `${`. Scalar
settings may also come from the environment (`alertbridge.config.env`), which wins over the file. Pure, except
that `load_config` reads the file and `signature.signing_cert_file` must exist.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alertbridge.config import env as env_vars
from alertbridge.config import policies as policy_config
from alertbridge.config import schema as s
from alertbridge.config.model import (
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
    SweeperConfig,
    TargetConfig,
    WorkerConfig,
)
from alertbridge.config.values import MIN_TOKEN_LENGTH, MISSING, Ctx, type_name

ENV_SOURCE = "environment"


@dataclass(frozen=True)
class TemplateRef:
    """An integration's `template` value, with the key path that set it (for `alertbridge check`)."""

    path: str  # "integrations[1].template"
    integration: str | None  # its name, when that is valid
    ref: str


@dataclass(frozen=True)
class Report:
    """What a config file gives, errors included: `config` holds every integration that is valid."""

    config: Config
    errors: list[str]
    templates: list[TemplateRef] = field(default_factory=list)
    integration_tables: int = 0  # how many [[integrations]] the file has, valid or not


# --------------------------------------------------------------------------------------------
# Sections


def _scalars(document: Mapping[str, Any], section: str, ctx: Ctx) -> dict[str, Any]:
    """A table of scalar settings: the file's valid values, then the environment's (which win)."""
    checks = s.SCHEMA[section]
    found = env_vars.overrides(ctx.env, section)
    values = s.table(document.get(section, {}), section, ctx, checks, section, skip=frozenset(found)) or {}
    env_ctx = Ctx(ctx.env, ENV_SOURCE, Path("."), errors=ctx.errors, literal=True)
    for key, (var, text) in found.items():
        value = env_ctx.check(env_vars.reader(section, key, checks[key]), text, f"{var} ({section}.{key})")
        if value is not MISSING:
            values[key] = value
    return values


def _database(document: Mapping[str, Any], ctx: Ctx) -> DatabaseConfig:
    values = _scalars(document, "database", ctx)
    values.setdefault("data_dir", ctx.base_dir / DatabaseConfig.data_dir)
    return DatabaseConfig(**values)


def _delivery(document: Mapping[str, Any], ctx: Ctx) -> DeliveryConfig:
    values = _scalars(document, "delivery", ctx)
    delivery = DeliveryConfig(**values)
    both = {"backoff_base_seconds", "backoff_max_seconds"} <= set(values)
    if both and delivery.backoff_max_seconds < delivery.backoff_base_seconds:
        ctx.report(
            "delivery.backoff_max_seconds",
            f"must be >= delivery.backoff_base_seconds ({delivery.backoff_base_seconds})",
        )
    return delivery


def _required(raw: Mapping[str, Any], key: str, path: str, ctx: Ctx, hint: str = "") -> bool:
    if key in raw:
        return True
    ctx.report(f"{path}.{key}", f"required key is missing{hint}")
    return False


def _target(raw: Any, path: str, ctx: Ctx) -> TargetConfig | None:
    before = len(ctx.errors)
    values = s.table(raw, path, ctx, s.TARGET, "integrations.target")
    if values is None:
        return None
    if "region" in raw and "base_url" in raw:
        ctx.report(path, "set either 'region' or 'base_url', not both")
    elif "region" not in raw and "base_url" not in raw:
        regions = ", ".join(repr(r) for r in REGION_BASE_URLS)
        ctx.report(path, f"one of 'region' ({regions}) or 'base_url' is required")
    _required(raw, "api_key", path, ctx, " (the OpsGenie / JSM API integration key)")
    if len(ctx.errors) > before:
        return None
    region = values.pop("region", None)
    base_url = values.pop("base_url", None)
    return TargetConfig(base_url=base_url or REGION_BASE_URLS[region], region=region, **values)


def _signature(raw: Any, path: str, ctx: Ctx) -> SignatureConfig | None:
    before = len(ctx.errors)
    values = s.table(raw, path, ctx, s.SIGNATURE, "integrations.signature")
    if values is None:
        return None
    if not _required(raw, "kind", path, ctx, f" (one of {', '.join(repr(k) for k in SIGNATURE_KINDS)})"):
        return None
    kind = values.get("kind")
    if kind is None:  # reported: not one of the kinds
        return None
    for key in raw:
        if key != "kind" and key in s.SIGNATURE and key not in s.SIGNATURE_KEYS[kind]:
            ctx.report(f"{path}.{key}", f"not allowed with kind = {kind!r}")
    for key in s.SIGNATURE_REQUIRED[kind]:
        _required(raw, key, path, ctx, f" (kind = {kind!r} needs it)")
    if kind == "hmac-sha256" and "max_skew_seconds" in raw and "timestamp_header" not in raw:
        ctx.report(f"{path}.max_skew_seconds", "only applies with timestamp_header (set it, or remove this)")
    if kind == "sentry":
        values.setdefault("header", SENTRY_SIGNATURE_HEADER)
        values.setdefault("timestamp_header", SENTRY_TIMESTAMP_HEADER)
    cert_file = values.get("signing_cert_file")
    if cert_file is not None and not cert_file.is_file():
        ctx.report(f"{path}.signing_cert_file", f"file not found: {cert_file}")
    if len(ctx.errors) > before:
        return None
    return SignatureConfig(**values)


def _integration(raw: Any, path: str, ctx: Ctx, templates: list[TemplateRef]) -> IntegrationConfig | None:
    before = len(ctx.errors)
    values = s.table(raw, path, ctx, s.INTEGRATION, "integrations")
    if values is None:
        return None
    _required(raw, "name", path, ctx)
    _required(raw, "template", path, ctx, " (a built-in template name or a path to a .j2 file)")
    if "template" in values:
        templates.append(TemplateRef(f"{path}.template", values.get("name"), values["template"]))
    target = None
    if _required(raw, "target", path, ctx, " (a [integrations.target] table)"):
        target = _target(raw["target"], f"{path}.target", ctx)
    signed = "signature" in raw
    signature = _signature(raw["signature"], f"{path}.signature", ctx) if signed else None
    if "policies" in raw:
        found = s.table(raw["policies"], f"{path}.policies", ctx, s.POLICIES, "integrations.policies")
        if found is not None:
            values["policies"] = policy_config.policies(found)
    open_door = values.get("allow_unauthenticated", False)
    tokens = values.get("tokens")
    # Tokens are required unless requests are let in without them or are authenticated by a signature.
    if "tokens" in raw and "tokens" not in values:
        pass  # reported by the tokens checker
    elif not tokens and not open_door and not signed:
        if _required(raw, "tokens", path, ctx, f" (a list of at least one token of {MIN_TOKEN_LENGTH}+ characters)"):
            ctx.report(
                f"{path}.tokens",
                "must not be empty (set allow_unauthenticated = true to accept any request, "
                "or add an [integrations.signature])",
            )
    if tokens and open_door:
        ctx.report(f"{path}.allow_unauthenticated", "must be false when tokens are set (or set tokens = [])")
    if signed and open_door:
        ctx.report(f"{path}.allow_unauthenticated", "must be false when an [integrations.signature] is set")
    if len(ctx.errors) > before or target is None:
        return None
    values["tokens"] = tokens or ()
    return IntegrationConfig(target=target, signature=signature, **values)


def _integrations(raw: Any, ctx: Ctx, templates: list[TemplateRef]) -> tuple[IntegrationConfig, ...]:
    if not isinstance(raw, list):
        ctx.report("integrations", f"must be an array of tables, written [[integrations]] (got {type_name(raw)})")
        return ()
    integrations: list[IntegrationConfig] = []
    first_index: dict[str, int] = {}
    for i, item in enumerate(raw):
        integration = _integration(item, f"integrations[{i}]", ctx, templates)
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str):
            if name in first_index:
                ctx.report(
                    f"integrations[{i}].name",
                    f"duplicate integration name {name!r} (also integrations[{first_index[name]}].name)",
                )
                continue
            first_index[name] = i
        if integration is not None:
            integrations.append(integration)
    return tuple(integrations)


# --------------------------------------------------------------------------------------------
# Public entry points


def inspect_config(
    text: str,
    env: Mapping[str, str],
    *,
    source: str = "alertbridge.toml",
    base_dir: Path = Path("."),
) -> Report:
    """Parse config file text and report every error (`alertbridge check`); the Config holds what is valid."""
    ctx = Ctx(env, source, base_dir)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        document = {}
        ctx.errors.append(f"{source}: invalid TOML: {exc}")
    s.table(document, "", ctx, s.SCHEMA, "")  # unknown top-level keys (sections are checked below)
    templates: list[TemplateRef] = []
    config = Config(
        server=ServerConfig(**_scalars(document, "server", ctx)),
        database=_database(document, ctx),
        delivery=_delivery(document, ctx),
        rendering=RenderingConfig(**_scalars(document, "rendering", ctx)),
        integrations=_integrations(document.get("integrations", []), ctx, templates),
        source=source,
        base_dir=base_dir,
        worker=WorkerConfig(**_scalars(document, "worker", ctx)),
        callbacks=CallbacksConfig(
            **(s.table(document.get("callbacks", {}), "callbacks", ctx, s.CALLBACKS, "callbacks") or {})
        ),
        retention=RetentionConfig(**_scalars(document, "retention", ctx)),
        silences=policy_config.silences_of(document.get("silences", []), ctx, s.SILENCE, s.table),
        heartbeat=policy_config.heartbeat(_scalars(document, "heartbeat", ctx), document.get("heartbeat", {}), ctx),
        sweeper=SweeperConfig(**_scalars(document, "sweeper", ctx)),
    )
    tables = document.get("integrations")
    return Report(config, ctx.errors, templates, len(tables) if isinstance(tables, list) else 0)


def parse_config(
    text: str,
    env: Mapping[str, str],
    *,
    source: str = "alertbridge.toml",
    base_dir: Path = Path("."),
) -> Config:
    """Parse config file text. `env` feeds `${VAR}` and the environment overrides; `base_dir` resolves relative
    paths. Raises ConfigError listing every problem."""
    report = inspect_config(text, env, source=source, base_dir=base_dir)
    if report.errors:
        raise ConfigError(report.errors)
    return report.config


def read_config_text(path: str | Path) -> str:
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: config file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror or exc}") from None


def inspect_config_file(path: str | Path, env: Mapping[str, str]) -> Report:
    """`inspect_config` of a file; relative paths in it resolve against its folder. Raises ConfigError only when
    the file cannot be read."""
    text = read_config_text(path)
    return inspect_config(text, env, source=str(path), base_dir=Path(path).absolute().parent)


def load_config(path: str | Path, env: Mapping[str, str]) -> Config:
    """Read and parse a config file; relative paths in it resolve against its folder."""
    report = inspect_config_file(path, env)
    if report.errors:
        raise ConfigError(report.errors)
    return report.config
