"""The runtime registry: every integration as ingest (Route, Endpoint) and delivery (Target) need it, built from
Postgres — the integrations rows and their active template versions — plus, for file-managed integrations, the
secrets that stay in the config file / environment.

A ``Snapshot`` is immutable and swapped atomically: a webhook takes one Endpoint at its start and is rendered by
exactly that version from start to end. Every ``serve`` and ``worker`` process follows Postgres with
``Registry.follow``: LISTEN on ``alertbridge_config`` (a NOTIFY comes with every change) and a poll of the change
counter as a fallback, so a saved version is active everywhere within about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx
import psycopg

from alertbridge import redact
from alertbridge.config import SENTRY_SIGNATURE_HEADER, Config, ConfigError, IntegrationConfig
from alertbridge.core.policies import Bucket, Policies, PolicySettings, Silence, Window
from alertbridge.db import Database, is_unavailable
from alertbridge.delivery import Target
from alertbridge.ingest import Route
from alertbridge.limits import BRIDGE_USER, Defaults
from alertbridge.rendering import CompiledTemplate, RenderLimits, TemplateError, compile_template, load_template_source
from alertbridge.secretbox import SecretBox
from alertbridge.sns import CertStore, SnsVerifier
from alertbridge.store import config_state
from alertbridge.store import integrations as integrations_store
from alertbridge.store import silences as silences_store
from alertbridge.web.auth import BodyCheck, HmacCheck
from alertbridge.web.webhooks import Endpoint

log = logging.getLogger("alertbridge.registry")


@dataclass(frozen=True)
class Snapshot:
    """Everything one process serves, at one point of the change counter."""

    endpoints: Mapping[str, Endpoint]
    targets: Mapping[str, Target]
    counter: int = -1  # config_state.counter it was built at (-1: from the config file alone)

    @property
    def routes(self) -> Mapping[str, Route]:
        return {name: e.route for name, e in self.endpoints.items()}


def render_limits(config: Config) -> RenderLimits:
    r = config.rendering
    return RenderLimits(timeout_seconds=r.timeout_seconds, max_output_bytes=r.max_output_bytes, max_events=r.max_events)


def body_check(integ: IntegrationConfig, http: httpx.AsyncClient | None) -> BodyCheck | None:
    sig = integ.signature
    if sig is None:
        return None
    if sig.kind in ("hmac-sha256", "sentry"):  # Sentry: header defaults filled in by the config parser
        assert sig.secret is not None and sig.header is not None
        return HmacCheck(
            str(sig.secret),
            sig.header,
            sig.timestamp_header,
            sign_timestamp=sig.kind != "sentry",
            max_skew=sig.max_skew_seconds,
        )
    return SnsVerifier(
        certs=CertStore(http, local_file=sig.signing_cert_file),
        topic_arns=frozenset(sig.topic_arns),
        confirm_subscriptions=sig.confirm_subscriptions,
        http=http,
    )


def auth_mode(integ: IntegrationConfig) -> str:
    if integ.signature is not None:
        return integ.signature.kind
    return "none" if integ.allow_unauthenticated else "token"


def file_template(integ: IntegrationConfig, index: int, config: Config) -> CompiledTemplate:
    """The template the config file declares, compiled (a ConfigError names the key and the line)."""
    try:
        _, source = load_template_source(integ.template, config.base_dir)
        return compile_template(source, integ.name)
    except TemplateError as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise ConfigError(f"{config.source}: integrations[{index}].template: {exc.message}{where}") from None


def config_secrets(config: Config) -> redact.SecretValues:
    """Every secret of the config (tokens, signature secrets, API keys): a header or query value that carries one
    of them is redacted whatever its name, on every integration."""
    out: list[str] = []
    for integ in config.integrations:
        out += [str(t) for t in integ.tokens]
        out.append(str(integ.target.api_key))
        if integ.signature is not None and integ.signature.secret is not None:
            out.append(str(integ.signature.secret))
    return redact.SecretValues(out)


def secret_headers(integ: IntegrationConfig) -> frozenset[str]:
    """The headers of an integration whose value is a credential, whatever their name: its token header and its
    signature header (the timestamp header is not secret)."""
    names = {integ.token_header} if integ.token_header else set()
    if integ.signature is not None and integ.signature.header:
        names.add(integ.signature.header.lower())
    if integ.signature is not None and integ.signature.kind == "sentry":
        names.add(SENTRY_SIGNATURE_HEADER)
    return frozenset(names)


def policy_settings(integ: IntegrationConfig) -> PolicySettings:
    """``[integrations.policies]`` and the target's pacing keys, as ``core.policies`` reads them."""
    p, t = integ.policies, integ.target
    return PolicySettings(
        close_delay=p.close_delay,
        flap_threshold=p.flap_threshold,
        flap_window=p.flap_window,
        expire_after=p.expire_after,
        expire_action=p.expire_action,
        expect_every=p.expect_every,
        expect_priority=p.expect_priority,
        rate_per_minute=t.rate_per_minute,
        burst=t.burst,
    )


