"""The TOML config file: text and an environment mapping in, frozen dataclasses out.

Pure, except that `load_config` reads the file and `signature.signing_cert_file` must exist. Every
string value may use `${VAR}` (read from the given environment) and `$${` for a literal `${`. Secrets
(tokens, API keys, signature secrets, the database URL) are wrapped in `starlette.datastructures.Secret`,
whose repr hides the value, so a `Config` can be printed or logged safely; call `str(secret)` where the
value is really needed.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Secret

REGION_BASE_URLS = {
    "us": "https://api.opsgenie.com",
    "eu": "https://api.eu.opsgenie.com",
    "jsm": "https://api.atlassian.com/jsm/ops/integration",
}
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MIN_TOKEN_LENGTH = 8
MAX_SOURCE_LENGTH = 100  # OpsGenie's limit for the `source` field
MAX_HEADER_NAME_LENGTH = 100
MAX_PRIORITY_KEY_LENGTH = 100
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an RFC 7230 token
SNS_TOPIC_ARN_PATTERN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$"
SIGNATURE_KINDS = ("hmac-sha256", "sentry", "sns")
SENTRY_SIGNATURE_HEADER = "sentry-hook-signature"
SENTRY_TIMESTAMP_HEADER = "sentry-hook-timestamp"


class ConfigError(ValueError):
    """A problem with the config file; the message names the file and the key path."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1_048_576
    max_json_depth: int = 64
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keep_alive_seconds: float = 5.0
    max_connections: int | None = None  # None: derived from the open-file limit
    ingest_concurrency: int = 8
    ingest_wait_seconds: float = 10.0


@dataclass(frozen=True)
class DatabaseConfig:
    url: Secret | None = None
    data_dir: Path = Path(".alertbridge")


@dataclass(frozen=True)
class DeliveryConfig:
    max_in_flight: int = 16
    timeout_seconds: float = 10.0
    max_age_seconds: float = 86400.0
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    config_error_retry_seconds: float = 60.0
    config_error_max_age_seconds: float = 604800.0
    confirm_creates: bool = True
    poll_interval_seconds: float = 1.0
    lease_seconds: float = 60.0
    shutdown_grace_seconds: float = 10.0
    record_retry_seconds: float = 10.0
    circuit_failures: int = 5
    circuit_probe_max_seconds: float = 5.0


@dataclass(frozen=True)
class RenderingConfig:
    timeout_seconds: float = 2.0
    max_output_bytes: int = 4_194_304
    max_events: int = 1000


@dataclass(frozen=True)
class TargetConfig:
    base_url: str
    region: str | None
    api_key: Secret
    default_team: str | None = None
    default_priority: str | None = None
    default_source: str | None = None
    scope_aliases: bool = True


@dataclass(frozen=True)
class SignatureConfig:
    """`[integrations.signature]`: how the raw body is signed. Which fields apply depends on `kind`."""

    kind: str  # one of SIGNATURE_KINDS
    secret: Secret | None = None  # hmac-sha256, sentry (required)
    header: str | None = None  # hmac-sha256 (required), sentry (has a default); lower-case
    timestamp_header: str | None = None  # hmac-sha256 (optional), sentry (has a default); lower-case
    max_skew_seconds: float = 300.0  # hmac-sha256 with timestamp_header, sentry
    topic_arns: tuple[str, ...] = ()  # sns: topics whose SubscriptionConfirmation is confirmed
    signing_cert_file: Path | None = None  # sns: PEM file used instead of fetching SigningCertURL
    confirm_subscriptions: bool = True  # sns: GET the SubscribeURL for a listed topic


@dataclass(frozen=True)
class IntegrationConfig:
    name: str
    template: str
    tokens: tuple[Secret, ...]
    target: TargetConfig
    forward_unknown: bool = False
    enabled: bool = True
    allow_unauthenticated: bool = False
    token_header: str | None = None  # lower-case
    # severity word (lower-case, stripped) -> "P1".."P5"; read-only
    priorities: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    signature: SignatureConfig | None = None


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    database: DatabaseConfig
    delivery: DeliveryConfig
    rendering: RenderingConfig
    integrations: tuple[IntegrationConfig, ...]
    source: str  # the config file's path, or "<demo>"
    base_dir: Path  # folder against which relative paths (templates, data_dir) resolve


