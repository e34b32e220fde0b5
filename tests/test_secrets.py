"""No secret in any table or log: every auth mode of every source, each integration with distinctive secrets,
webhooks with good and bad credentials and with the secrets also placed in unrelated headers and query
parameters; then a full pg_dump of the database and every log line (all loggers, DEBUG) hold none of them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import psycopg
import pytest

from alertbridge import redact
from alertbridge.config import parse_config
from alertbridge.embedded import psql_path
from alertbridge.main import build_app, build_bridge
from tests.emulator_server import RunningEmulator, run_emulator
from tests.harness import FAST_DELIVERY, FIXTURES, wait_for
from tests.servers import serve_app

SNS_CERT = FIXTURES / "sns_cloudwatch" / "fixture_signing_cert.pem"


@dataclass
class Case:
    name: str
    template: str
    fixture: str
    secret: str  # the inbound token, or the signature secret
    api_key: str
    config: str  # extra lines inside [[integrations]]
    sent: list[str] = field(default_factory=list)  # derived credentials (Basic values, signatures) that were sent


CASES = [
    Case(
        "s-bearer",
        "alertmanager",
        "alertmanager/01_firing_two_alerts.json",
        "tok-bearer-7f3a9c1e",
        "key-bearer-1d5e",
        "",
    ),
    Case("s-basic", "grafana", "grafana/01_firing.json", "tok-basic-2b8d4e6f", "key-basic-6a2c", ""),
    Case("s-query", "azure_monitor", "azure_monitor/01_fired.json", "tok-query-9e2f6a4c", "key-query-3f8b", ""),
    Case(
        "s-header",
        "datadog",
        "datadog/01_triggered.json",
        "tok-header-4d7b1c8e",
        "key-header-9c4d",
        'token_header = "X-Shared-Key"',
    ),
    Case(
        "s-hmac",
        "DUMP",
        "generic/01_create.json",
        "sig-hmac-8a3c5e7d",
        "key-hmac-2e7f",
        '[integrations.signature]\nkind = "hmac-sha256"\nsecret = "sig-hmac-8a3c5e7d"\nheader = "X-Body-Hash"\n'
        'timestamp_header = "X-Body-Time"\n',
    ),
    Case(
        "s-grafana-signed",
        "grafana",
        "grafana/01_firing.json",
        "sig-grafana-5c1a7e3b",
        "key-grafsig-8b1a",
        '[integrations.signature]\nkind = "hmac-sha256"\nsecret = "sig-grafana-5c1a7e3b"\n'
        'header = "X-Grafana-Alerting-Signature"\ntimestamp_header = "X-Grafana-Alerting-Timestamp"\n',
    ),
    Case(
        "s-sentry",
        "sentry",
        "sentry/01_event_alert_triggered.json",
        "sig-sentry-6f2e8b4a",
        "key-sentry-5d3c",
        '[integrations.signature]\nkind = "sentry"\nsecret = "sig-sentry-6f2e8b4a"\n',
    ),
    Case(
        "s-sns",
        "sns_cloudwatch",
        "sns_cloudwatch/01_notification_alarm.json",
        "tok-sns-3c9a7f1b",
        "key-sns-7e6f",
        f'[integrations.signature]\nkind = "sns"\ntopic_arns = []\nsigning_cert_file = "{SNS_CERT}"\n',
    ),
]
TOKEN_CASES = {"s-bearer", "s-basic", "s-query", "s-header", "s-sns", "s-grafana-signed"}
# A template that shows the sender's headers and query to OpsGenie: what reaches templates is redacted too.
DUMP_TEMPLATE = (
    '{"action": "create", "alias": {{ payload.alias | tojson }}, "message": "dump", '
    '"description": {{ ((headers | tojson) ~ " " ~ (query | tojson)) | tojson }}}'
)
GRAFANA_TOKEN = "tok-grafsig-0a9b8c7d"  # s-grafana-signed needs a token as well as its signature


def config_for(emulator: RunningEmulator, dump: Path) -> str:
    parts = [FAST_DELIVERY]
    for case in CASES:
        tokens = ""
        if case.name in TOKEN_CASES:
            tokens = f'tokens = ["{GRAFANA_TOKEN if case.name == "s-grafana-signed" else case.secret}"]'
        parts.append(
            f"""
