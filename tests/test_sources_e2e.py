"""Every source end to end: its fixtures, sent with its real authentication, through the bridge (real app,
real Postgres) to the emulator; the resolve closes the alias the alert opened; bad signatures and stale
timestamps are refused with nothing stored; handshakes open nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from alertbridge.config import parse_config
from alertbridge.main import build_app, build_bridge
from tests.emulator_server import RunningEmulator, run_emulator
from tests.harness import API_KEY, FAST_DELIVERY, FIXTURES, TOKEN, wait_for
from tests.servers import RunningServer, serve_app

SENTRY_SECRET = "fixture-sentry-client-secret-0b7d2c4e"
GRAFANA_HMAC = "grafana-signing-secret-1"
SNS_TOPIC = "arn:aws:sns:eu-west-1:111122223333:ops-alarms-to-opsgenie"


def fixture_headers(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_") and k != "Authorization"}


def bearer(_: bytes, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Authorization": f"Bearer {TOKEN}"}


def basic(_: bytes, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Authorization": "Basic " + base64.b64encode(f"grafana:{TOKEN}".encode()).decode()}


def grafana_signed(body: bytes, headers: dict[str, str]) -> dict[str, str]:
    stamp = str(int(time.time()))
    sig = hmac.new(GRAFANA_HMAC.encode(), f"{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {**basic(body, headers), "X-Grafana-Alerting-Signature": sig, "X-Grafana-Alerting-Timestamp": stamp}


def header_token(_: bytes, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "X-Bridge-Token": TOKEN}


def sentry_fresh(_: bytes, headers: dict[str, str]) -> dict[str, str]:
    # The fixture's signature covers the body only; a delivery now carries the current time.
    return {**headers, "Sentry-Hook-Timestamp": str(int(time.time()))}


def unsigned(_: bytes, headers: dict[str, str]) -> dict[str, str]:
    return headers


@dataclass
class Source:
    name: str
    fixtures: tuple[str, ...]  # fire ... resolve
    auth: Callable[[bytes, dict[str, str]], dict[str, str]]
    config: str  # extra TOML lines inside [[integrations]]
    query: dict[str, str] = field(default_factory=dict)
    actions: tuple[str, ...] = ("create", "close")  # what OpsGenie receives, for one-alert sources
    alerts: int = 1  # distinct alerts the fixtures open


SOURCES = [
    Source(
        "alertmanager",
        (
            "01_firing_two_alerts.json",
            "02_one_resolved_one_firing.json",
            "03_new_alert_added.json",
            "04_all_resolved.json",
        ),
        bearer,
        f'tokens = ["{TOKEN}"]',
        alerts=3,
    ),
    Source(
        "grafana",
        ("01_firing.json", "02_resolved.json"),
        grafana_signed,
        f"""tokens = ["{TOKEN}"]
[integrations.signature]
kind = "hmac-sha256"
secret = "{GRAFANA_HMAC}"
header = "X-Grafana-Alerting-Signature"
timestamp_header = "X-Grafana-Alerting-Timestamp"
""",
        alerts=2,
    ),
    Source(
        "genesys",
        ("01_queue_sla_alarm.json", "02_queue_sla_clear.json"),
        header_token,
        f'tokens = ["{TOKEN}"]\ntoken_header = "X-Bridge-Token"',
    ),
    Source(
        "sentry",
        ("01_event_alert_triggered.json", "02_issue_assigned.json", "03_issue_resolved.json"),
        sentry_fresh,
        f'[integrations.signature]\nkind = "sentry"\nsecret = "{SENTRY_SECRET}"\n',
        actions=("create", "acknowledge", "close"),
    ),
    Source(
        "sns_cloudwatch",
        ("01_notification_alarm.json", "02_notification_ok.json"),
        unsigned,
        f"""tokens = ["{TOKEN}"]
[integrations.signature]
kind = "sns"
topic_arns = ["{SNS_TOPIC}"]
signing_cert_file = "{FIXTURES / "sns_cloudwatch" / "fixture_signing_cert.pem"}"
""",
        query={"token": TOKEN},
    ),
    Source("azure_monitor", ("01_fired.json", "02_resolved.json"), unsigned, f'tokens = ["{TOKEN}"]', {"token": TOKEN}),
    Source(
        "datadog",
        ("01_triggered.json", "02_recovered.json"),
        header_token,
        f'tokens = ["{TOKEN}"]\ntoken_header = "X-Bridge-Token"',
    ),
]


def source_config(base_url: str, source: Source, *, priorities: str = "") -> str:
    return f"""{FAST_DELIVERY}