def bucket_of(settings: PolicySettings) -> Bucket | None:
    return Bucket(settings.rate_per_minute, settings.burst) if settings.rate_per_minute > 0 else None


def file_silences(config: Config) -> tuple[Silence, ...]:
    """The config file's silences (before they are in Postgres: ``render`` and the first snapshot)."""
    return tuple(
        Silence(
            integration=s.integration,
            alias=s.alias,
            tags=s.tags,
            priorities=s.priorities,
            details=tuple(sorted(s.details.items())),
            starts_at=s.starts_at,
            ends_at=s.ends_at,
            window=Window.parse(s.every, s.timezone) if s.every else None,
            comment=s.comment,
            created_by=s.created_by,
        )
        for s in config.silences
    )


def policies_for(name: str, settings: PolicySettings, silences: tuple[Silence, ...]) -> Policies:
    return Policies(settings, tuple(s for s in silences if s.integration in (None, name)))


def _file_endpoint(
    integ: IntegrationConfig,
    route: Route,
    http: httpx.AsyncClient | None,
    enabled: bool,
    secrets: redact.SecretValues,
) -> Endpoint:
    return Endpoint(
        route=route,
        tokens=tuple(str(tok).encode() for tok in integ.tokens),
        allow_unauthenticated=integ.allow_unauthenticated,
        enabled=enabled,
        token_header=integ.token_header,
        signature=body_check(integ, http),
        secret_headers=secret_headers(integ),
        secrets=secrets,
    )


def from_config(config: Config, http: httpx.AsyncClient | None = None) -> tuple[Snapshot, dict[str, CompiledTemplate]]:
    """What the config file alone declares (validates it: every template compiles, or ConfigError)."""
    limits = render_limits(config)
    secrets = config_secrets(config)
    endpoints: dict[str, Endpoint] = {}
    targets: dict[str, Target] = {}
    templates: dict[str, CompiledTemplate] = {}
    silences = file_silences(config)
    for i, integ in enumerate(config.integrations):
        template = file_template(integ, i, config)
        t = integ.target
        settings = policy_settings(integ)
        route = Route(
            name=integ.name,
            template=template,
            defaults=Defaults(
                team=t.default_team, priority=t.default_priority, source=t.default_source, user=t.default_user
            ),
            scope_aliases=t.scope_aliases,
            forward_unknown=integ.forward_unknown,
            render_limits=limits,
            max_json_depth=config.server.max_json_depth,
            priorities=integ.priorities,
            base_url=t.base_url,
            policies=policies_for(integ.name, settings, silences),
        )
        templates[integ.name] = template
        endpoints[integ.name] = _file_endpoint(integ, route, http, integ.enabled, secrets)
        targets[integ.name] = Target(base_url=t.base_url, api_key=str(t.api_key), bucket=bucket_of(settings))
    return Snapshot(MappingProxyType(endpoints), MappingProxyType(targets)), templates


@dataclass
class _Built:
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)


