"""What a config file becomes: frozen dataclasses, and the error that lists every problem found in it.

Secrets (tokens, API keys, signature secrets, the database URL) are wrapped in `starlette.datastructures.Secret`,
whose repr hides the value, so a `Config` can be printed or logged safely; call `str(secret)` where the value is
really needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from starlette.datastructures import Secret

REGION_BASE_URLS = {
    "us": "https://api.opsgenie.com",
    "eu": "https://api.eu.opsgenie.com",
    "jsm": "https://api.atlassian.com/jsm/ops/integration",
}
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
SIGNATURE_KINDS = ("hmac-sha256", "sentry", "sns")
SENTRY_SIGNATURE_HEADER = "sentry-hook-signature"
SENTRY_TIMESTAMP_HEADER = "sentry-hook-timestamp"


class ConfigError(ValueError):
    """Problems with the config: every one found, each naming the file (or the environment variable) and the
    key path. ``errors`` lists them; ``str()`` gives them one per line."""

    def __init__(self, errors: str | Sequence[str]) -> None:
        self.errors: list[str] = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1_048_576
    max_json_depth: int = 64
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keep_alive_seconds: float = 5.0
    max_connections: int = 0  # 0: derived from the open-file limit
    ingest_concurrency: int = 64
    ingest_wait_seconds: float = 10.0
    ingest_batch_size: int = 64
    ingest_transactions: int = 2
    workers: int = 1


@dataclass(frozen=True)
class DatabaseConfig:
    url: Secret | None = None
    data_dir: Path = Path(".alertbridge")


@dataclass(frozen=True)
class DeliveryConfig:
    max_in_flight: int = 64
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
    follow_request_status: bool = True


@dataclass(frozen=True)
class WorkerConfig:
    """`[worker]`: the standalone `alertbridge worker`'s HTTP server, and when a worker counts as stuck."""

    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108  # 0: no HTTP server
    stuck_after_seconds: float = 60.0


@dataclass(frozen=True)
class CallbacksConfig:
    """`[callbacks]`: OpsGenie's outgoing "Webhook" integration posting to /callbacks/opsgenie."""

    tokens: tuple[Secret, ...] = ()  # none: callbacks are refused (401)
    echo_users: tuple[str, ...] = ("alertbridge",)  # `user` values of our own requests
    echo_sources: tuple[str, ...] = ()  # names of the OpsGenie API integrations the bridge sends with


@dataclass(frozen=True)
class RetentionConfig:
    """`[retention]`: how long each kind of data is kept (days); 0 keeps it forever."""

    raw_bodies_days: float = 30.0  # webhook and callback bodies (the rows stay)
    events_days: float = 400.0  # webhooks, outbox rows, attempts, history, callbacks, closed generations
    refused_days: float = 90.0  # refused-webhook counts
    interval_seconds: float = 300.0  # how often the running bridge sweeps
    batch_size: int = 5000  # rows per delete statement (short locks, bounded work per statement)


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
    default_user: str = "alertbridge"  # the `user` of every request when the template names none
    scope_aliases: bool = True
    rate_per_minute: float = 0.0  # pacing: the account's rate limit (0: not paced)
    burst: int = 0  # pacing: the token bucket's size (0: rate_per_minute / 6)


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
class PoliciesConfig:
    """`[integrations.policies]`: lifecycle policies of one integration (durations in seconds; 0 turns one off)."""

    close_delay: float = 0.0
    flap_threshold: int = 0
    flap_window: float = 3600.0
    expire_after: float = 0.0
    expire_action: str = "close"  # close | note | resend
    expect_every: float = 0.0
    expect_priority: str = "P3"


@dataclass(frozen=True)
class SilenceConfig:
    """`[[silences]]`: a silence or maintenance window kept in the config file (core/policies.py)."""

    integration: str | None = None  # None: every integration
    alias: str | None = None  # a glob
    tags: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    details: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    every: str | None = None  # a recurring window, e.g. "sun 02:00-04:00"
    timezone: str = "UTC"
    comment: str = ""
    created_by: str = "config file"


@dataclass(frozen=True)
class HeartbeatConfig:
    """`[heartbeat]`: the bridge pings this OpsGenie heartbeat while it is healthy."""

    name: str = ""  # empty: no heartbeat
    interval_seconds: float = 60.0
    region: str = "us"
    base_url: str = ""  # empty: the region's
    api_key: Secret | None = None

    @property
    def url(self) -> str:
        """Where pings go: ``base_url``, else the region's API."""
        return self.base_url or REGION_BASE_URLS[self.region]


@dataclass(frozen=True)
class SweeperConfig:
    """`[sweeper]`: the background loop of the lifecycle policies (expiry, silences ending, heartbeats)."""

    interval_seconds: float = 5.0


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
    locked: bool = False  # refuse template edits from the console and the admin API (409)
    policies: PoliciesConfig = PoliciesConfig()


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    database: DatabaseConfig
    delivery: DeliveryConfig
    rendering: RenderingConfig
    integrations: tuple[IntegrationConfig, ...]
    source: str  # the config file's path, or "<demo>"
    base_dir: Path  # folder against which relative paths (templates, data_dir) resolve
    worker: WorkerConfig = WorkerConfig()
    callbacks: CallbacksConfig = CallbacksConfig()
    retention: RetentionConfig = RetentionConfig()
    silences: tuple[SilenceConfig, ...] = ()
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    sweeper: SweeperConfig = SweeperConfig()


#: The tables of scalar settings (outside [[integrations]]), each of which may also come from the environment.
SCALAR_SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "database": DatabaseConfig,
    "delivery": DeliveryConfig,
    "rendering": RenderingConfig,
    "worker": WorkerConfig,
    "retention": RetentionConfig,
    "heartbeat": HeartbeatConfig,
    "sweeper": SweeperConfig,
}
