import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from starlette.datastructures import Secret

from alertbridge.config import (
    REGION_BASE_URLS,
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
    _key_paths,
    demo_config,
    load_config,
    parse_config,
)
from alertbridge.config.model import HeartbeatConfig, PoliciesConfig, SilenceConfig, SweeperConfig

ROOT = Path(__file__).resolve().parent.parent

EXAMPLE = """
[server]
host = "127.0.0.1"          # default 127.0.0.1
port = 8080                 # default 8080
max_body_bytes = 1048576    # default 1 MiB; larger bodies -> 413
max_json_depth = 64         # default 64

[database]
url = "${DATABASE_URL}"
data_dir = ".alertbridge"

[delivery]
max_in_flight = 16
timeout_seconds = 10.0
max_age_seconds = 86400
backoff_base_seconds = 1.0
backoff_max_seconds = 300.0
config_error_retry_seconds = 60.0
config_error_max_age_seconds = 604800
confirm_creates = true
poll_interval_seconds = 1.0
lease_seconds = 60.0
shutdown_grace_seconds = 10.0

[rendering]
timeout_seconds = 2.0
max_output_bytes = 1048576
max_events = 1000

[[integrations]]
name = "alertmanager"          # becomes POST /webhooks/alertmanager
template = "alertmanager"
tokens = ["${AM_TOKEN}"]
forward_unknown = false
enabled = true
[integrations.target]
region = "us"
api_key = "${OPSGENIE_API_KEY}"
default_team = "platform-oncall"
default_priority = "P3"
default_source = "alertbridge"
scope_aliases = true
"""

ENV = {
    "DATABASE_URL": "postgresql://bridge:db-password@db/bridge",
    "AM_TOKEN": "am-token-0123456789",
    "OPSGENIE_API_KEY": "0a1b2c3d-api-key",
}


def plain(value: Any) -> Any:
    """Dataclasses -> dicts, Secrets -> ("secret", value): comparable with ==."""
    if isinstance(value, Secret):
        return ("secret", str(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def minimal(target: str = 'region = "us"\napi_key = "key-123"', **extra: str) -> str:
    lines = "\n".join(f"{k} = {v}" for k, v in extra.items())
    return f"""
[[integrations]]
name = "am"
template = "alertmanager"
tokens = ["token-123456"]
{lines}
[integrations.target]
{target}
"""


def test_full_example_parses_to_exact_dataclasses() -> None:
    config = parse_config(EXAMPLE, ENV, source="conf/alertbridge.toml", base_dir=Path("/etc/alertbridge"))
    expected = Config(
        server=ServerConfig(host="127.0.0.1", port=8080, max_body_bytes=1048576, max_json_depth=64),
        database=DatabaseConfig(url=Secret(ENV["DATABASE_URL"]), data_dir=Path("/etc/alertbridge/.alertbridge")),
        delivery=DeliveryConfig(
            max_in_flight=16,
            timeout_seconds=10.0,
            max_age_seconds=86400.0,
            backoff_base_seconds=1.0,
            backoff_max_seconds=300.0,
            config_error_retry_seconds=60.0,
            config_error_max_age_seconds=604800.0,
            confirm_creates=True,
            poll_interval_seconds=1.0,
            lease_seconds=60.0,
            shutdown_grace_seconds=10.0,
        ),
        rendering=RenderingConfig(timeout_seconds=2.0, max_output_bytes=1048576, max_events=1000),
        integrations=(
            IntegrationConfig(
                name="alertmanager",
                template="alertmanager",
                tokens=(Secret(ENV["AM_TOKEN"]),),
                target=TargetConfig(
                    base_url="https://api.opsgenie.com",
                    region="us",
                    api_key=Secret(ENV["OPSGENIE_API_KEY"]),
                    default_team="platform-oncall",
                    default_priority="P3",
                    default_source="alertbridge",
                    scope_aliases=True,
                ),
                forward_unknown=False,
                enabled=True,
                allow_unauthenticated=False,
            ),
        ),
        source="conf/alertbridge.toml",
        base_dir=Path("/etc/alertbridge"),
    )
    assert plain(config) == plain(expected)
    assert isinstance(config.delivery.max_age_seconds, float)


def test_empty_file_gives_every_default() -> None:
    config = parse_config("", {})
    assert config == Config(
        server=ServerConfig(),
        database=DatabaseConfig(),
        delivery=DeliveryConfig(),
        rendering=RenderingConfig(),
        integrations=(),
        source="alertbridge.toml",
        base_dir=Path("."),
    )
    assert config.server == ServerConfig(host="127.0.0.1", port=8080, max_body_bytes=1_048_576, max_json_depth=64)
    assert config.database == DatabaseConfig(url=None, data_dir=Path(".alertbridge"))
    assert config.delivery == DeliveryConfig(
        max_in_flight=64,
        timeout_seconds=10.0,
        max_age_seconds=86400.0,
        backoff_base_seconds=1.0,
        backoff_max_seconds=300.0,
        config_error_retry_seconds=60.0,
        config_error_max_age_seconds=604800.0,
        confirm_creates=True,
        poll_interval_seconds=1.0,
        lease_seconds=60.0,
        shutdown_grace_seconds=10.0,
    )
    assert config.rendering == RenderingConfig(timeout_seconds=2.0, max_output_bytes=4_194_304, max_events=1000)


def test_integration_and_target_defaults() -> None:
    integration = parse_config(minimal(), {}).integrations[0]
    assert (integration.forward_unknown, integration.enabled, integration.allow_unauthenticated) == (False, True, False)
    target = integration.target
    assert (target.default_team, target.default_priority, target.default_source, target.scope_aliases) == (
        None,
        None,
        None,
        True,
    )


@pytest.mark.parametrize(
    ("region", "base_url"),
    [
        ("us", "https://api.opsgenie.com"),
        ("eu", "https://api.eu.opsgenie.com"),
        ("jsm", "https://api.atlassian.com/jsm/ops/integration"),
    ],
)
def test_region_sets_base_url(region: str, base_url: str) -> None:
    target = parse_config(minimal(f'region = "{region}"\napi_key = "k"'), {}).integrations[0].target
    assert (target.region, target.base_url) == (region, base_url)
    assert REGION_BASE_URLS[region] == base_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8900", "http://127.0.0.1:8900"),
        ("http://127.0.0.1:8900/", "http://127.0.0.1:8900"),
        ("https://proxy.example.com/opsgenie/", "https://proxy.example.com/opsgenie"),
    ],
)
def test_base_url_is_kept_without_trailing_slash(given: str, expected: str) -> None:
    target = parse_config(minimal(f'base_url = "{given}"\napi_key = "k"'), {}).integrations[0].target
    assert (target.region, target.base_url) == (None, expected)


