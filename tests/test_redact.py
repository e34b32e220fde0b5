"""Redaction by name and by value (pure, table-driven)."""

from __future__ import annotations

import base64

import pytest

from alertbridge import redact

SECRET = "s3cret-token-4f9a"
OTHER = "another/secret+key=="
is_secret = redact.SecretValues([SECRET, OTHER, b"bytes-secret-77"])


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        (SECRET, True),
        (f"  {SECRET} ", True),
        (f"Bearer {SECRET}", True),
        (f"token {SECRET}", True),
        (f"Basic {b64('user:' + SECRET)}", True),
        (f"Basic {b64(SECRET + ':x')}", True),  # the secret as the user name
        (b64(f"u:{SECRET}"), True),
        (f"a, {SECRET}, b", True),
        (f"k1=v1; session={SECRET}", True),
        (f"https://ci.example/x?build=1&token={SECRET}&y=2", True),  # a URL: split on '?' and '&', then '='
        (OTHER, True),
        (f"key={OTHER}", True),
        ("key=another%2Fsecret%2Bkey%3D%3D", True),  # percent-encoded
        ("bytes-secret-77", True),
        (SECRET[:-1], False),
        (SECRET + "x", False),
        (f"{SECRET}x", False),
        ("", False),
        ("Basic !!!", False),
        ("nothing to see", False),
    ],
)
def test_secret_values(value: str, secret: bool) -> None:
    assert is_secret(value) is secret


def test_no_secrets_match_nothing() -> None:
    empty = redact.SecretValues(["", b""])
    assert not empty and empty("") is False and empty("anything") is False


def test_headers_redacted_by_value_and_by_configured_name() -> None:
    items = [
        ("X-Shared-Key", "not-a-known-value"),  # the integration's token header: always redacted
        ("X-Debug", f"Bearer {SECRET}"),  # a configured secret under an innocent name
        ("X-Hub-Hash", "abc123"),  # the integration's signature header
        ("X-Request-Id", "r-1"),
        ("Sentry-Hook-Signature", "f00"),  # 'signature' in the name
        ("X-Debug", "plain"),  # repeated header: joined, each value judged alone
    ]
    out = redact.headers(items, is_secret=is_secret, names={"x-shared-key", "x-hub-hash"})
    assert out == {
        "x-shared-key": "[redacted]",
        "x-debug": "[redacted], plain",
        "x-hub-hash": "[redacted]",
        "x-request-id": "r-1",
        "sentry-hook-signature": "[redacted]",
    }


def test_query_redacted_by_value() -> None:
    out = redact.query([("note", SECRET), ("region", "eu"), ("Token", "x")], is_secret=is_secret)
    assert out == {"note": "[redacted]", "region": "eu", "Token": "[redacted]"}
