"""Signature checks accept the good fixtures and refuse tampered bodies, wrong secrets and stale timestamps."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from alertbridge.signatures import (
    SignatureError,
    check_cert_url,
    sns_string_to_sign,
    verify_hmac,
    verify_sentry,
    verify_sns,
)

FIXTURES = Path(__file__).parent / "fixtures"
SENTRY_SECRET = "fixture-sentry-client-secret-0b7d2c4e"


def headers_of(path: Path) -> dict[str, str]:
    return {k.lower(): v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


# --- generic HMAC -------------------------------------------------------------------------------------------


def _sig(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


BODY = b'{"alerts": []}'


@pytest.mark.parametrize(
    ("headers", "kwargs", "error"),
    [
        ({"x-sig": _sig("s3cret", BODY)}, {}, None),
        ({"x-sig": "sha256=" + _sig("s3cret", BODY)}, {}, None),
        ({"x-sig": _sig("s3cret", BODY).upper()}, {}, None),
        ({"x-sig": _sig("wrong", BODY)}, {}, "does not match"),
        ({"x-sig": _sig("s3cret", BODY + b" ")}, {}, "does not match"),
        ({}, {}, "missing x-sig"),
        ({"x-sig": "zz"}, {}, "does not match"),
        (
            {"x-sig": _sig("s3cret", b"1000:" + BODY), "x-ts": "1000"},
            {"timestamp_header": "x-ts"},
            None,
        ),
        (
            {"x-sig": _sig("s3cret", b"1000:" + BODY), "x-ts": "1000"},
            {"timestamp_header": "x-ts", "now": 1400.0},
            "stale",
        ),
        ({"x-sig": _sig("s3cret", BODY)}, {"timestamp_header": "x-ts"}, "missing x-ts"),
        ({"x-sig": _sig("s3cret", b"abc:" + BODY), "x-ts": "abc"}, {"timestamp_header": "x-ts"}, "not a Unix"),
    ],
)
def test_hmac(headers: dict[str, str], kwargs: dict[str, Any], error: str | None) -> None:
    args: dict[str, Any] = {"secret": "s3cret", "header": "x-sig", "now": 1010.0, **kwargs}
    if error is None:
        verify_hmac(BODY, headers, **args)
    else:
        with pytest.raises(SignatureError, match=error):
            verify_hmac(BODY, headers, **args)


# --- Sentry ---------------------------------------------------------------------------------------------------

SENTRY_CASES = ["01_event_alert_triggered", "02_issue_assigned", "03_issue_resolved"]


@pytest.mark.parametrize("name", SENTRY_CASES)
def test_sentry_fixture_signatures_verify(name: str) -> None:
    body = (FIXTURES / "sentry" / f"{name}.json").read_bytes()
    headers = headers_of(FIXTURES / "sentry" / f"{name}.headers.json")
    stamp = float(headers["sentry-hook-timestamp"])
    verify_sentry(body, headers, secret=SENTRY_SECRET, now=stamp + 5)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("tampered", "does not match"),
        ("wrong_secret", "does not match"),
        ("stale", "stale"),
        ("future", "stale"),
        ("no_timestamp", "missing sentry-hook-timestamp"),
        ("no_signature", "missing sentry-hook-signature"),
        ("bad_fixture", "does not match|stale"),
    ],
)
def test_sentry_refusals(change: str, error: str) -> None:
    body = (FIXTURES / "sentry" / "01_event_alert_triggered.json").read_bytes()
    headers = headers_of(FIXTURES / "sentry" / "01_event_alert_triggered.headers.json")
    stamp = float(headers["sentry-hook-timestamp"])
    secret, now = SENTRY_SECRET, stamp + 5
    if change == "tampered":
        body = body.replace(b"error", b"errer", 1)
    elif change == "wrong_secret":
        secret = "another-secret"
    elif change == "stale":
        now = stamp + 301
    elif change == "future":
        now = stamp - 301
    elif change == "no_timestamp":
        del headers["sentry-hook-timestamp"]
    elif change == "no_signature":
        del headers["sentry-hook-signature"]
    elif change == "bad_fixture":
        headers = headers_of(FIXTURES / "sentry" / "bad_signature.headers.json")
    with pytest.raises(SignatureError, match=error):
        verify_sentry(body, headers, secret=secret, now=now)


# --- AWS SNS ----------------------------------------------------------------------------------------------------

SNS = FIXTURES / "sns_cloudwatch"
CERT = (SNS / "fixture_signing_cert.pem").read_bytes()


@pytest.mark.parametrize("name", ["00_subscription_confirmation", "01_notification_alarm", "02_notification_ok"])
def test_sns_fixture_signatures_verify(name: str) -> None:
    message = json.loads((SNS / f"{name}.json").read_text())
    check_cert_url(message)
    verify_sns(message, CERT)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("Message", "tampered", "does not match"),
        ("TopicArn", "arn:aws:sns:eu-west-1:111122223333:other-topic", "does not match"),
        ("SignatureVersion", "3", "unsupported SNS SignatureVersion"),
        ("Signature", "not base64!", "not base64"),
        ("Type", "Surprise", "unknown SNS message Type"),
    ],
)
def test_sns_refusals(field: str, value: str, error: str) -> None:
    message = json.loads((SNS / "01_notification_alarm.json").read_text())
    message[field] = value
    with pytest.raises(SignatureError, match=error):
        verify_sns(message, CERT)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://sns.eu-west-1.amazonaws.com/cert.pem", "is not https://sns"),
        ("https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem", "is not https://sns"),
        ("https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem", "is not https://sns"),
        ("https://sns.us-east-1.amazonaws.com/cert.pem", "region 'us-east-1'"),
        ("https://sns.eu-west-1.amazonaws.com:8443/cert.pem", "is not https://sns"),
        ("https://user@sns.eu-west-1.amazonaws.com/cert.pem", "is not https://sns"),
        ("https://sns.eu-west-1.amazonaws.com/cert.txt", "not name a .pem"),
        (None, "missing"),
    ],
)
def test_sns_cert_url_must_be_aws_in_the_topic_region(url: str | None, error: str) -> None:
    message = json.loads((SNS / "01_notification_alarm.json").read_text())
    message["SigningCertURL"] = url
    with pytest.raises(SignatureError, match=error):
        check_cert_url(message)


def test_sns_signature_version_1_sha1() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    message = json.loads((SNS / "02_notification_ok.json").read_text())
    message["SignatureVersion"] = "1"
    signed = key.sign(sns_string_to_sign(message), padding.PKCS1v15(), hashes.SHA1())
    message["Signature"] = base64.b64encode(signed).decode()
    verify_sns(message, cert.public_bytes(serialization.Encoding.PEM))
    message["Message"] += " "
    with pytest.raises(SignatureError):
        verify_sns(message, cert.public_bytes(serialization.Encoding.PEM))


def test_sns_string_to_sign_skips_missing_subject() -> None:
    message = {"Type": "Notification", "Message": "m", "MessageId": "i", "Timestamp": "t", "TopicArn": "a"}
    assert sns_string_to_sign(message) == b"Message\nm\nMessageId\ni\nTimestamp\nt\nTopicArn\na\nType\nNotification\n"