UNIT = "[[integrations]]\nname = 'am'\ntemplate = 't'\ntokens = ['token-123456']\n[integrations.target]\nregion = 'us'\napi_key = 'k'\n"

ERRORS = [
    # (id, toml, env, expected message after "alertbridge.toml: ")
    ("unknown key + suggestion", "[server]\nprot = 1", {}, "server.prot: unknown key (did you mean 'port'?)"),
    ("unknown top-level key", "[sever]\nport = 1", {}, "sever: unknown key (did you mean 'server'?)"),
    ("key in the wrong table", "port = 1", {}, "port: unknown key (did you mean 'server.port'?"),
    ("unknown key, no suggestion", "[delivery]\nzzz = 1", {}, "delivery.zzz: unknown key"),
    (
        "unknown target key",
        minimal('region = "us"\napi_key = "k"\ndefault_tema = "x"'),
        {},
        "integrations[0].target.default_tema: unknown key (did you mean 'default_team'?)",
    ),
    ("section not a table", "server = 1", {}, "server: must be a table (got integer)"),
    ("string for int", '[server]\nport = "8080"', {}, "server.port: must be an integer (got string)"),
    ("bool for int", "[server]\nport = true", {}, "server.port: must be an integer (got boolean)"),
    ("float for int", "[server]\nport = 80.0", {}, "server.port: must be an integer (got float)"),
    ("port too big", "[server]\nport = 70000", {}, "server.port: must be between 1 and 65535 (got 70000)"),
    ("port zero", "[server]\nport = 0", {}, "server.port: must be between 1 and 65535 (got 0)"),
    ("negative size", "[server]\nmax_body_bytes = -1", {}, "server.max_body_bytes: must be >= 1 (got -1)"),
    (
        "bool for float",
        "[delivery]\ntimeout_seconds = true",
        {},
        "delivery.timeout_seconds: must be a number (got boolean)",
    ),
    (
        "zero timeout",
        "[delivery]\ntimeout_seconds = 0",
        {},
        "delivery.timeout_seconds: must be a finite number > 0 (got 0)",
    ),
    (
        "inf",
        "[rendering]\ntimeout_seconds = inf",
        {},
        "rendering.timeout_seconds: must be a finite number > 0 (got inf)",
    ),
    (
        "negative grace",
        "[delivery]\nshutdown_grace_seconds = -1",
        {},
        "delivery.shutdown_grace_seconds: must be a finite number >= 0",
    ),
    (
        "string for bool",
        '[delivery]\nconfirm_creates = "yes"',
        {},
        "delivery.confirm_creates: must be true or false (got string)",
    ),
    ("int for bool", minimal(enabled="1"), {}, "integrations[0].enabled: must be true or false (got integer)"),
    (
        "backoff max < base",
        "[delivery]\nbackoff_base_seconds = 10\nbackoff_max_seconds = 5",
        {},
        "delivery.backoff_max_seconds: must be >= delivery.backoff_base_seconds (10.0)",
    ),
    ("empty host", '[server]\nhost = ""', {}, "server.host: must not be empty"),
    ("integrations not an array", "[integrations]\nname = 'x'", {}, "integrations: must be an array of tables"),
    (
        "bad region",
        UNIT + UNIT.replace("'am'", "'b'").replace("'us'", "'mars'"),
        {},
        "integrations[1].target.region: must be one of 'us', 'eu', 'jsm' (got 'mars')",
    ),
    (
        "both region and base_url",
        minimal('region = "us"\nbase_url = "http://x"\napi_key = "k"'),
        {},
        "integrations[0].target: set either 'region' or 'base_url', not both",
    ),
    ("neither region nor base_url", minimal('api_key = "k"'), {}, "integrations[0].target: one of 'region'"),
    (
        "bad base_url scheme",
        minimal('base_url = "ftp://x"\napi_key = "k"'),
        {},
        "integrations[0].target.base_url: must be an http:// or https:// URL (got 'ftp://x')",
    ),
    (
        "base_url without host",
        minimal('base_url = "http://"\napi_key = "k"'),
        {},
        "integrations[0].target.base_url: must be an http:// or https:// URL",
    ),
    (
        "base_url with credentials",
        minimal('base_url = "https://u:p@x"\napi_key = "k"'),
        {},
        "integrations[0].target.base_url: must not contain credentials",
    ),
    (
        "base_url with query",
        minimal('base_url = "https://x/?a=1"\napi_key = "k"'),
        {},
        "integrations[0].target.base_url: must not contain a query string",
    ),
    ("missing api_key", minimal('region = "us"'), {}, "integrations[0].target.api_key: required key is missing"),
    ("empty api_key", minimal('region = "us"\napi_key = ""'), {}, "integrations[0].target.api_key: must not be empty"),
    (
        "api_key with space",
        minimal('region = "us"\napi_key = "a b"'),
        {},
        "integrations[0].target.api_key: must be printable ASCII without spaces",
    ),
    (
        "bad priority",
        minimal('region = "us"\napi_key = "k"\ndefault_priority = "P6"'),
        {},
        "integrations[0].target.default_priority: must be one of 'P1', 'P2', 'P3', 'P4', 'P5' (got 'P6')",
    ),
    (
        "long source",
        minimal('region = "us"\napi_key = "k"\ndefault_source = "' + "s" * 101 + '"'),
        {},
        "integrations[0].target.default_source: must be at most 100 characters (got 101)",
    ),
    (
        "scope_aliases not bool",
        minimal('region = "us"\napi_key = "k"\nscope_aliases = "no"'),
        {},
        "integrations[0].target.scope_aliases: must be true or false (got string)",
    ),
    (
        "missing target",
        "[[integrations]]\nname = 'am'\ntemplate = 't'\ntokens = ['token-123456']",
        {},
        "integrations[0].target: required key is missing",
    ),
    ("missing name", minimal().replace('name = "am"', ""), {}, "integrations[0].name: required key is missing"),
    (
        "bad name",
        minimal().replace('name = "am"', 'name = "Alert Manager"'),
        {},
        "integrations[0].name: must match ^[a-z0-9][a-z0-9_-]{0,62}$",
    ),
    ("name too long", minimal().replace('name = "am"', f'name = "{"a" * 64}"'), {}, "integrations[0].name: must match"),
    (
        "duplicate name",
        minimal() + minimal(),
        {},
        "integrations[1].name: duplicate integration name 'am' (also integrations[0].name)",
    ),
    (
        "missing template",
        minimal().replace('template = "alertmanager"', ""),
        {},
        "integrations[0].template: required key is missing",
    ),
    (
        "empty template",
        minimal().replace('template = "alertmanager"', 'template = ""'),
        {},
        "integrations[0].template: must not be empty",
    ),
    (
        "missing tokens",
        minimal().replace('tokens = ["token-123456"]', ""),
        {},
        "integrations[0].tokens: required key is missing",
    ),
    (
        "empty tokens",
        minimal().replace('tokens = ["token-123456"]', "tokens = []"),
        {},
        "integrations[0].tokens: must not be empty (set allow_unauthenticated = true",
    ),
    (
        "tokens not a list",
        minimal().replace('tokens = ["token-123456"]', 'tokens = "token-123456"'),
        {},
        "integrations[0].tokens: must be an array of strings (got string)",
    ),
    (
        "short token",
        minimal().replace('"token-123456"', '"token-123456", "short"'),
        {},
        "integrations[0].tokens[1]: must be at least 8 characters (got 5)",
    ),
    (
        "non-string token",
        minimal().replace('"token-123456"', "12345678"),
        {},
        "integrations[0].tokens[0]: must be a string (got integer)",
    ),
    (
        "duplicate token",
        minimal().replace('"token-123456"', '"token-123456", "token-123456"'),
        {},
        "integrations[0].tokens[1]: duplicate token (same as integrations[0].tokens[0])",
    ),
    (
        "tokens with allow_unauthenticated",
        minimal(allow_unauthenticated="true"),
        {},
        "integrations[0].allow_unauthenticated: must be false when tokens are set",
    ),
    (
        "unset env var",
        minimal().replace('"token-123456"', '"${AM_TOKEN}"'),
        {},
        "integrations[0].tokens[0]: environment variable AM_TOKEN is not set",
    ),
    (
        "empty env var",
        minimal().replace('"token-123456"', '"${AM_TOKEN}"'),
        {"AM_TOKEN": ""},
        "integrations[0].tokens[0]: must not be empty after expanding environment variables",
    ),
    ("malformed ${", '[server]\nhost = "${1BAD}"', {}, "server.host: malformed '${'"),
    ("unterminated ${", '[server]\nhost = "${HOST"', {"HOST": "x"}, "server.host: malformed '${'"),
    (
        "unset var in database url",
        '[database]\nurl = "${DATABASE_URL}"',
        {},
        "database.url: environment variable DATABASE_URL is not set",
    ),
    ("TOML syntax error", "[server]\nport = = 1\n", {}, "invalid TOML: Invalid value (at line 2, column 8)"),
    ("datetime value", "[server]\nhost = 1979-05-27", {}, "server.host: must be a string (got date)"),
]