[[integrations]]
name = "{source.name}"
template = "{source.name}"
{source.config}
{priorities}
[integrations.target]
base_url = "{base_url}"
api_key = "{API_KEY}"
"""


class SnsAws:
    """AWS's side of a subscription confirmation. The SubscribeURL is on sns.<region>.amazonaws.com, which
    cannot be reached from here, so this httpx transport stands in for AWS and records what was fetched."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.fetched.append(str(request.url))
        return httpx.Response(200, text="<ConfirmSubscriptionResponse/>")


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        yield emu


def serve_source(config_text: str, database_url: str, aws: SnsAws | None = None) -> Any:
    config = parse_config(config_text, {}, source="test.toml", base_dir=FIXTURES)
    http = httpx.AsyncClient(transport=httpx.MockTransport(aws)) if aws is not None else None
    return serve_app(build_app(build_bridge(config, http=http), database_url), lifespan="on")


def post_fixture(bridge: RunningServer, source: Source, fixture: str, **override: Any) -> httpx.Response:
    path = FIXTURES / source.name / fixture
    body = override.pop("body", path.read_bytes())
    headers = source.auth(body, fixture_headers(path.with_name(path.stem + ".headers.json")))
    headers = override.pop("headers", headers)
    return httpx.post(
        f"{bridge.base_url}/webhooks/{source.name}", content=body, headers=headers, params=source.query, timeout=10
    )