class Registry:
    """The current Snapshot of this process, rebuilt from Postgres when the change counter moves."""

    def __init__(
        self,
        config: Config,
        *,
        initial: Snapshot | None = None,
        http: httpx.AsyncClient | None = None,
        box: SecretBox | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.config = config
        self.http = http
        self.box = box
        self.poll_interval = poll_interval
        self.current = initial if initial is not None else Snapshot(MappingProxyType({}), MappingProxyType({}))
        self.listeners: list[Callable[[Snapshot], None]] = []
        self._compiled: dict[int, CompiledTemplate] = {}  # version id -> compiled (versions are immutable)
        self._lock = asyncio.Lock()
        self._warned: set[str] = set()

    # --- building ---------------------------------------------------------------------------------------

    def _compile(self, row: Mapping[str, Any]) -> CompiledTemplate | None:
        vid = int(row["version_id"])
        compiled = self._compiled.get(vid)
        if compiled is None:
            try:
                compiled = compile_template(row["source"], row["name"])
            except TemplateError as exc:  # only if the template language changed under a stored version
                log.error("integration %s: version %s does not compile: %s", row["name"], row["version"], exc)
                return None
            self._compiled[vid] = compiled
        return compiled

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def build(self, counter: int, rows: list[dict[str, Any]], silences: tuple[Silence, ...] = ()) -> Snapshot:
        built = _Built()
        limits = render_limits(self.config)
        secrets = config_secrets(self.config)
        files = {i.name: i for i in self.config.integrations}
        for row in rows:
            name = row["name"]
            if row["version_id"] is None:
                self._warn_once(f"nover:{name}", "integration %s has no template version yet; not served", name)
                continue
            template = self._compile(row)
            if template is None:
                old = self.current.endpoints.get(name)
                if old is not None:
                    built.endpoints[name] = old
                    if name in self.current.targets:
                        built.targets[name] = self.current.targets[name]
                continue
            settings = PolicySettings.from_dict(row.get("policies"))
            route = Route(
                name=name,
                template=template,
                defaults=Defaults(
                    team=row["default_team"],
                    priority=row["default_priority"],
                    source=row["default_source"],
                    user=files[name].target.default_user if name in files else BRIDGE_USER,
                ),
                scope_aliases=row["scope_aliases"],
                forward_unknown=row["forward_unknown"],
                render_limits=limits,
                max_json_depth=self.config.server.max_json_depth,
                priorities=MappingProxyType(dict(row["priorities"] or {})),
                base_url=row["target_base_url"],
                version_id=int(row["version_id"]),
                policies=policies_for(name, settings, silences),
            )
            if row["managed_by"] == "file":
                integ = files.get(name)
                if integ is None:
                    if row["enabled"]:
                        self._warn_once(
                            f"nofile:{name}",
                            "integration %s is managed by a config file this process does not have; not served here",
                            name,
                        )
                    continue
                built.endpoints[name] = _file_endpoint(integ, route, self.http, bool(row["enabled"]), secrets)
                built.targets[name] = Target(
                    base_url=row["target_base_url"], api_key=str(integ.target.api_key), bucket=bucket_of(settings)
                )
                continue
            hashes = tuple(bytes.fromhex(h) for h in row["token_hashes"] or ())
            built.endpoints[name] = Endpoint(
                route=route,
                tokens=(),
                token_hashes=hashes,
                allow_unauthenticated=row["auth_mode"] == "none",
                enabled=bool(row["enabled"]),
                token_header=row["token_header"],
                secret_headers=frozenset({row["token_header"]} if row["token_header"] else ()),
                # The file's secrets, and this integration's own tokens recognised by their SHA-256 digests.
                secrets=secrets.with_hashes(hashes),
            )
            api_key = self._api_key(name, row["api_key_encrypted"])
            if api_key is not None:
                built.targets[name] = Target(
                    base_url=row["target_base_url"], api_key=api_key, bucket=bucket_of(settings)
                )
        return Snapshot(MappingProxyType(built.endpoints), MappingProxyType(built.targets), counter)

    def _api_key(self, name: str, encrypted: str | None) -> str | None:
        if encrypted is None:
            self._warn_once(f"nokey:{name}", "integration %s has no OpsGenie API key yet; nothing is delivered", name)
            return None
        if self.box is None:
            self._warn_once(
                f"nobox:{name}",
                "integration %s: its API key is stored encrypted but ALERTBRIDGE_SECRET_KEY is not set here",
                name,
            )
            return None
        key = self.box.decrypt(encrypted)
        if key is None:
            self._warn_once(f"badkey:{name}", "integration %s: ALERTBRIDGE_SECRET_KEY cannot decrypt its API key", name)
        return key

    # --- following Postgres -----------------------------------------------------------------------------

    def swap(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        for listener in self.listeners:
            listener(snapshot)

    async def reload(self, db: Database, *, force: bool = False) -> bool:
        """Rebuild from Postgres when the change counter moved (or ``force``). True when swapped."""
        async with self._lock:
            if not force:  # the cheap check every poll makes: has anything changed?
                async with db.connection() as conn:
                    if await config_state.counter(conn) == self.current.counter:
                        return False
            async with db.connection() as conn, conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                counter, rows = await integrations_store.runtime(conn)
                silences = tuple(await silences_store.current(conn))
            self.swap(self.build(counter, rows, silences))
            log.info("registry at change %s: %d integrations", counter, len(self.current.endpoints))
            return True

    async def follow(self, db: Database, listen_url: str | None) -> None:
        """Reload on every NOTIFY and at every poll that sees the counter move; until cancelled."""
        wake = asyncio.Event()
        listener = asyncio.create_task(self._listen(listen_url, wake)) if listen_url else None
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_interval)
                wake.clear()
                try:
                    await self.reload(db)
                except Exception as exc:
                    if is_unavailable(exc):
                        log.debug("registry: database unavailable; keeping the current integrations")
                    else:
                        log.exception("registry reload failed; keeping the current integrations")
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self, url: str, wake: asyncio.Event) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {config_state.CHANNEL}")
                    delay = 0.5
                    wake.set()  # catch up on anything changed while we were not listening
                    async for _ in conn.notifies():
                        wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("config LISTEN connection lost (%s); polling until it is back", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


class LiveEndpoints(Mapping[str, Endpoint]):
    """``app.state.endpoints`` as the web layer reads it: always the registry's current snapshot."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __getitem__(self, name: str) -> Endpoint:
        return self.registry.current.endpoints[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry.current.endpoints)

    def __len__(self) -> int:
        return len(self.registry.current.endpoints)


def token_digest(token: str) -> str:
    """How a console-made webhook token is stored (integration_tokens.sha256)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