def signed(signature: str, *, tokens: str | None = None, extra: str = "") -> str:
    """One integration with an [integrations.signature] table and, unless given, no tokens."""
    token_line = f"tokens = {tokens}" if tokens is not None else ""
    return f"""
[[integrations]]
name = "s"
template = "sentry"
{token_line}
{extra}
[integrations.signature]
{signature}
[integrations.target]
region = "us"
api_key = "key-123"
"""


HMAC = 'kind = "hmac-sha256"\nsecret = "hmac-secret-1"\nheader = "X-Sig"'
SNS = 'kind = "sns"'

ERRORS += [
    # token_header
    (
        "header name with a space",
        minimal(token_header='"X Token"'),
        {},
        "integrations[0].token_header: must be an HTTP header name: 1 to 100 letters, digits and "
        "!#$%&'*+-.^_`|~ (got 'X Token')",
    ),
    ("header name with a colon", minimal(token_header='"X-Token:"'), {}, "integrations[0].token_header: must be an"),
    ("header name not ASCII", minimal(token_header='"X-Tökén"'), {}, "integrations[0].token_header: must be an"),
    ("header name too long", minimal(token_header=f'"{"x" * 101}"'), {}, "integrations[0].token_header: must be an"),
    ("empty header name", minimal(token_header='""'), {}, "integrations[0].token_header: must not be empty"),
    ("header name not a string", minimal(token_header="1"), {}, "integrations[0].token_header: must be a string"),
    # priorities
    (
        "bad priority value names the key",
        minimal() + '[integrations.priorities]\nsev0 = "P0"',
        {},
        "integrations[0].priorities.sev0: must be one of 'P1', 'P2', 'P3', 'P4', 'P5', in either case (got 'P0')",
    ),
    (
        "priority value from env",
        minimal() + '[integrations.priorities]\nsev0 = "${P}"',
        {"P": "urgent"},
        "integrations[0].priorities.sev0: must be one of 'P1', 'P2', 'P3', 'P4', 'P5', in either case (got 'urgent')",
    ),
    (
        "priority value not a string",
        minimal() + "[integrations.priorities]\nsev0 = 1",
        {},
        "integrations[0].priorities.sev0: must be a string (got integer)",
    ),
    (
        "priority value a table",
        minimal() + '[integrations.priorities.sev0]\nx = "P1"',
        {},
        "integrations[0].priorities.sev0: must be a string (got table)",
    ),
    ("priorities not a table", minimal(priorities='"P1"'), {}, "integrations[0].priorities: must be a table"),
    (
        "priority key empty",
        minimal() + '[integrations.priorities]\n" " = "P1"',
        {},
        'integrations[0].priorities." ": key must be 1 to 100 characters (got 0)',
    ),
    (
        "priority key too long",
        minimal() + f'[integrations.priorities]\n{"k" * 101} = "P1"',
        {},
        f"integrations[0].priorities.{'k' * 101}: key must be 1 to 100 characters (got 101)",
    ),
    (
        "priority keys equal once lower-cased",
        minimal() + '[integrations.priorities]\nSev0 = "P1"\n" sev0" = "P2"',
        {},
        'integrations[0].priorities." sev0": duplicate key (same as integrations[0].priorities.Sev0 once lower-cased)',
    ),
    # signature: kind
    ("signature kind missing", signed('secret = "hmac-secret-1"'), {}, "integrations[0].signature.kind: required key"),
    (
        "signature kind unknown",
        signed('kind = "github"'),
        {},
        "integrations[0].signature.kind: must be one of 'hmac-sha256', 'sentry', 'sns' (got 'github')",
    ),
    (
        "signature unknown key",
        signed(HMAC + '\nheadr = "x"'),
        {},
        "integrations[0].signature.headr: unknown key (did you mean 'header'?)",
    ),
    (
        "signature not a table",
        minimal(signature='"sns"'),
        {},
        "integrations[0].signature: must be a table (got string)",
    ),
    # signature: hmac-sha256
    (
        "hmac without secret",
        signed('kind = "hmac-sha256"\nheader = "X-Sig"'),
        {},
        "integrations[0].signature.secret: required key is missing (kind = 'hmac-sha256' needs it)",
    ),
    (
        "hmac without header",
        signed('kind = "hmac-sha256"\nsecret = "hmac-secret-1"'),
        {},
        "integrations[0].signature.header: required key is missing (kind = 'hmac-sha256' needs it)",
    ),
    (
        "hmac short secret",
        signed('kind = "hmac-sha256"\nsecret = "short"\nheader = "X-Sig"'),
        {},
        "integrations[0].signature.secret: must be at least 8 characters (got 5)",
    ),
    (
        "hmac bad header",
        signed(HMAC.replace("X-Sig", "X Sig")),
        {},
        "integrations[0].signature.header: must be an HTTP",
    ),
    (
        "hmac bad timestamp header",
        signed(HMAC + '\ntimestamp_header = "(ts)"'),
        {},
        "integrations[0].signature.timestamp_header: must be an HTTP header name",
    ),
    (
        "hmac skew without timestamp header",
        signed(HMAC + "\nmax_skew_seconds = 60"),
        {},
        "integrations[0].signature.max_skew_seconds: only applies with timestamp_header",
    ),
    (
        "hmac zero skew",
        signed(HMAC + '\ntimestamp_header = "X-Ts"\nmax_skew_seconds = 0'),
        {},
        "integrations[0].signature.max_skew_seconds: must be a finite number > 0 (got 0)",
    ),
    (
        "hmac with topic_arns",
        signed(HMAC + "\ntopic_arns = []"),
        {},
        "integrations[0].signature.topic_arns: not allowed with kind = 'hmac-sha256'",
    ),
    # signature: sentry
    (
        "sentry without secret",
        signed('kind = "sentry"'),
        {},
        "integrations[0].signature.secret: required key is missing (kind = 'sentry' needs it)",
    ),
    (
        "sentry secret env unset",
        signed('kind = "sentry"\nsecret = "${SENTRY_SECRET}"'),
        {},
        "integrations[0].signature.secret: environment variable SENTRY_SECRET is not set",
    ),
    (
        "sentry with signing_cert_file",
        signed('kind = "sentry"\nsecret = "sentry-secret-1"\nsigning_cert_file = "missing.pem"'),
        {},
        "integrations[0].signature.signing_cert_file: not allowed with kind = 'sentry'",
    ),
    # signature: sns
    (
        "sns with secret",
        signed(SNS + '\nsecret = "sns-secret-1"'),
        {},
        "integrations[0].signature.secret: not allowed with kind = 'sns'",
    ),
    ("sns with header", signed(SNS + '\nheader = "X-Sig"'), {}, "integrations[0].signature.header: not allowed with"),
    (
        "sns with timestamp_header",
        signed(SNS + '\ntimestamp_header = "X-Ts"'),
        {},
        "integrations[0].signature.timestamp_header: not allowed with kind = 'sns'",
    ),
    (
        "sns with max_skew_seconds",
        signed(SNS + "\nmax_skew_seconds = 60"),
        {},
        "integrations[0].signature.max_skew_seconds: not allowed with kind = 'sns'",
    ),
    (
        "sns bad topic ARN",
        signed(
            SNS + '\ntopic_arns = ["arn:aws:sns:eu-west-1:123456789012:ok", "arn:aws:sqs:eu-west-1:123456789012:q"]'
        ),
        {},
        "integrations[0].signature.topic_arns[1]: must be an SNS topic ARN like arn:aws:sns:<region>:<account>:<topic> "
        "(got 'arn:aws:sqs:eu-west-1:123456789012:q')",
    ),
    (
        "sns ARN with short account",
        signed(SNS + '\ntopic_arns = ["arn:aws:sns:eu-west-1:12345:t"]'),
        {},
        "integrations[0].signature.topic_arns[0]: must be an SNS topic ARN",
    ),
    (
        "sns ARN with a bad topic name",
        signed(SNS + '\ntopic_arns = ["arn:aws:sns:eu-west-1:123456789012:a/b"]'),
        {},
        "integrations[0].signature.topic_arns[0]: must be an SNS topic ARN",
    ),
    (
        "sns duplicate ARN",
        signed(SNS + '\ntopic_arns = ["arn:aws:sns:eu-west-1:123456789012:t", "arn:aws:sns:eu-west-1:123456789012:t"]'),
        {},
        "integrations[0].signature.topic_arns[1]: duplicate topic ARN (same as integrations[0].signature.topic_arns[0])",
    ),
    (
        "sns topic_arns not an array",
        signed(SNS + '\ntopic_arns = "arn:aws:sns:eu-west-1:123456789012:t"'),
        {},
        "integrations[0].signature.topic_arns: must be an array of strings (got string)",
    ),
    (
        "sns signing_cert_file missing",
        signed(SNS + '\nsigning_cert_file = "/nonexistent/sns.pem"'),
        {},
        "integrations[0].signature.signing_cert_file: file not found: /nonexistent/sns.pem",
    ),
    (
        "sns confirm_subscriptions not bool",
        signed(SNS + '\nconfirm_subscriptions = "yes"'),
        {},
        "integrations[0].signature.confirm_subscriptions: must be true or false (got string)",
    ),
    # tokens and signature
    (
        "tokens omitted without signature",
        minimal().replace('tokens = ["token-123456"]', ""),
        {},
        "integrations[0].tokens: required key is missing (a list of at least one token of 8+ characters)",
    ),
    (
        "empty tokens without signature",
        minimal().replace('tokens = ["token-123456"]', "tokens = []"),
        {},
        "integrations[0].tokens: must not be empty (set allow_unauthenticated = true to accept any request, "
        "or add an [integrations.signature])",
    ),
    (
        "signature with allow_unauthenticated",
        signed(SNS, extra="allow_unauthenticated = true"),
        {},
        "integrations[0].allow_unauthenticated: must be false when an [integrations.signature] is set",
    ),
    (
        "signature with a short token",
        signed(SNS, tokens='["short"]'),
        {},
        "integrations[0].tokens[0]: must be at least 8 characters (got 5)",
    ),
]


