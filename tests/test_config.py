import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import Secret

from app.config import (
    REGION_BASE_URLS,
    Config,
    ConfigError,
    DatabaseConfig,
    DeliveryConfig,
    IntegrationConfig,
    RenderingConfig,
    ServerConfig,
    TargetConfig,
    _key_paths,
    demo_config,
    load_config,
    parse_config,
)

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
    )
    assert config.rendering == RenderingConfig(timeout_seconds=2.0, max_output_bytes=1_048_576, max_events=1000)


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
    # ALERTBRIDGE_DATA_DIR is applied by the caller (it overrides the file), not by the parser.
    assert (
        parse_config("", {"ALERTBRIDGE_DATA_DIR": "/srv/ab"}, base_dir=base).database.data_dir == base / ".alertbridge"
    )


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
    assert [(i.name, i.template, [str(t) for t in i.tokens]) for i in config.integrations] == [
        ("alertmanager", "alertmanager", ["demo-token"]),
        ("generic", "generic", ["demo-token"]),
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
        | names(IntegrationConfig, "integrations", skip=("target",))
        | names(TargetConfig, "integrations.target")
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


def test_example_file_parses_and_uses_every_key() -> None:
    path = ROOT / "alertbridge.example.toml"
    env = {
        "DATABASE_URL": "postgresql://u:p@h/db",
        "AM_TOKEN": "am-token-123",
        "GRAFANA_TOKEN": "gr-token-123",
        "OPSGENIE_API_KEY": "key-1",
        "JSM_API_KEY": "key-2",
    }
    config = load_config(path, env)
    assert len(config.integrations) >= 2
    text = path.read_text(encoding="utf-8")
    for key in _key_paths():
        assert re.search(rf"^#?\s*{re.escape(key.rsplit('.', 1)[-1])}\s*=", text, flags=re.MULTILINE), key
