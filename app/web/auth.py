"""Who may post to an integration: tokens (bearer, basic password, ?token=, a custom header), and body
signatures (HMAC, Sentry, AWS SNS) checked once the body is read."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request

from alertbridge.signatures import verify_hmac


class BodyCheck(Protocol):
    async def verify(self, body: bytes, headers: Mapping[str, str]) -> Mapping[str, Any] | None:
        """Raise SignatureError when the body is not authentic; may return the parsed message (SNS)."""
        ...


@dataclass(frozen=True)
class HmacCheck:
    """A hex HMAC-SHA256 of the body in a header (Sentry's is the same with an unsigned timestamp)."""

    secret: str
    header: str
    timestamp_header: str | None = None
    sign_timestamp: bool = True
    max_skew: float = 300.0

    async def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        verify_hmac(
            body,
            headers,
            secret=self.secret,
            header=self.header,
            timestamp_header=self.timestamp_header,
            sign_timestamp=self.sign_timestamp,
            max_skew=self.max_skew,
            now=time.time(),
        )


def supplied_tokens(request: Request, token_header: str | None) -> list[bytes]:
    """Every place a sender may put its token: Bearer, the password of Basic, ?token=, a configured header."""
    found: list[str] = []
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        found.append(value.strip())
    elif scheme.lower() == "basic" and value.strip():
        try:
            _, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError):
            sep, password = "", ""
        if sep and password:
            found.append(password)
    if request.query_params.get("token"):
        found.append(request.query_params["token"])
    if token_header and request.headers.get(token_header):
        found.append(request.headers[token_header].strip())
    return [t.encode() for t in found]


def token_matches(tokens: tuple[bytes, ...], supplied: list[bytes]) -> bool:
    """Constant-time comparison of every supplied token with every configured one (no early exit)."""
    ok = False
    for candidate in supplied:
        for token in tokens:
            ok |= hmac.compare_digest(candidate, token)
    return ok


def hash_matches(hashes: tuple[bytes, ...], supplied: list[bytes]) -> bool:
    """The same for tokens stored as SHA-256 digests (console-made tokens): hash, then compare in constant time."""
    ok = False
    for candidate in supplied:
        digest = hashlib.sha256(candidate).digest()
        for stored in hashes:
            ok |= hmac.compare_digest(digest, stored)
    return ok