@pytest.mark.parametrize(("text", "env", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_name_the_key(text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env)
    assert str(caught.value).startswith("alertbridge.toml: " + message), str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_error_names_the_source_file() -> None:
    with pytest.raises(ConfigError, match=r"^/etc/ab\.toml: server\.port: "):
        parse_config("[server]\nport = 'x'", {}, source="/etc/ab.toml")


def test_dollar_dollar_brace_is_a_literal() -> None:
    text = minimal('base_url = "http://x"\napi_key = "k$${NOT_A_VAR}-${KEY}"')
    target = parse_config(text, {"KEY": "${SECRET}"}).integrations[0].target
    assert str(target.api_key) == "k${NOT_A_VAR}-${SECRET}"  # expanded values are not expanded again


def test_env_expansion_in_every_string() -> None:
    text = """
[server]
host = "${HOST}"
[database]
data_dir = "${DIR}/data"
[[integrations]]
name = "${NAME}"
template = "${TPL}"
tokens = ["${T1}", "literal-token-$5"]
[integrations.target]
base_url = "${OG}/"
api_key = "${KEY}"
default_team = "${TEAM}"
"""
    env = {
        "HOST": "0.0.0.0",
        "DIR": "/var/lib",
        "NAME": "am",
        "TPL": "t.j2",
        "T1": "token-one-1",
        "OG": "http://og:1",
        "KEY": "k",
        "TEAM": "ops",
    }
    config = parse_config(text, env)
    integration = config.integrations[0]
    assert config.server.host == "0.0.0.0"
    assert config.database.data_dir == Path("/var/lib/data")
    assert (integration.name, integration.template) == ("am", "t.j2")
    assert [str(t) for t in integration.tokens] == ["token-one-1", "literal-token-$5"]
    assert (integration.target.base_url, str(integration.target.api_key), integration.target.default_team) == (
        "http://og:1",
        "k",
        "ops",
    )


def test_allow_unauthenticated_with_empty_or_missing_tokens() -> None:
    for tokens in ("tokens = []", ""):
        text = minimal(allow_unauthenticated="true").replace('tokens = ["token-123456"]', tokens)
        integration = parse_config(text, {}).integrations[0]
        assert integration.allow_unauthenticated is True
        assert integration.tokens == ()


def test_new_integration_keys_default_to_off() -> None:
    integration = parse_config(minimal(), {}).integrations[0]
    assert (integration.token_header, integration.signature) == (None, None)
    assert integration.priorities == {} and isinstance(integration.priorities, MappingProxyType)
    assert IntegrationConfig("a", "t", (), integration.target).priorities == {}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ('"X-Bridge-Token"', "x-bridge-token"),
        ('"DD-API-KEY"', "dd-api-key"),
        ('"x!#$%&\'*+.^_`|~9"', "x!#$%&'*+.^_`|~9"),
        (f'"{"H" * 100}"', "h" * 100),
        ('"${HEADER}"', "x-from-env"),
    ],
)
def test_token_header_is_lower_cased(given: str, expected: str) -> None:
    assert parse_config(minimal(token_header=given), {"HEADER": "X-From-Env"}).integrations[0].token_header == expected