# --------------------------------------------------------------------------------------------
# Validation context and value checkers


class _Ctx:
    def __init__(self, env: Mapping[str, str], source: str, base_dir: Path) -> None:
        self.env = env
        self.source = source
        self.base_dir = base_dir

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}")

    def expand(self, text: str, path: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if name is None:
                raise self.error(
                    path, "malformed '${': write ${NAME} (letters, digits, '_') or '$${' for a literal '${'"
                )
            if name not in self.env:
                raise self.error(path, f"environment variable {name} is not set")
            return self.env[name]

        return _VAR_RE.sub(replace, text)


_VAR_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
_Check = Callable[[Any, str, _Ctx], Any]


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, datetime.datetime):
        return "datetime"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, datetime.time):
        return "time"
    return type(value).__name__


def _expanded(value: Any, path: str, ctx: _Ctx, *, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise ctx.error(path, f"must be {what} (got {_type_name(value)})")
    text = ctx.expand(value, path)
    if not text.strip():
        after = " after expanding environment variables" if "${" in value else ""
        raise ctx.error(path, f"must not be empty{after}")
    return text


def _string(*, max_length: int | None = None) -> _Check:
    def check(value: Any, path: str, ctx: _Ctx) -> str:
        text = _expanded(value, path, ctx)
        if max_length is not None and len(text) > max_length:
            raise ctx.error(path, f"must be at most {max_length} characters (got {len(text)})")
        return text

    return check


def _secret(*, min_length: int = 1) -> _Check:
    """A string that is wrapped in Secret; error messages never include its value."""

    def check(value: Any, path: str, ctx: _Ctx) -> Secret:
        text = _expanded(value, path, ctx)
        if len(text) < min_length:
            raise ctx.error(path, f"must be at least {min_length} characters (got {len(text)})")
        if not (text.isascii() and text.isprintable()) or any(c.isspace() for c in text):
            raise ctx.error(path, "must be printable ASCII without spaces (it is sent in an HTTP header)")
        return Secret(text)

    return check


def _database_url(value: Any, path: str, ctx: _Ctx) -> Secret:
    return Secret(_expanded(value, path, ctx))


def _integer(*, minimum: int = 1, maximum: int | None = None) -> _Check:
    def check(value: Any, path: str, ctx: _Ctx) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.error(path, f"must be an integer (got {_type_name(value)})")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ctx.error(path, f"must be {bounds} (got {value})")
        return value

    return check


def _number(*, allow_zero: bool = False) -> _Check:
    def check(value: Any, path: str, ctx: _Ctx) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ctx.error(path, f"must be a number (got {_type_name(value)})")
        number = float(value)
        if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
            wanted = "a finite number >= 0" if allow_zero else "a finite number > 0"
            raise ctx.error(path, f"must be {wanted} (got {value})")
        return number

    return check


def _boolean(value: Any, path: str, ctx: _Ctx) -> bool:
    if not isinstance(value, bool):
        raise ctx.error(path, f"must be true or false (got {_type_name(value)})")
    return value


def _choice(options: tuple[str, ...]) -> _Check:
    def check(value: Any, path: str, ctx: _Ctx) -> str:
        text = _expanded(value, path, ctx)
        if text not in options:
            listed = ", ".join(repr(o) for o in options)
            raise ctx.error(path, f"must be one of {listed} (got {text!r})")
        return text

    return check


def _name(value: Any, path: str, ctx: _Ctx) -> str:
    text = _expanded(value, path, ctx)
    if not re.fullmatch(NAME_PATTERN, text):
        raise ctx.error(
            path,
            f"must match {NAME_PATTERN} (lowercase letters, digits, '_' and '-'; at most 63 characters) (got {text!r})",
        )
    return text


def _base_url(value: Any, path: str, ctx: _Ctx) -> str:
    text = _expanded(value, path, ctx).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ctx.error(path, f"must be an http:// or https:// URL (got {text!r})")
    if parts.username is not None or parts.password is not None:
        raise ctx.error(path, "must not contain credentials (put the key in api_key)")
    if parts.query or parts.fragment:
        raise ctx.error(path, "must not contain a query string or fragment")
    return text.rstrip("/")


def _path(value: Any, path: str, ctx: _Ctx) -> Path:
    result = Path(_expanded(value, path, ctx)).expanduser()
    return result if result.is_absolute() else ctx.base_dir / result


def _tokens(value: Any, path: str, ctx: _Ctx) -> tuple[Secret, ...]:
    if not isinstance(value, list):
        raise ctx.error(path, f"must be an array of strings (got {_type_name(value)})")
    check = _secret(min_length=MIN_TOKEN_LENGTH)
    tokens = tuple(check(item, f"{path}[{i}]", ctx) for i, item in enumerate(value))
    seen: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if str(token) in seen:
            raise ctx.error(f"{path}[{i}]", f"duplicate token (same as {path}[{seen[str(token)]}])")
        seen[str(token)] = i
    return tokens


def _header_name(value: Any, path: str, ctx: _Ctx) -> str:
    text = _expanded(value, path, ctx)
    if len(text) > MAX_HEADER_NAME_LENGTH or not re.fullmatch(HEADER_NAME_PATTERN, text):
        raise ctx.error(
            path,
            f"must be an HTTP header name: 1 to {MAX_HEADER_NAME_LENGTH} letters, digits and "
            f"!#$%&'*+-.^_`|~ (got {text!r})",
        )
    return text.lower()


def _toml_key(key: str) -> str:
    """A key as written in TOML: bare if it can be, else quoted (`"needs attention"`)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _priorities(value: Any, path: str, ctx: _Ctx) -> Mapping[str, str]:
    """A free-form table: any severity word -> "P1".."P5" (either case). Keys are lower-cased and stripped."""
    if not isinstance(value, dict):
        raise ctx.error(path, f"must be a table (got {_type_name(value)})")
    priorities: dict[str, str] = {}
    first_key: dict[str, str] = {}
    for raw_key, item in value.items():
        key_path = f"{path}.{_toml_key(raw_key)}"
        key = raw_key.strip().lower()
        if not key or len(key) > MAX_PRIORITY_KEY_LENGTH:
            raise ctx.error(key_path, f"key must be 1 to {MAX_PRIORITY_KEY_LENGTH} characters (got {len(key)})")
        if key in first_key:
            raise ctx.error(key_path, f"duplicate key (same as {path}.{_toml_key(first_key[key])} once lower-cased)")
        text = _expanded(item, key_path, ctx)
        priority = text.strip().upper()
        if priority not in PRIORITIES:
            listed = ", ".join(repr(p) for p in PRIORITIES)
            raise ctx.error(key_path, f"must be one of {listed}, in either case (got {text!r})")
        first_key[key] = raw_key
        priorities[key] = priority
    return MappingProxyType(priorities)


def _topic_arns(value: Any, path: str, ctx: _Ctx) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ctx.error(path, f"must be an array of strings (got {_type_name(value)})")
    arns: list[str] = []
    for i, item in enumerate(value):
        arn = _expanded(item, f"{path}[{i}]", ctx)
        if not re.fullmatch(SNS_TOPIC_ARN_PATTERN, arn):
            raise ctx.error(
                f"{path}[{i}]", f"must be an SNS topic ARN like arn:aws:sns:<region>:<account>:<topic> (got {arn!r})"
            )
        if arn in arns:
            raise ctx.error(f"{path}[{i}]", f"duplicate topic ARN (same as {path}[{arns.index(arn)}])")
        arns.append(arn)
    return tuple(arns)


# --------------------------------------------------------------------------------------------
# The schema: every accepted key, by table. Nested dicts are sub-tables. The docs test walks this.

_SERVER: dict[str, _Check] = {
    "host": _string(),
    "port": _integer(minimum=1, maximum=65535),
    "max_body_bytes": _integer(),
    "max_json_depth": _integer(),
    "header_timeout_seconds": _number(),
    "body_timeout_seconds": _number(),
    "keep_alive_seconds": _number(),
    "max_connections": _integer(),
    "ingest_concurrency": _integer(),
    "ingest_wait_seconds": _number(),
}
_DATABASE: dict[str, _Check] = {
    "url": _database_url,
    "data_dir": _path,
}
_DELIVERY: dict[str, _Check] = {
    "max_in_flight": _integer(),
    "timeout_seconds": _number(),
    "max_age_seconds": _number(),
    "backoff_base_seconds": _number(),
    "backoff_max_seconds": _number(),
    "config_error_retry_seconds": _number(),
    "config_error_max_age_seconds": _number(),
    "confirm_creates": _boolean,
    "poll_interval_seconds": _number(),
    "lease_seconds": _number(),
    "shutdown_grace_seconds": _number(allow_zero=True),
    "record_retry_seconds": _number(allow_zero=True),
    "circuit_failures": _integer(),
    "circuit_probe_max_seconds": _number(),
}
_RENDERING: dict[str, _Check] = {
    "timeout_seconds": _number(),
    "max_output_bytes": _integer(),
    "max_events": _integer(),
}
_TARGET: dict[str, _Check] = {
    "region": _choice(tuple(REGION_BASE_URLS)),
    "base_url": _base_url,
    "api_key": _secret(),
    "default_team": _string(),
    "default_priority": _choice(PRIORITIES),
    "default_source": _string(max_length=MAX_SOURCE_LENGTH),
    "scope_aliases": _boolean,
}
_SIGNATURE: dict[str, _Check] = {
    "kind": _choice(SIGNATURE_KINDS),
    "secret": _secret(min_length=MIN_TOKEN_LENGTH),
    "header": _header_name,
    "timestamp_header": _header_name,
    "max_skew_seconds": _number(),
    "topic_arns": _topic_arns,
    "signing_cert_file": _path,
    "confirm_subscriptions": _boolean,
}
# Which [integrations.signature] keys each kind accepts (besides `kind`), and which it requires.
_SIGNATURE_KEYS = {
    "hmac-sha256": {"secret", "header", "timestamp_header", "max_skew_seconds"},
    "sentry": {"secret", "header", "timestamp_header", "max_skew_seconds"},
    "sns": {"topic_arns", "signing_cert_file", "confirm_subscriptions"},
}
_SIGNATURE_REQUIRED = {"hmac-sha256": ("secret", "header"), "sentry": ("secret",), "sns": ()}
_INTEGRATION: dict[str, Any] = {
    "name": _name,
    "template": _string(),
    "tokens": _tokens,
    "token_header": _header_name,
    "allow_unauthenticated": _boolean,
    "forward_unknown": _boolean,
    "enabled": _boolean,
    "priorities": _priorities,  # a free-form table, checked as one value
    "target": _TARGET,
    "signature": _SIGNATURE,
}
_SCHEMA: dict[str, dict[str, Any]] = {
    "server": _SERVER,
    "database": _DATABASE,
    "delivery": _DELIVERY,
    "rendering": _RENDERING,
    "integrations": _INTEGRATION,  # an array of tables: [[integrations]]
}


def _key_paths(schema: Mapping[str, Any] = _SCHEMA, prefix: str = "") -> list[str]:
    """Every leaf key the parser accepts, as dotted paths (`integrations.target.region`)."""
    paths: list[str] = []
    for key, entry in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        paths.extend(_key_paths(entry, path) if isinstance(entry, dict) else [path])
    return paths


def _suggest(key: str, schema: Mapping[str, Any], schema_path: str) -> str:
    close = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    elsewhere = [p for p in _key_paths() if p.rsplit(".", 1)[-1] == key and p.rsplit(".", 1)[0] != schema_path]
    if elsewhere:
        return f" (did you mean {elsewhere[0]!r}? it belongs in another table)"
    return ""


def _table(value: Any, path: str, ctx: _Ctx, schema: Mapping[str, Any], schema_path: str) -> dict[str, Any]:
    """Check that `value` is a table with only known keys; return its checked leaf values."""
    if not isinstance(value, dict):
        raise ctx.error(path, f"must be a table (got {_type_name(value)})")
    checked: dict[str, Any] = {}
    for key, item in value.items():
        key_path = f"{path}.{key}" if path else key
        if key not in schema:
            raise ctx.error(key_path, f"unknown key{_suggest(key, schema, schema_path)}")
        if not isinstance(schema[key], dict):
            checked[key] = schema[key](item, key_path, ctx)
    return checked


def _required(table: Mapping[str, Any], key: str, path: str, ctx: _Ctx, hint: str = "") -> None:
    if key not in table:
        raise ctx.error(f"{path}.{key}", f"required key is missing{hint}")


# --------------------------------------------------------------------------------------------
# Sections


def _database(raw: Any, ctx: _Ctx) -> DatabaseConfig:
    values = _table(raw, "database", ctx, _DATABASE, "database")
    values.setdefault("data_dir", ctx.base_dir / DatabaseConfig.data_dir)
    return DatabaseConfig(**values)


def _delivery(raw: Any, ctx: _Ctx) -> DeliveryConfig:
    delivery = DeliveryConfig(**_table(raw, "delivery", ctx, _DELIVERY, "delivery"))
    if delivery.backoff_max_seconds < delivery.backoff_base_seconds:
        raise ctx.error(
            "delivery.backoff_max_seconds",
            f"must be >= delivery.backoff_base_seconds ({delivery.backoff_base_seconds})",
        )
    return delivery


def _target(raw: Any, path: str, ctx: _Ctx) -> TargetConfig:
    values = _table(raw, path, ctx, _TARGET, "integrations.target")
    region = values.pop("region", None)
    base_url = values.pop("base_url", None)
    if region is not None and base_url is not None:
        raise ctx.error(path, "set either 'region' or 'base_url', not both")
    if region is None and base_url is None:
        regions = ", ".join(repr(r) for r in REGION_BASE_URLS)
        raise ctx.error(path, f"one of 'region' ({regions}) or 'base_url' is required")
    _required(values, "api_key", path, ctx, " (the OpsGenie / JSM API integration key)")
    return TargetConfig(base_url=base_url or REGION_BASE_URLS[region], region=region, **values)


def _signature(raw: Any, path: str, ctx: _Ctx) -> SignatureConfig:
    values = _table(raw, path, ctx, _SIGNATURE, "integrations.signature")
    _required(values, "kind", path, ctx, f" (one of {', '.join(repr(k) for k in SIGNATURE_KINDS)})")
    kind = values["kind"]
    for key in values:
        if key != "kind" and key not in _SIGNATURE_KEYS[kind]:
            raise ctx.error(f"{path}.{key}", f"not allowed with kind = {kind!r}")
    for key in _SIGNATURE_REQUIRED[kind]:
        _required(values, key, path, ctx, f" (kind = {kind!r} needs it)")
    if kind == "hmac-sha256" and "max_skew_seconds" in values and "timestamp_header" not in values:
        raise ctx.error(f"{path}.max_skew_seconds", "only applies with timestamp_header (set it, or remove this)")
    if kind == "sentry":
        values.setdefault("header", SENTRY_SIGNATURE_HEADER)
        values.setdefault("timestamp_header", SENTRY_TIMESTAMP_HEADER)
    cert_file = values.get("signing_cert_file")
    if cert_file is not None and not cert_file.is_file():
        raise ctx.error(f"{path}.signing_cert_file", f"file not found: {cert_file}")
    return SignatureConfig(**values)


def _integration(raw: Any, path: str, ctx: _Ctx) -> IntegrationConfig:
    values = _table(raw, path, ctx, _INTEGRATION, "integrations")
    _required(values, "name", path, ctx)
    _required(values, "template", path, ctx, " (a built-in template name or a path to a .j2 file)")
    _required(raw, "target", path, ctx, " (a [integrations.target] table)")
    signature = _signature(raw["signature"], f"{path}.signature", ctx) if "signature" in raw else None
    open_door = values.get("allow_unauthenticated", False)
    tokens = values.get("tokens")
    # Tokens are required unless requests are let in without them or are authenticated by a signature.
    if not tokens and not open_door and signature is None:
        _required(values, "tokens", path, ctx, f" (a list of at least one token of {MIN_TOKEN_LENGTH}+ characters)")
        raise ctx.error(
            f"{path}.tokens",
            "must not be empty (set allow_unauthenticated = true to accept any request, "
            "or add an [integrations.signature])",
        )
    if tokens and open_door:
        raise ctx.error(f"{path}.allow_unauthenticated", "must be false when tokens are set (or set tokens = [])")
    if signature is not None and open_door:
        raise ctx.error(f"{path}.allow_unauthenticated", "must be false when an [integrations.signature] is set")
    values["tokens"] = tokens or ()
    return IntegrationConfig(target=_target(raw["target"], f"{path}.target", ctx), signature=signature, **values)


def _integrations(raw: Any, ctx: _Ctx) -> tuple[IntegrationConfig, ...]:
    if not isinstance(raw, list):
        raise ctx.error("integrations", f"must be an array of tables, written [[integrations]] (got {_type_name(raw)})")
    integrations: list[IntegrationConfig] = []
    first_index: dict[str, int] = {}
    for i, item in enumerate(raw):
        integration = _integration(item, f"integrations[{i}]", ctx)
        if integration.name in first_index:
            raise ctx.error(
                f"integrations[{i}].name",
                f"duplicate integration name {integration.name!r} "
                f"(also integrations[{first_index[integration.name]}].name)",
            )
        first_index[integration.name] = i
        integrations.append(integration)
    return tuple(integrations)


# --------------------------------------------------------------------------------------------
# Public entry points


def parse_config(
    text: str,
    env: Mapping[str, str],
    *,
    source: str = "alertbridge.toml",
    base_dir: Path = Path("."),
) -> Config:
    """Parse config file text. `env` feeds `${VAR}`; `base_dir` resolves relative paths."""
    ctx = _Ctx(env, source, base_dir)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    _table(document, "", ctx, _SCHEMA, "")  # unknown top-level keys
    return Config(
        server=ServerConfig(**_table(document.get("server", {}), "server", ctx, _SERVER, "server")),
        database=_database(document.get("database", {}), ctx),
        delivery=_delivery(document.get("delivery", {}), ctx),
        rendering=RenderingConfig(**_table(document.get("rendering", {}), "rendering", ctx, _RENDERING, "rendering")),
        integrations=_integrations(document.get("integrations", []), ctx),
        source=source,
        base_dir=base_dir,
    )


def load_config(path: str | Path, env: Mapping[str, str]) -> Config:
    """Read and parse a config file; relative paths in it resolve against its folder."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: config file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror or exc}") from None
    return parse_config(text, env, source=str(path), base_dir=file.absolute().parent)


DEMO_TOKEN = "demo-token"
# Sources a newcomer can curl with a token (Sentry and SNS need signatures, so they are not in the demo).
DEMO_INTEGRATIONS = ("alertmanager", "generic", "grafana", "genesys", "azure_monitor", "datadog")


def demo_config(emulator_base_url: str, *, data_dir: Path = Path(".alertbridge")) -> Config:
    """The no-config-file demo: one integration per token-authenticated built-in template, each named after
    its template, accepting the token "demo-token" (also in the X-Bridge-Token header), delivering to the
    built-in emulator."""
    target = TargetConfig(
        base_url=emulator_base_url.rstrip("/"),
        region=None,
        api_key=Secret("demo-key"),
        default_source="alertbridge",
        scope_aliases=True,
    )
    integrations = tuple(
        IntegrationConfig(
            name=name, template=name, tokens=(Secret(DEMO_TOKEN),), target=target, token_header="x-bridge-token"
        )
        for name in DEMO_INTEGRATIONS
    )
    return Config(
        server=ServerConfig(),
        database=DatabaseConfig(data_dir=data_dir),
        delivery=DeliveryConfig(),
        rendering=RenderingConfig(),
        integrations=integrations,
        source="<demo>",
        base_dir=Path("."),
    )