[[integrations]]
name = "{case.name}"
template = "{dump if case.template == "DUMP" else case.template}"
{tokens}
{case.config}
[integrations.target]
base_url = "{emulator.base_url}"
api_key = "{case.api_key}"
"""
        )
    return "\n".join(parts)


def sign(secret: str, body: bytes, stamp: str | None = None) -> str:
    message = f"{stamp}:".encode() + body if stamp is not None else body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def fixture_headers(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    doc = json.loads(path.read_text())
    skip = ("authorization", "sentry-hook-signature", "sentry-hook-timestamp")  # made fresh with our secrets
    return [(k, v) for k, v in doc.items() if not k.startswith("_") and k.lower() not in skip]


def credentials(case: Case, body: bytes) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(headers, query) that authenticate ``case`` for ``body``."""
    stamp = str(int(time.time()))
    if case.name == "s-bearer":
        return [("Authorization", f"Bearer {case.secret}")], []
    if case.name == "s-basic":
        value = basic("grafana", case.secret)
        case.sent.append(value)
        return [("Authorization", value)], []
    if case.name in ("s-query", "s-sns"):
        return [], [("token", case.secret)]
    if case.name == "s-header":
        return [("X-Shared-Key", case.secret)], []
    if case.name == "s-hmac":
        sig = sign(case.secret, body, stamp)
        case.sent.append(sig)
        return [("X-Body-Hash", sig), ("X-Body-Time", stamp)], []
    if case.name == "s-grafana-signed":
        sig = sign(case.secret, body, stamp)
        case.sent.append(sig)
        return [
            ("Authorization", f"Bearer {GRAFANA_TOKEN}"),
            ("X-Grafana-Alerting-Signature", sig),
            ("X-Grafana-Alerting-Timestamp", stamp),
        ], []
    if case.name == "s-sentry":
        sig = sign(case.secret, body)
        case.sent.append(sig)
        return [("Sentry-Hook-Signature", sig), ("Sentry-Hook-Timestamp", stamp)], []
    raise AssertionError(case.name)