def test_priorities_are_a_read_only_map_of_normalised_keys() -> None:
    text = minimal() + (
        '[integrations.priorities]\nSEV0 = "p1"\n" sev1 " = " P2 "\n"needs attention" = "P4"\nlow = "${LOW}"\n'
        '"Sévérité 5" = "p5"\n'
    )
    priorities = parse_config(text, {"LOW": "p5"}).integrations[0].priorities
    assert isinstance(priorities, MappingProxyType)
    assert dict(priorities) == {"sev0": "P1", "sev1": "P2", "needs attention": "P4", "low": "P5", "sévérité 5": "P5"}
    with pytest.raises(TypeError):
        priorities["sev0"] = "P5"  # type: ignore[index]
    # written as an inline table, too
    inline = parse_config(minimal(priorities='{ sev0 = "P1" }'), {}).integrations[0].priorities
    assert dict(inline) == {"sev0": "P1"}


def test_signature_hmac_sha256() -> None:
    minimal_hmac = parse_config(signed(HMAC), {}).integrations[0]
    assert plain(minimal_hmac.signature) == plain(
        SignatureConfig(kind="hmac-sha256", secret=Secret("hmac-secret-1"), header="x-sig")
    )
    assert minimal_hmac.signature == SignatureConfig(
        kind="hmac-sha256",
        secret=minimal_hmac.signature.secret,
        header="x-sig",
        timestamp_header=None,
        max_skew_seconds=300.0,
        topic_arns=(),
        signing_cert_file=None,
        confirm_subscriptions=True,
    )
    text = signed(
        'kind = "hmac-sha256"\nsecret = "${GRAFANA_HMAC}"\nheader = "X-Grafana-Alerting-Signature"\n'
        'timestamp_header = "X-Grafana-Alerting-Signature-Timestamp"\nmax_skew_seconds = 60',
        tokens='["token-123456"]',
    )
    integration = parse_config(text, {"GRAFANA_HMAC": "grafana-hmac-secret"}).integrations[0]
    assert plain(integration.signature) == plain(
        SignatureConfig(
            kind="hmac-sha256",
            secret=Secret("grafana-hmac-secret"),
            header="x-grafana-alerting-signature",
            timestamp_header="x-grafana-alerting-signature-timestamp",
            max_skew_seconds=60.0,
        )
    )
    assert [str(t) for t in integration.tokens] == ["token-123456"]  # tokens and a signature together
    assert isinstance(integration.signature.max_skew_seconds, float)


