"""Scalar settings from the environment: ALERTBRIDGE_<SECTION>_<KEY> wins over the file, is read as the key's
type and checked like the file's value; every problem of the file and the environment comes at once."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import Secret

from alertbridge.config import ConfigError, demo_config, parse_config
from alertbridge.config.env import all_variables, variable
from alertbridge.config.model import SCALAR_SECTIONS

ROOT = Path(__file__).resolve().parent.parent
SCALAR_KEYS = [(section, f) for section, cls in SCALAR_SECTIONS.items() for f in dataclasses.fields(cls)]


def other_value(section: str, field: dataclasses.Field[Any]) -> tuple[str, Any]:
    """An environment text for this key, different from its default, and the value it must give."""
    kind = str(field.type)
    default = field.default
    if kind == "bool":
        return ("false" if default else "true"), not default
    if kind == "int":
        return str(default + 1), default + 1
    if kind == "float":
        return f"{default * 2 + 0.5}", default * 2 + 0.5
    if field.name == "url":
        return "postgresql://u:p@db.internal/ab", Secret("postgresql://u:p@db.internal/ab")
    if field.name == "data_dir":
        return "/srv/alertbridge", Path("/srv/alertbridge")
    if (section, field.name) == ("heartbeat", "region"):
        return "eu", "eu"
    if (section, field.name) == ("heartbeat", "base_url"):
        return "https://hb.example", "https://hb.example"
    return "0.0.0.0", "0.0.0.0"


#: What a key needs besides itself to be valid (a heartbeat name needs its API key).
NEEDS = {("heartbeat", "name"): {"ALERTBRIDGE_HEARTBEAT_API_KEY": "hb-key"}}


def plain(value: Any) -> Any:
    return str(value) if isinstance(value, Secret) else value


@pytest.mark.parametrize(("section", "field"), SCALAR_KEYS, ids=[f"{s}.{f.name}" for s, f in SCALAR_KEYS])
def test_every_scalar_key_comes_from_the_environment_and_wins(section: str, field: dataclasses.Field[Any]) -> None:
    text, expected = other_value(section, field)
    name = variable(section, field.name)
    assert name == f"ALERTBRIDGE_{section.upper()}_{field.name.upper()}"
    needs = NEEDS.get((section, field.name), {})
    config = parse_config("", {name: text, **needs})
    assert plain(getattr(getattr(config, section), field.name)) == plain(expected)
    # ...over the file, whose value for that key is then not read at all (not even its ${VAR})
    file_text = f'[{section}]\n{field.name} = "${{UNSET_VARIABLE}}"\n'
    config = parse_config(file_text, {name: text, **needs})
    assert plain(getattr(getattr(config, section), field.name)) == plain(expected)
    # ...and is checked like the file's value (any text is a valid host, URL or folder)
    bad = {"int": "x1", "float": "fast", "bool": "maybe"}.get(str(field.type))
    if bad is not None:
        with pytest.raises(ConfigError, match=re.escape(f"environment: {name} ({section}.{field.name}): must be ")):
            parse_config("", {name: bad})
    # an empty variable counts as unset
    assert parse_config("", {name: " "}) == parse_config("", {})


BAD = [
    ("ALERTBRIDGE_SERVER_PORT", "8o80", "server.port): must be an integer (got '8o80')"),
    ("ALERTBRIDGE_SERVER_PORT", "0", "server.port): must be between 1 and 65535 (got 0)"),
    ("ALERTBRIDGE_SERVER_PORT", "8080.0", "server.port): must be an integer (got '8080.0')"),
    ("ALERTBRIDGE_DELIVERY_MAX_IN_FLIGHT", "0", "delivery.max_in_flight): must be >= 1 (got 0)"),
    ("ALERTBRIDGE_DELIVERY_TIMEOUT_SECONDS", "-1", "delivery.timeout_seconds): must be a finite number > 0"),
    ("ALERTBRIDGE_DELIVERY_TIMEOUT_SECONDS", "inf", "delivery.timeout_seconds): must be a finite number > 0"),
    ("ALERTBRIDGE_DELIVERY_CONFIRM_CREATES", "maybe", "delivery.confirm_creates): must be true or false"),
    ("ALERTBRIDGE_RENDERING_MAX_EVENTS", "1e3", "rendering.max_events): must be an integer (got '1e3')"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD)
def test_bad_environment_values_name_the_variable(name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("", {name: text})
    assert len(caught.value.errors) == 1
    assert caught.value.errors[0].startswith(f"environment: {name} ({message}"), caught.value.errors


@pytest.mark.parametrize(
    ("text", "expected"), [("1", True), ("yes", True), ("ON", True), ("0", False), ("no", False), ("False", False)]
)
def test_booleans_from_the_environment(text: str, expected: bool) -> None:
    assert parse_config("", {"ALERTBRIDGE_DELIVERY_CONFIRM_CREATES": text}).delivery.confirm_creates is expected


def test_environment_text_is_literal() -> None:
    """${...} is expanded in the file only: a password with "${" in it stays as it is."""
    url = "postgresql://u:pa${ss}@db/ab"
    assert str(parse_config("", {"ALERTBRIDGE_DATABASE_URL": url}).database.url) == url


def test_database_url_fallbacks_and_the_example_files_database_url() -> None:
    """The example's `url = "${DATABASE_URL}"` is not expanded when ALERTBRIDGE_DATABASE_URL is set (README:
    "Run it for real"); DATABASE_URL itself is the second name of the same setting."""
    text = '[database]\nurl = "${DATABASE_URL}"\n'
    config = parse_config(text, {"ALERTBRIDGE_DATABASE_URL": "postgresql://a@h/x"})
    assert str(config.database.url) == "postgresql://a@h/x"
    config = parse_config(text, {"DATABASE_URL": "postgresql://b@h/x"})
    assert str(config.database.url) == "postgresql://b@h/x"
    both = {"ALERTBRIDGE_DATABASE_URL": "postgresql://a@h/x", "DATABASE_URL": "postgresql://b@h/x"}
    assert str(parse_config(text, both).database.url) == "postgresql://a@h/x"
    with pytest.raises(ConfigError, match=r"database\.url: environment variable DATABASE_URL is not set"):
        parse_config(text, {})


def test_cross_key_rules_see_environment_values() -> None:
    with pytest.raises(ConfigError, match=r"delivery\.backoff_max_seconds: must be >= delivery\.backoff_base_seconds"):
        parse_config("[delivery]\nbackoff_base_seconds = 10\n", {"ALERTBRIDGE_DELIVERY_BACKOFF_MAX_SECONDS": "5"})


def test_the_demo_takes_environment_settings_too() -> None:
    config = demo_config("http://127.0.0.1:8080/emulator", env={"ALERTBRIDGE_DELIVERY_MAX_IN_FLIGHT": "4"})
    assert config.delivery.max_in_flight == 4
    assert config.database.data_dir == Path(".alertbridge")
    config = demo_config("http://x", env={"ALERTBRIDGE_DATA_DIR": "/srv/demo"})
    assert config.database.data_dir == Path("/srv/demo")


def test_every_error_of_a_file_at_once() -> None:
    text = """