def strays(secret: str, other: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The secrets where nothing expects them: unrelated headers and query parameters, in every form."""
    return [
        ("X-Debug", secret),
        ("X-Forwarded-Authorization", f"Bearer {secret}"),
        ("X-Original-Credentials", basic("someone", secret)),
        ("Referer", f"https://ci.example/job?build=7&key={secret}"),
        ("X-Trace", f"a, {other} ,b"),
        ("Forwarded", f"for=10.0.0.1;by={secret}"),
    ], [("note", secret), ("cc", other)]


def send(
    base_url: str, path: str, body: bytes, headers: list[tuple[str, str]], query: list[tuple[str, str]]
) -> tuple[int, dict[str, Any]]:
    """POST with http.client, which logs nothing (the test's own client must not put secrets in the logs)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=15)
    try:
        url = path + ("?" + urlencode(query) if query else "")
        conn.putrequest("POST", url, skip_accept_encoding=True)
        sent_headers = [("Content-Length", str(len(body))), *headers]
        if not any(k.lower() == "content-type" for k, _ in headers):
            sent_headers.append(("Content-Type", "application/json"))
        for k, v in sent_headers:
            conn.putheader(k, v)
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else {}
    finally:
        conn.close()


@pytest.fixture
def every_log_line() -> Iterator[list[str]]:
    """Every record of every logger at DEBUG, formatted with its arguments and traceback."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record) + repr(record.__dict__))

    handler = Keep(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
    saved = [(lg, lg.level, lg.disabled) for lg in [root, *loggers]]
    for lg, _, _ in saved:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
    root.addHandler(handler)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled


def pg_dump(database_url: str) -> str:
    psql = psql_path()
    assert psql is not None, "the embedded PostgreSQL's binaries are needed for pg_dump"
    out = subprocess.run(
        [str(psql.parent / "pg_dump"), "--dbname", database_url, "--no-owner"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


def test_no_secret_in_any_table_or_log(
    tmp_path: Path, database_url: str, db: psycopg.Connection, every_log_line: list[str]
) -> None:
    dump = tmp_path / "dump.j2"
    dump.write_text(DUMP_TEMPLATE)
    with run_emulator(api_keys=[c.api_key for c in CASES], processing_delay=0.0) as emulator:
        config = parse_config(config_for(emulator, dump), {}, source="t.toml", base_dir=FIXTURES)
        with serve_app(build_app(build_bridge(config), database_url), lifespan="on") as bridge:
            answers: list[tuple[str, str, int]] = []
            for i, case in enumerate(CASES):
                other = CASES[(i + 1) % len(CASES)]
                path = FIXTURES / case.fixture
                body = path.read_bytes()
                base_headers = fixture_headers(path.with_name(path.stem + ".headers.json"))
                auth_h, auth_q = credentials(case, body)
                stray_h, stray_q = strays(case.secret, other.secret)
                post = f"/webhooks/{case.name}"
                # good credentials, with the secrets also where nothing expects them
                status, answer = send(bridge.base_url, post, body, base_headers + auth_h + stray_h, auth_q + stray_q)
                answers.append((case.name, "good", status))
                assert status == 202, (case.name, answer)
                # a body most templates refuse (stored as an error, headers and all)
                bad_body = b'{"alias": 1, "events": 5}' if case.name == "s-hmac" else b'{"unexpected": true}'
                auth_h, auth_q = credentials(case, bad_body)
                status, _ = send(bridge.base_url, post, bad_body, auth_h + stray_h, auth_q + stray_q)
                answers.append((case.name, "refused body", status))
                # bad credentials: wrong token / wrong signature, the right secret in an unrelated place
                wrong_h = [(k, "wrong-credential-0000" if k.lower() != "x-body-time" else v) for k, v in auth_h]
                wrong_q = [(k, "wrong-credential-0000") for k, _ in auth_q]
                status, _ = send(bridge.base_url, post, body, wrong_h + stray_h, wrong_q + stray_q)
                answers.append((case.name, "bad credentials", status))
            wait_for(
                lambda: (
                    db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone()
                    == (0,)
                ),
                what="deliveries",
            )
            requests = list(emulator.state.requests)

    good = {name: status for name, kind, status in answers if kind == "good"}
    assert good == {c.name: 202 for c in CASES}, answers
    assert all(status == 401 for _, kind, status in answers if kind == "bad credentials"), answers
    assert 422 in {status for _, kind, status in answers if kind == "refused body"}, answers
    assert db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone()[0] >= len(CASES)
    # The dump template showed the headers and query it got to OpsGenie: redacted, the rest intact.
    described = [r["json"]["description"] for r in requests if r["json"] and r["json"].get("message") == "dump"]
    assert described and all(redact.REDACTED in d and "x-body-time" in d for d in described), described

    everything = pg_dump(database_url)
    assert "inbound_events" in everything and "x-debug" in everything  # the dump has the rows
    logs = "\n".join(every_log_line)
    assert "webhook refused" in logs  # the logs were captured
    for case in CASES:
        forms = [case.secret, case.api_key, *case.sent, base64.b64encode(f"someone:{case.secret}".encode()).decode()]
        for secret in forms:
            assert secret not in everything, f"{case.name}: {secret!r} is in the database dump"
            assert secret not in logs, f"{case.name}: {secret!r} is in the logs"
        assert GRAFANA_TOKEN not in everything + logs