def test_signature_sentry_has_default_headers() -> None:
    integration = parse_config(signed('kind = "sentry"\nsecret = "${S}"'), {"S": "sentry-client-secret"}).integrations[
        0
    ]
    assert integration.tokens == ()
    assert plain(integration.signature) == plain(
        SignatureConfig(
            kind="sentry",
            secret=Secret("sentry-client-secret"),
            header="sentry-hook-signature",
            timestamp_header="sentry-hook-timestamp",
            max_skew_seconds=300.0,
        )
    )
    custom = signed('kind = "sentry"\nsecret = "sentry-secret"\nheader = "X-Sig"\ntimestamp_header = "X-Ts"')
    assert plain(parse_config(custom, {}).integrations[0].signature) == plain(
        SignatureConfig(kind="sentry", secret=Secret("sentry-secret"), header="x-sig", timestamp_header="x-ts")
    )
    skew = signed('kind = "sentry"\nsecret = "sentry-secret"\nmax_skew_seconds = 30')
    signature = parse_config(skew, {}).integrations[0].signature
    assert signature is not None and signature.max_skew_seconds == 30.0


def test_signature_sns(tmp_path: Path) -> None:
    assert parse_config(signed(SNS), {}).integrations[0].signature == SignatureConfig(kind="sns")
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "sns.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    text = signed(
        SNS + '\ntopic_arns = ["arn:aws:sns:eu-west-1:123456789012:alarms", "arn:aws-us-gov:sns:us-gov-west-1:'
        '210987654321:Gov_Topic.fifo", "${ARN}"]\nsigning_cert_file = "certs/sns.pem"\nconfirm_subscriptions = false'
    )
    env = {"ARN": "arn:aws-cn:sns:cn-north-1:000000000000:cn-alarms"}
    integration = parse_config(text, env, base_dir=tmp_path).integrations[0]
    assert (integration.tokens, integration.allow_unauthenticated) == ((), False)
    assert integration.signature == SignatureConfig(
        kind="sns",
        secret=None,
        header=None,
        timestamp_header=None,
        max_skew_seconds=300.0,
        topic_arns=(
            "arn:aws:sns:eu-west-1:123456789012:alarms",
            "arn:aws-us-gov:sns:us-gov-west-1:210987654321:Gov_Topic.fifo",
            "arn:aws-cn:sns:cn-north-1:000000000000:cn-alarms",
        ),
        signing_cert_file=tmp_path / "certs" / "sns.pem",
        confirm_subscriptions=False,
    )
    absolute = signed(SNS + f'\nsigning_cert_file = "{tmp_path}/certs/sns.pem"')
    signature = parse_config(absolute, {}, base_dir=Path("/elsewhere")).integrations[0].signature
    assert signature is not None and signature.signing_cert_file == tmp_path / "certs" / "sns.pem"
    with pytest.raises(ConfigError, match=r"signing_cert_file: file not found: .*certs$"):
        parse_config(signed(SNS + '\nsigning_cert_file = "certs"'), {}, base_dir=tmp_path)  # a folder


