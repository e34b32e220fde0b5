"""AWS SNS at the edge: signing certificates (fetched over https from sns.<region>.amazonaws.com and cached, or
read from a local file) and subscription confirmation for the topics an integration lists — never for others,
and never from a URL that is not an SNS endpoint in the topic's region."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from alertbridge.signatures import SignatureError, check_cert_url, check_sns_url, sns_region, verify_sns

log = logging.getLogger("alertbridge.sns")

MAX_CERT_BYTES = 64 * 1024
HANDSHAKE_TYPES = ("SubscriptionConfirmation", "UnsubscribeConfirmation")


class CertStore:
    """SigningCertURL -> PEM bytes, cached for ``ttl`` seconds. ``local_file`` replaces fetching (tests,
    air-gapped setups): every URL that passes the host check maps to that file."""

    def __init__(self, http: httpx.AsyncClient | None, *, local_file: Path | None = None, ttl: float = 86400.0):
        self.http = http
        self.local_file = local_file
        self.ttl = ttl
        self._cache: dict[str, tuple[float, bytes]] = {}

    async def get(self, url: str) -> bytes:
        if self.local_file is not None:
            return self.local_file.read_bytes()
        hit = self._cache.get(url)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        if self.http is None:
            raise SignatureError("no HTTP client to fetch the SNS signing certificate")
        try:
            response = await self.http.get(url, follow_redirects=False, timeout=5.0)
        except httpx.HTTPError as exc:
            raise SignatureError(f"could not fetch the SNS signing certificate: {type(exc).__name__}") from None
        if response.status_code != 200 or len(response.content) > MAX_CERT_BYTES:
            raise SignatureError(f"could not fetch the SNS signing certificate: HTTP {response.status_code}")
        self._cache[url] = (time.monotonic(), response.content)
        return response.content


@dataclass
class SnsVerifier:
    certs: CertStore
    topic_arns: frozenset[str] = field(default_factory=frozenset)
    confirm_subscriptions: bool = True
    http: httpx.AsyncClient | None = None

    async def verify(self, body: bytes, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The signed SNS message, or SignatureError. (SNS signs the message, not the HTTP request: headers
        are not used.)"""
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            raise SignatureError("body is not an SNS message (not JSON)") from None
        if not isinstance(message, dict):
            raise SignatureError("body is not an SNS message (not a JSON object)")
        url = check_cert_url(message)
        verify_sns(message, await self.certs.get(url))
        return message

    async def handshake(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a (verified) SubscriptionConfirmation / UnsubscribeConfirmation; never opens an alert."""
        kind = message["Type"]
        topic = str(message.get("TopicArn"))
        if kind == "UnsubscribeConfirmation":
            return {"status": "ignored", "message": f"SNS unsubscribe confirmation for {topic}"}
        if topic not in self.topic_arns:
            log.warning("SNS subscription confirmation for unlisted topic %s: not confirmed", topic)
            return {"status": "not_confirmed", "message": f"topic {topic} is not in topic_arns; not confirmed"}
        if not self.confirm_subscriptions:
            return {"status": "not_confirmed", "message": "confirm_subscriptions is false; confirm it in AWS"}
        url = check_sns_url(message.get("SubscribeURL"), sns_region(topic), "SubscribeURL")
        if self.http is None:
            raise SignatureError("no HTTP client to confirm the SNS subscription")
        try:
            response = await self.http.get(url, follow_redirects=False, timeout=10.0)
        except httpx.HTTPError as exc:
            return {"status": "confirm_failed", "message": f"GET SubscribeURL failed: {type(exc).__name__}"}
        if response.status_code != 200:
            return {"status": "confirm_failed", "message": f"GET SubscribeURL answered {response.status_code}"}
        log.info("SNS subscription to %s confirmed", topic)
        return {"status": "confirmed", "message": f"SNS subscription to {topic} confirmed"}
