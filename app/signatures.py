"""Verifying that a webhook really comes from its source. Pure: bytes, headers, keys and a clock in,
``None`` or a SignatureError out.

- ``verify_hmac``: a hex HMAC-SHA256 of the raw body in a header (Grafana's optional signing, and any sender
  that signs the same way), optionally over ``"<timestamp>:<body>"`` with a freshness check.
- ``verify_sentry``: Sentry's integration-platform signature (``Sentry-Hook-Signature``, hex HMAC-SHA256 of the
  raw body with the client secret) and a stale ``Sentry-Hook-Timestamp`` check.
- ``verify_sns``: AWS SNS message signatures, SignatureVersion 1 (SHA1withRSA) and 2 (SHA256withRSA), over
  the documented string to sign; ``check_cert_url`` refuses certificate URLs that are not
  ``https://sns.<region>.amazonaws.com/...pem`` in the topic's region.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SENTRY_SIGNATURE = "sentry-hook-signature"
SENTRY_TIMESTAMP = "sentry-hook-timestamp"


class SignatureError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _hex_digest_from(value: str) -> str:
    value = value.strip()
    if value.lower().startswith("sha256="):
        value = value[len("sha256=") :]
    return value.lower()


def _check_fresh(raw: str | None, header: str, now: float, max_skew: float) -> None:
    if raw is None or not raw.strip():
        raise SignatureError(f"missing {header} header")
    try:
        stamp = float(raw.strip())
    except ValueError:
        raise SignatureError(f"{header} is not a Unix timestamp") from None
    if stamp > 1e11:  # milliseconds
        stamp /= 1000
    if abs(now - stamp) > max_skew:
        raise SignatureError(f"{header} is {abs(now - stamp):.0f}s away from now (more than {max_skew:.0f}s): stale")


def verify_hmac(
    body: bytes,
    headers: Mapping[str, str],
    *,
    secret: str,
    header: str,
    timestamp_header: str | None = None,
    sign_timestamp: bool = True,
    max_skew: float = 300.0,
    now: float,
) -> None:
    """Hex HMAC-SHA256 in ``header``. With ``timestamp_header`` the timestamp must be fresh, and (unless
    ``sign_timestamp`` is false) the HMAC is over ``"<timestamp>:<body>"`` instead of the body."""
    supplied = headers.get(header.lower())
    if not supplied:
        raise SignatureError(f"missing {header} header")
    message = body
    if timestamp_header:
        stamp = headers.get(timestamp_header.lower())
        _check_fresh(stamp, timestamp_header, now, max_skew)
        if sign_timestamp:
            message = f"{(stamp or '').strip()}:".encode() + body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, _hex_digest_from(supplied).encode()):
        raise SignatureError(f"{header} does not match the body (wrong secret, or the body was changed)")


def verify_sentry(body: bytes, headers: Mapping[str, str], *, secret: str, max_skew: float = 300.0, now: float) -> None:
    """Sentry: ``Sentry-Hook-Signature`` = hex HMAC-SHA256(client secret, raw body); ``Sentry-Hook-Timestamp``
    must be fresh (it is not part of the signed text)."""
    verify_hmac(
        body,
        headers,
        secret=secret,
        header=SENTRY_SIGNATURE,
        timestamp_header=SENTRY_TIMESTAMP,
        sign_timestamp=False,
        max_skew=max_skew,
        now=now,
    )


# --- AWS SNS ----------------------------------------------------------------------------------------------

_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_CERT_HOST = re.compile(r"^sns\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):\d{12}:[A-Za-z0-9_.-]{1,256}$")


def sns_region(topic_arn: Any) -> str:
    match = _TOPIC_ARN.match(topic_arn) if isinstance(topic_arn, str) else None
    if match is None:
        raise SignatureError(f"TopicArn {str(topic_arn)[:300]!r} is not an SNS topic ARN")
    return match.group(1)


def check_sns_url(url: Any, region: str, what: str) -> str:
    """An AWS-provided URL (SigningCertURL, SubscribeURL) must be https on sns.<region>.amazonaws.com."""
    if not isinstance(url, str):
        raise SignatureError(f"{what} is missing")
    parts = urlsplit(url)
    match = _CERT_HOST.match(parts.hostname or "")
    if parts.scheme != "https" or match is None or parts.port not in (None, 443) or parts.username:
        raise SignatureError(f"{what} {url[:200]!r} is not https://sns.<region>.amazonaws.com/")
    if match.group(1) != region:
        raise SignatureError(f"{what} is in region {match.group(1)!r}, the topic in {region!r}")
    return url


def check_cert_url(message: Mapping[str, Any]) -> str:
    url = check_sns_url(message.get("SigningCertURL"), sns_region(message.get("TopicArn")), "SigningCertURL")
    if not urlsplit(url).path.endswith(".pem"):
        raise SignatureError("SigningCertURL does not name a .pem certificate")
    return url


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The documented "key\\nvalue\\n" string over the message's signed fields."""
    kind = message.get("Type")
    if kind == "Notification":
        keys = _NOTIFICATION_KEYS
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        keys = _CONFIRMATION_KEYS
    else:
        raise SignatureError(f"unknown SNS message Type {str(kind)[:50]!r}")
    out: list[str] = []
    for key in keys:
        if key == "Subject" and message.get(key) is None:
            continue
        value = message.get(key)
        if not isinstance(value, str):
            raise SignatureError(f"SNS message has no {key}")
        out.append(f"{key}\n{value}\n")
    return "".join(out).encode("utf-8")


def verify_sns(message: Mapping[str, Any], cert_pem: bytes) -> None:
    """Check the message's RSA signature with the (already fetched and URL-checked) signing certificate."""
    version = str(message.get("SignatureVersion", ""))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # noqa: S303 — AWS's SignatureVersion 1 is SHA1withRSA
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise SignatureError(f"unsupported SNS SignatureVersion {version[:10]!r} (1 and 2 are supported)")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("SNS Signature is not base64") from None
    try:
        key = x509.load_pem_x509_certificate(cert_pem).public_key()
    except ValueError:
        raise SignatureError("the SNS signing certificate is not a PEM certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("the SNS signing certificate does not hold an RSA key")
    try:
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise SignatureError("SNS signature does not match the message") from None