@pytest.mark.parametrize("tokens", [None, "[]"])
def test_tokens_are_optional_with_a_signature(tokens: str | None) -> None:
    integration = parse_config(signed(SNS, tokens=tokens), {}).integrations[0]
    assert (integration.tokens, integration.allow_unauthenticated) == ((), False)
    assert integration.signature == SignatureConfig(kind="sns")


def test_signature_secret_is_hidden() -> None:
    text = signed('kind = "sentry"\nsecret = "${S}"') + signed(HMAC).replace('name = "s"', 'name = "h"')
    config = parse_config(text, {"S": "sentry-very-secret"})
    for shown in (repr(config), str(config), repr(config.integrations[0].signature)):
        assert "sentry-very-secret" not in shown and "hmac-secret-1" not in shown
    assert "Secret('**********')" in repr(config.integrations[0].signature)
    assert [str(i.signature.secret) for i in config.integrations if i.signature] == [
        "sentry-very-secret",
        "hmac-secret-1",
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config(signed('kind = "sentry"\nsecret = "${S}"'), {"S": "not secret"})
    assert "not secret" not in str(caught.value)


def test_two_tokens_for_rotation_and_zero_integrations() -> None:
    text = minimal().replace('"token-123456"', '"token-old-123", "token-new-456"')
    assert [str(t) for t in parse_config(text, {}).integrations[0].tokens] == ["token-old-123", "token-new-456"]
    assert parse_config("integrations = []", {}).integrations == ()


def test_data_dir_resolution(tmp_path: Path) -> None:
    base = tmp_path / "conf"
    assert parse_config('[database]\ndata_dir = "pg"', {}, base_dir=base).database.data_dir == base / "pg"
    assert (
        parse_config(f'[database]\ndata_dir = "{tmp_path}/abs"', {}, base_dir=base).database.data_dir
        == tmp_path / "abs"
    )
    assert parse_config("", {}, base_dir=base).database.data_dir == base / ".alertbridge"
    # The environment wins over the file; a relative path there is relative to the working directory.
    env = {"ALERTBRIDGE_DATA_DIR": "/srv/ab"}
    assert parse_config('[database]\ndata_dir = "pg"', env, base_dir=base).database.data_dir == Path("/srv/ab")
    env = {"ALERTBRIDGE_DATA_DIR": "old", "ALERTBRIDGE_DATABASE_DATA_DIR": "new"}  # the older name loses
    assert parse_config("", env, base_dir=base).database.data_dir == Path("new")


def test_load_config_reads_the_file_relative_to_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "alertbridge.toml"
    path.write_text(minimal().replace('"alertmanager"', '"tpl/am.j2"'), encoding="utf-8")
    config = load_config(path, {})
    assert config.source == str(path)
    assert config.base_dir == tmp_path
    assert config.database.data_dir == tmp_path / ".alertbridge"
    assert config.integrations[0].template == "tpl/am.j2"  # resolved (and checked) by the caller against base_dir


def test_load_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml", {})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path, {})
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"host = '\xff'")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad, {})
    broken = tmp_path / "broken.toml"
    broken.write_text("[server]\n\nport = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(broken))}: invalid TOML: .*line 3"):
        load_config(broken, {})


def test_secrets_never_appear_in_repr_or_errors() -> None:
    config = parse_config(EXAMPLE, ENV)
    for text in (repr(config), str(config), repr(config.integrations), str(config.database)):
        for secret in ENV.values():
            assert secret not in text
            assert "db-password" not in text
    assert str(config.integrations[0].tokens[0]) == ENV["AM_TOKEN"]
    assert str(config.integrations[0].target.api_key) == ENV["OPSGENIE_API_KEY"]
    assert str(config.database.url) == ENV["DATABASE_URL"]
    with pytest.raises(ConfigError) as caught:
        parse_config(minimal().replace('"token-123456"', '"token-123456", "${T}"'), {"T": "s3cr"})
    assert "s3cr" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_config(minimal('region = "us"\napi_key = "${K}"'), {"K": "sec ret"})
    assert "sec ret" not in str(caught.value)


