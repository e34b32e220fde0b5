"""Fetching SNS signing certificates: only from the checked URL, cached, and refused when AWS does not answer
with a certificate. (AWS cannot be reached from here: an httpx transport stands in for it.)"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from alertbridge.signatures import SignatureError
from alertbridge.sns import CertStore, SnsVerifier

SNS = Path(__file__).parent / "fixtures" / "sns_cloudwatch"
CERT = (SNS / "fixture_signing_cert.pem").read_bytes()
BODY = (SNS / "01_notification_alarm.json").read_bytes()


class FakeAws:
    def __init__(self, status: int = 200, content: bytes = CERT) -> None:
        self.status, self.content, self.fetched = status, content, []  # type: ignore[var-annotated]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.fetched.append(str(request.url))
        return httpx.Response(self.status, content=self.content)


@pytest.mark.anyio
async def test_certificate_is_fetched_once_and_cached() -> None:
    aws = FakeAws()
    async with httpx.AsyncClient(transport=httpx.MockTransport(aws)) as http:
        verifier = SnsVerifier(CertStore(http))
        for _ in range(3):
            message = await verifier.verify(BODY)
            assert message["Type"] == "Notification"
    assert aws.fetched == [json.loads(BODY)["SigningCertURL"]]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "content", "error"),
    [(404, b"nope", "HTTP 404"), (200, b"x" * 70000, "HTTP 200"), (200, b"not a pem", "not a PEM")],
)
async def test_bad_certificate_answers_are_refused(status: int, content: bytes, error: str) -> None:
    aws = FakeAws(status, content)
    async with httpx.AsyncClient(transport=httpx.MockTransport(aws)) as http:
        with pytest.raises(SignatureError, match=error):
            await SnsVerifier(CertStore(http)).verify(BODY)


@pytest.mark.anyio
async def test_an_unchecked_url_is_never_fetched() -> None:
    aws = FakeAws()
    doc = json.loads(BODY)
    doc["SigningCertURL"] = "https://sns.eu-west-1.amazonaws.com.attacker.example/cert.pem"
    async with httpx.AsyncClient(transport=httpx.MockTransport(aws)) as http:
        with pytest.raises(SignatureError, match="is not https://sns"):
            await SnsVerifier(CertStore(http)).verify(json.dumps(doc).encode())
    assert aws.fetched == []
