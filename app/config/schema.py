"""Every key the config file accepts (the checker of each value is in `values`), by table. The docs test walks
this; `table` checks one table of a document against it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from alertbridge.config.model import PRIORITIES, REGION_BASE_URLS, SIGNATURE_KINDS
from alertbridge.config.policies import (
    HEARTBEAT_REGIONS,
    duration,
    every,
    globs,
    priority_list,
    timestamp,
    timezone_name,
)
from alertbridge.config.values import (
    MAX_SOURCE_LENGTH,
    MIN_TOKEN_LENGTH,
    MISSING,
    Check,
    Ctx,
    base_url,
    boolean,
    choice,
    database_url,
    header_name,
    integer,
    name,
    names,
    number,
    path_value,
    priorities,
    secret,
    string,
    tokens,
    topic_arns,
    type_name,
)

# --------------------------------------------------------------------------------------------
# The schema: every accepted key, by table. Nested dicts are sub-tables. The docs test walks this.

SERVER: dict[str, Check] = {
    "host": string(),
    "port": integer(minimum=1, maximum=65535),
    "max_body_bytes": integer(),
    "max_json_depth": integer(),
    "header_timeout_seconds": number(),
    "body_timeout_seconds": number(),
    "keep_alive_seconds": number(),
    "max_connections": integer(minimum=0),
    "ingest_concurrency": integer(),
    "ingest_wait_seconds": number(),
    "ingest_batch_size": integer(maximum=1000),
    "ingest_transactions": integer(maximum=32),
    "workers": integer(maximum=64),
}
DATABASE: dict[str, Check] = {
    "url": database_url,
    "data_dir": path_value,
}
DELIVERY: dict[str, Check] = {
    "max_in_flight": integer(),
    "timeout_seconds": number(),
    "max_age_seconds": number(),
    "backoff_base_seconds": number(),
    "backoff_max_seconds": number(),
    "config_error_retry_seconds": number(),
    "config_error_max_age_seconds": number(),
    "confirm_creates": boolean,
    "poll_interval_seconds": number(),
    "lease_seconds": number(),
    "shutdown_grace_seconds": number(allow_zero=True),
    "record_retry_seconds": number(allow_zero=True),
    "circuit_failures": integer(),
    "circuit_probe_max_seconds": number(),
    "follow_request_status": boolean,
}
WORKER: dict[str, Check] = {
    "metrics_host": string(),
    "metrics_port": integer(minimum=0, maximum=65535),
    "stuck_after_seconds": number(),
}
CALLBACKS: dict[str, Check] = {
    "tokens": tokens,
    "echo_users": names,
    "echo_sources": names,
}
RETENTION: dict[str, Check] = {
    "raw_bodies_days": number(allow_zero=True),
    "events_days": number(allow_zero=True),
    "refused_days": number(allow_zero=True),
    "interval_seconds": number(),
    "batch_size": integer(minimum=100, maximum=1_000_000),
}
RENDERING: dict[str, Check] = {
    "timeout_seconds": number(),
    "max_output_bytes": integer(),
    "max_events": integer(),
}
TARGET: dict[str, Check] = {
    "region": choice(tuple(REGION_BASE_URLS)),
    "base_url": base_url,
    "api_key": secret(),
    "default_team": string(),
    "default_priority": choice(PRIORITIES),
    "default_source": string(max_length=MAX_SOURCE_LENGTH),
    "default_user": string(max_length=MAX_SOURCE_LENGTH),
    "scope_aliases": boolean,
    "rate_per_minute": number(allow_zero=True),
    "burst": integer(minimum=0),
}
POLICIES: dict[str, Check] = {
    "close_delay": duration,
    "flap_threshold": integer(minimum=0),
    "flap_window": duration,
    "expire_after": duration,
    "expire_action": choice(("close", "note", "resend")),
    "expect_every": duration,
    "expect_priority": choice(PRIORITIES),
}
SILENCE: dict[str, Check] = {
    "integration": name,
    "alias": string(),
    "tags": names,
    "priorities": priority_list,
    "details": globs,  # a free-form table, checked as one value
    "starts_at": timestamp,
    "ends_at": timestamp,
    "every": every,
    "timezone": timezone_name,
    "comment": string(),
    "created_by": string(),
}
HEARTBEAT: dict[str, Check] = {
    "name": string(max_length=200),
    "interval_seconds": number(),
    "region": choice(HEARTBEAT_REGIONS),
    "base_url": base_url,
    "api_key": secret(),
}
SWEEPER: dict[str, Check] = {
    "interval_seconds": number(),
}
SIGNATURE: dict[str, Check] = {
    "kind": choice(SIGNATURE_KINDS),
    "secret": secret(min_length=MIN_TOKEN_LENGTH),
    "header": header_name,
    "timestamp_header": header_name,
    "max_skew_seconds": number(),
    "topic_arns": topic_arns,
    "signing_cert_file": path_value,
    "confirm_subscriptions": boolean,
}
# Which [integrations.signature] keys each kind accepts (besides `kind`), and which it requires.
SIGNATURE_KEYS = {
    "hmac-sha256": {"secret", "header", "timestamp_header", "max_skew_seconds"},
    "sentry": {"secret", "header", "timestamp_header", "max_skew_seconds"},
    "sns": {"topic_arns", "signing_cert_file", "confirm_subscriptions"},
}
SIGNATURE_REQUIRED = {"hmac-sha256": ("secret", "header"), "sentry": ("secret",), "sns": ()}
INTEGRATION: dict[str, Any] = {
    "name": name,
    "template": string(),
    "tokens": tokens,
    "token_header": header_name,
    "allow_unauthenticated": boolean,
    "forward_unknown": boolean,
    "enabled": boolean,
    "locked": boolean,
    "priorities": priorities,  # a free-form table, checked as one value
    "target": TARGET,
    "signature": SIGNATURE,
    "policies": POLICIES,
}
SCHEMA: dict[str, dict[str, Any]] = {
    "server": SERVER,
    "database": DATABASE,
    "delivery": DELIVERY,
    "rendering": RENDERING,
    "worker": WORKER,
    "callbacks": CALLBACKS,
    "retention": RETENTION,
    "integrations": INTEGRATION,  # an array of tables: [[integrations]]
    "silences": SILENCE,  # an array of tables: [[silences]]
    "heartbeat": HEARTBEAT,
    "sweeper": SWEEPER,
}


def key_paths(schema: Mapping[str, Any] = SCHEMA, prefix: str = "") -> list[str]:
    """Every leaf key the parser accepts, as dotted paths (`integrations.target.region`)."""
    paths: list[str] = []
    for key, entry in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        paths.extend(key_paths(entry, path) if isinstance(entry, dict) else [path])
    return paths


def _suggest(key: str, schema: Mapping[str, Any], schema_path: str) -> str:
    close = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    elsewhere = [p for p in key_paths() if p.rsplit(".", 1)[-1] == key and p.rsplit(".", 1)[0] != schema_path]
    if elsewhere:
        return f" (did you mean {elsewhere[0]!r}? it belongs in another table)"
    return ""


def table(
    value: Any,
    path: str,
    ctx: Ctx,
    schema: Mapping[str, Any],
    schema_path: str,
    *,
    skip: frozenset[str] = frozenset(),
) -> dict[str, Any] | None:
    """Check that `value` is a table with only known keys; return its valid leaf values (keys in `skip` are not
    checked: the environment overrides them). None when `value` is not a table at all."""
    if not isinstance(value, dict):
        ctx.report(path, f"must be a table (got {type_name(value)})")
        return None
    checked: dict[str, Any] = {}
    for key, item in value.items():
        key_path = f"{path}.{key}" if path else key
        if key not in schema:
            ctx.report(key_path, f"unknown key{_suggest(key, schema, schema_path)}")
        elif key in skip or isinstance(schema[key], dict):
            continue
        elif (result := ctx.check(schema[key], item, key_path)) is not MISSING:
            checked[key] = result
    return checked