[server]
port = 0
max_body_bytes = "1 MiB"
[delivery]
lease_secs = 3
[[integrations]]
name = "Bad Name"
template = "alertmanager"
tokens = ["short", "${NOT_SET}", "long-enough-1", "long-enough-1"]
[integrations.target]
region = "mars"
[integrations.priorities]
sev0 = "P0"
SEV0 = "P1"
[[integrations]]
name = "ok"
template = "generic"
allow_unauthenticated = true
[integrations.target]
base_url = "ftp://x"
api_key = "k"
[integrations.signature]
kind = "sns"
secret = "not-for-sns"
[[integrations]]
name = "ok"
template = "generic"
tokens = ["long-enough-2"]
[integrations.target]
region = "eu"
api_key = "k"
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, {"ALERTBRIDGE_RENDERING_MAX_EVENTS": "many"})
    assert caught.value.errors == [
        "alertbridge.toml: server.port: must be between 1 and 65535 (got 0)",
        "alertbridge.toml: server.max_body_bytes: must be an integer (got string)",
        "alertbridge.toml: delivery.lease_secs: unknown key (did you mean 'lease_seconds'?)",
        "environment: ALERTBRIDGE_RENDERING_MAX_EVENTS (rendering.max_events): must be an integer (got 'many')",
        "alertbridge.toml: integrations[0].name: must match ^[a-z0-9][a-z0-9_-]{0,62}$ (lowercase letters, digits, "
        "'_' and '-'; at most 63 characters) (got 'Bad Name')",
        "alertbridge.toml: integrations[0].tokens[0]: must be at least 8 characters (got 5)",
        "alertbridge.toml: integrations[0].tokens[1]: environment variable NOT_SET is not set",
        "alertbridge.toml: integrations[0].tokens[3]: duplicate token (same as integrations[0].tokens[2])",
        "alertbridge.toml: integrations[0].priorities.sev0: must be one of 'P1', 'P2', 'P3', 'P4', 'P5', in either "
        "case (got 'P0')",
        "alertbridge.toml: integrations[0].priorities.SEV0: duplicate key (same as integrations[0].priorities.sev0 "
        "once lower-cased)",
        "alertbridge.toml: integrations[0].target.region: must be one of 'us', 'eu', 'jsm' (got 'mars')",
        "alertbridge.toml: integrations[0].target.api_key: required key is missing (the OpsGenie / JSM API "
        "integration key)",
        "alertbridge.toml: integrations[1].target.base_url: must be an http:// or https:// URL (got 'ftp://x')",
        "alertbridge.toml: integrations[1].signature.secret: not allowed with kind = 'sns'",
        "alertbridge.toml: integrations[1].allow_unauthenticated: must be false when an [integrations.signature] "
        "is set",
        "alertbridge.toml: integrations[2].name: duplicate integration name 'ok' (also integrations[1].name)",
    ]
    assert str(caught.value) == "\n".join(caught.value.errors)


def test_docs_name_every_environment_variable() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [name for name in all_variables() if f"`{name}`" not in docs]
    assert missing == []