def test_demo_config() -> None:
    config = demo_config("http://127.0.0.1:8900/", data_dir=Path("/tmp/demo"))
    assert config.source == "<demo>"
    assert config.database == DatabaseConfig(url=None, data_dir=Path("/tmp/demo"))
    assert (config.server, config.delivery, config.rendering) == (ServerConfig(), DeliveryConfig(), RenderingConfig())
    names = ["alertmanager", "generic", "grafana", "genesys", "azure_monitor", "datadog"]
    assert [(i.name, i.template, [str(t) for t in i.tokens], i.token_header) for i in config.integrations] == [
        (name, name, ["demo-token"], "x-bridge-token") for name in names
    ]
    for integration in config.integrations:
        target = integration.target
        assert (target.base_url, target.region, str(target.api_key)) == ("http://127.0.0.1:8900", None, "demo-key")
        assert (target.scope_aliases, target.default_source) == (True, "alertbridge")
        assert (integration.enabled, integration.forward_unknown, integration.allow_unauthenticated) == (
            True,
            False,
            False,
        )
    assert "demo-key" not in repr(config) and "demo-token" not in repr(config)
    assert demo_config("http://x").database.data_dir == Path(".alertbridge")


# ---- docs and example stay honest ---------------------------------------------------------


def test_schema_matches_the_dataclasses() -> None:
    """The key table the parser uses is exactly the dataclass fields (so docs derived from it are complete)."""
    keys = set(_key_paths())

    def names(cls: type, prefix: str, skip: tuple[str, ...] = ()) -> set[str]:
        return {f"{prefix}.{f.name}" for f in dataclasses.fields(cls) if f.name not in skip}

    expected = (
        names(ServerConfig, "server")
        | names(DatabaseConfig, "database")
        | names(DeliveryConfig, "delivery")
        | names(RenderingConfig, "rendering")
        | names(WorkerConfig, "worker")
        | names(IntegrationConfig, "integrations", skip=("target", "signature", "policies"))
        | names(PoliciesConfig, "integrations.policies")
        | names(SilenceConfig, "silences")
        | names(HeartbeatConfig, "heartbeat")
        | names(SweeperConfig, "sweeper")
        | names(TargetConfig, "integrations.target")
        | names(SignatureConfig, "integrations.signature")
        | names(CallbacksConfig, "callbacks")
        | names(RetentionConfig, "retention")
    )
    assert keys == expected
    assert {f.name for f in dataclasses.fields(Config)} - {"source", "base_dir"} == {k.split(".")[0] for k in keys}


def test_every_key_is_documented() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^### `?([^\s`]+)`?\s*$", docs, flags=re.MULTILINE))
    keys = set(_key_paths())
    assert keys - headings == set(), "undocumented keys"
    sections = {k.split(".")[0] for k in keys}
    documented_keys = {h for h in headings if h.split(".")[0] in sections and "." in h}
    assert documented_keys - keys == set(), "documented keys the parser does not accept"
    for variable in (
        "ALERTBRIDGE_CONFIG",
        "ALERTBRIDGE_DATABASE_URL",
        "DATABASE_URL",
        "ALERTBRIDGE_DATA_DIR",
        "ALERTBRIDGE_LOG_LEVEL",
    ):
        assert f"### {variable}" in docs


def test_example_file_parses_and_uses_every_key(tmp_path: Path) -> None:
    """As it is, the example needs only the two variables the README exports; every optional block, once
    uncommented, is valid too."""
    path = ROOT / "alertbridge.example.toml"
    config = load_config(path, {"AM_TOKEN": "am-token-123", "OPSGENIE_API_KEY": "key-1"})
    assert [i.name for i in config.integrations] == ["alertmanager"]
    assert config.database.url is None  # commented out: the environment or the embedded PostgreSQL
    # Uncomment the blocks after the marker ("# " in front of TOML lines, "## " in front of prose).
    head, blocks = path.read_text(encoding="utf-8").split("# More sources: uncomment a block", 1)
    lines = [line[2:] if line.startswith("# ") else "" for line in blocks.splitlines()[1:] if not line.startswith("##")]
    (tmp_path / "sns-signing-cert.pem").write_text("(the example names this file; it must exist)")
    (tmp_path / "all.toml").write_text(head + "\n".join(lines))
    env = {
        "AM_TOKEN": "am-token-123",
        "GRAFANA_TOKEN": "gr-token-123",
        "GRAFANA_HMAC_SECRET": "gr-hmac-secret",
        "OPSGENIE_API_KEY": "key-1",
        "OPSGENIE_CALLBACK_TOKEN": "callback-token-1",
        "JSM_API_KEY": "key-2",
        "SENTRY_CLIENT_SECRET": "sentry-secret-123",
        "DATADOG_TOKEN": "dd-token-123",
    }
    config = load_config(tmp_path / "all.toml", env)
    by_name = {i.name: i for i in config.integrations}
    assert list(by_name) == ["alertmanager", "grafana", "sentry", "sns_cloudwatch", "datadog", "generic"]
    assert by_name["grafana"].template == "grafana" and by_name["grafana"].signature is not None
    assert by_name["sentry"].signature is not None and by_name["sentry"].tokens == ()
    assert by_name["sns_cloudwatch"].signature is not None and by_name["sns_cloudwatch"].signature.kind == "sns"
    assert by_name["datadog"].token_header == "x-bridge-token"
    text = path.read_text(encoding="utf-8")
    for key in _key_paths():
        name = re.escape(key.rsplit(".", 1)[-1])
        # `key = ...`, or a table header for a free-form table such as [integrations.priorities]
        pattern = rf"^#?\s*({name}\s*=|\[{re.escape(key)}\])"
        assert re.search(pattern, text, flags=re.MULTILINE), key