def settled(db: psycopg.Connection) -> bool:
    return db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone() == (0,)


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_source_fire_then_resolve(
    source: Source, emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    with serve_source(source_config(emulator.base_url, source), database_url) as bridge:
        sent: list[tuple[str, str]] = []
        for fixture in source.fixtures:
            r = post_fixture(bridge, source, fixture)
            assert r.status_code == 202, (fixture, r.text)
            sent += [(e["action"], e["opsgenie_alias"]) for e in r.json()["events"] if e["decision"] == "send"]
            wait_for(lambda: settled(db), what=f"{source.name} deliveries")
    emulator.wait_idle()
    aliases = {alias for _, alias in sent}
    assert all(a.startswith(f"{source.name}:") for a in aliases)
    assert len(aliases) == source.alerts, sent
    if source.alerts == 1:  # one alert, fired (acknowledged) and resolved under the same alias
        assert tuple(action for action, _ in sent) == source.actions
    received = [r for r in emulator.state.requests if r["method"] == "POST"]
    assert all(r["status"] == 202 for r in received)
    creates = [r["json"] for r in received if r["path"] == "/v2/alerts"]
    assert creates and all(c["message"] and len(c["message"]) <= 130 for c in creates)
    for alias in aliases:
        alerts = [a for a in emulator.state.alerts.values() if a["alias"] == alias]
        assert [a["status"] for a in alerts] == ["closed"], (alias, alerts)
    failures = [s for s in emulator.state.statuses.values() if s is not None and not s["isSuccess"]]
    assert failures == []
    assert db.execute("SELECT count(*) FROM inbound_events WHERE status <> 'processed'").fetchone() == (0,)


def test_priorities_override_per_integration(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    source = SOURCES[0]  # alertmanager: severity "critical" is P1 by default
    config = source_config(emulator.base_url, source, priorities='[integrations.priorities]\ncritical = "P4"\n')
    with serve_source(config, database_url) as bridge:
        assert post_fixture(bridge, source, "01_firing_two_alerts.json").status_code == 202
        wait_for(lambda: settled(db), what="deliveries")
    emulator.wait_idle()
    assert {a["priority"] for a in emulator.state.alerts.values()} == {"P4"}


SENTRY = next(s for s in SOURCES if s.name == "sentry")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("stale", "stale"),
        ("tampered", "does not match"),
        ("wrong_secret", "does not match"),
        ("no_signature", "missing sentry-hook-signature"),
        ("bad_fixture", "stale|does not match"),
    ],
)
def test_sentry_signature_refusals_store_nothing(
    case: str, message: str, emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    config = source_config(emulator.base_url, SENTRY)
    if case == "wrong_secret":
        config = config.replace(SENTRY_SECRET, "some-other-client-secret")
    path = FIXTURES / "sentry" / "01_event_alert_triggered.json"
    body = path.read_bytes()
    headers = sentry_fresh(body, fixture_headers(path.with_name("01_event_alert_triggered.headers.json")))
    if case == "stale":
        headers["Sentry-Hook-Timestamp"] = str(int(time.time()) - 3600)
    elif case == "tampered":
        body = body.replace(b"production", b"prodaction", 1)
    elif case == "no_signature":
        del headers["Sentry-Hook-Signature"]
    elif case == "bad_fixture":
        headers = fixture_headers(FIXTURES / "sentry" / "bad_signature.headers.json")
    with serve_source(config, database_url) as bridge:
        r = post_fixture(bridge, SENTRY, "01_event_alert_triggered.json", body=body, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "bad_signature"
    assert re_search(message, r.json()["message"])
    assert db.execute("SELECT count(*) FROM inbound_events").fetchone() == (0,)
    assert emulator.state.requests == []


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def test_sentry_installation_hook_opens_nothing(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    body = json.dumps({"action": "created", "installation": {"uuid": "abc"}, "data": {"installation": {}}}).encode()
    sig = hmac.new(SENTRY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Sentry-Hook-Resource": "installation",
        "Sentry-Hook-Timestamp": str(int(time.time())),
        "Sentry-Hook-Signature": sig,
        "Content-Type": "application/json",
    }
    with serve_source(source_config(emulator.base_url, SENTRY), database_url) as bridge:
        r = post_fixture(bridge, SENTRY, "01_event_alert_triggered.json", body=body, headers=headers)
    assert r.status_code == 202, r.text
    assert [e["decision"] for e in r.json()["events"]] == ["ignore"]
    assert db.execute("SELECT status FROM outbox").fetchall() == [("skipped",)]
    assert emulator.state.requests == []


SNS = next(s for s in SOURCES if s.name == "sns_cloudwatch")


def test_sns_subscription_confirmation(emulator: RunningEmulator, database_url: str, db: psycopg.Connection) -> None:
    aws = SnsAws()
    with serve_source(source_config(emulator.base_url, SNS), database_url, aws) as bridge:
        r = post_fixture(bridge, SNS, "00_subscription_confirmation.json")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "confirmed"
    subscribe_url = json.loads((FIXTURES / "sns_cloudwatch" / "00_subscription_confirmation.json").read_text())[
        "SubscribeURL"
    ]
    assert aws.fetched == [subscribe_url]
    assert db.execute("SELECT status, error->>'status' FROM inbound_events").fetchall() == [("handshake", "confirmed")]
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    assert emulator.state.requests == []


def test_sns_confirmation_for_an_unlisted_topic_fetches_nothing(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    aws = SnsAws()
    config = source_config(emulator.base_url, SNS).replace(SNS_TOPIC, "arn:aws:sns:eu-west-1:111122223333:other")
    with serve_source(config, database_url, aws) as bridge:
        r = post_fixture(bridge, SNS, "00_subscription_confirmation.json")
    assert r.status_code == 200 and r.json()["status"] == "not_confirmed"
    assert aws.fetched == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Message": "{}"}, "does not match"),
        ({"SigningCertURL": "https://evil.example/cert.pem"}, "not https://sns"),
        ({"SigningCertURL": "https://sns.us-east-1.amazonaws.com/x.pem"}, "region"),
        ({"SignatureVersion": "9"}, "SignatureVersion"),
    ],
)
def test_sns_bad_signatures_are_refused(
    change: dict[str, str], message: str, emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    aws = SnsAws()
    doc = json.loads((FIXTURES / "sns_cloudwatch" / "01_notification_alarm.json").read_text())
    doc.update(change)
    with serve_source(source_config(emulator.base_url, SNS), database_url, aws) as bridge:
        r = post_fixture(bridge, SNS, "01_notification_alarm.json", body=json.dumps(doc).encode())
    assert r.status_code == 401 and message in r.json()["message"]
    assert aws.fetched == []  # a bad URL is never fetched
    assert db.execute("SELECT count(*) FROM inbound_events").fetchone() == (0,)


def test_token_forms(emulator: RunningEmulator, database_url: str, db: psycopg.Connection) -> None:
    """Bearer, basic password, ?token= and the configured header all carry the same token."""
    datadog = next(s for s in SOURCES if s.name == "datadog")
    body = (FIXTURES / "datadog" / "01_triggered.json").read_bytes()
    url_headers = [
        ({}, {"Authorization": f"Bearer {TOKEN}"}),
        ({}, {"Authorization": "Basic " + base64.b64encode(f"any:{TOKEN}".encode()).decode()}),
        ({"token": TOKEN}, {}),
        ({}, {"X-Bridge-Token": TOKEN}),
    ]
    with serve_source(source_config(emulator.base_url, datadog), database_url) as bridge:
        url = f"{bridge.base_url}/webhooks/datadog"
        for params, headers in url_headers:
            assert httpx.post(url, content=body, params=params, headers=headers).status_code == 202
        for params, headers in [({}, {"X-Bridge-Token": "nope-nope-nope"}), ({}, {"Authorization": "Basic !!"})]:
            r = httpx.post(url, content=body, params=params, headers=headers)
            assert r.status_code == 401 and "x-bridge-token header" in r.json()["message"]
    assert db.execute("SELECT count(*) FROM inbound_events").fetchone() == (4,)
