"""Keeping secrets out of what we store, log and show to templates. Pure.

Three rules, any of which redacts a header or query value:
- its name is a credential's (``Authorization``, ``Cookie``, or contains token, secret, password, ...);
- its name is one the integration names explicitly (its ``token_header``, its signature header);
- its value *is* a configured secret (a token, a signature secret, an API key), whatever the name: on its own,
  as ``Bearer <secret>``, as the password (or user) of ``Basic`` credentials, or as one part of a list
  (``a, <secret>``), a cookie or query string (``k=<secret>``). Compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Collection, Iterable
from urllib.parse import unquote

REDACTED = "[redacted]"

#: ``is_secret(value) -> bool``: does this value carry a configured secret?
SecretTest = Callable[[str], bool]

# Header names whose value is a credential.
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie"}
# Any header or query parameter whose name contains one of these is treated as a credential too.
_SECRET_WORDS = (
    "token",
    "secret",
    "password",
    "passwd",
    "api-key",
    "apikey",
    "api_key",
    "auth",
    "session",
    "credential",
    "private",
    "signature",
)
# Where a value is split into the parts that are compared with the secrets.
_SEPARATORS = re.compile(r"[\s,;&?]+")


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or any(word in lowered for word in _SECRET_WORDS)


class SecretValues:
    """A ``SecretTest`` over a fixed set of secrets (the revealed values of the config)."""

    def __init__(self, secrets: Iterable[str | bytes], hashes: Iterable[bytes] = ()) -> None:
        values = {s.encode() if isinstance(s, str) else bytes(s) for s in secrets}
        self._secrets = tuple(sorted(v for v in values if v))
        self._lengths = frozenset(len(v) for v in self._secrets)
        self._hashes = tuple(hashes)  # SHA-256 digests of secrets stored only hashed (console-made tokens)

    def with_hashes(self, hashes: Iterable[bytes]) -> SecretValues:
        """These secrets, and the ones whose SHA-256 digest is in ``hashes``."""
        return SecretValues(self._secrets, (*self._hashes, *hashes))

    def __bool__(self) -> bool:
        return bool(self._secrets or self._hashes)

    def __call__(self, value: str) -> bool:
        if not (self._secrets or self._hashes) or not value:
            return False
        found = False
        for candidate in _candidates(value):
            data = candidate.encode("utf-8", "surrogatepass")
            if self._hashes:
                digest = hashlib.sha256(data).digest()
                for stored in self._hashes:
                    found |= hmac.compare_digest(digest, stored)
            if len(data) not in self._lengths:  # only lengths are told apart early, never contents
                continue
            for secret in self._secrets:
                found |= hmac.compare_digest(data, secret)
        return found


def _basic_parts(value: str) -> list[str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return []
    user, sep, password = decoded.partition(":")
    return [user, password] if sep else [decoded]


def _candidates(value: str) -> list[str]:
    """The value, and every piece of it that could be a secret on its own."""
    out = [value, value.strip()]
    for part in _SEPARATORS.split(value):
        if not part:
            continue
        out.append(part)
        for piece in (part, part.partition("=")[2]) if "=" in part else (part,):
            if piece:
                out.append(piece)
                out.append(unquote(piece))
                out.extend(_basic_parts(piece))
    return out


def _clean(value: str, limit: int = 2000) -> str:
    return value.replace("\x00", "")[:limit]


def _redacted(name: str, value: str, names: Collection[str], is_secret: SecretTest | None) -> bool:
    return is_secret_name(name) or name in names or (is_secret is not None and is_secret(value))


def headers(
    items: Iterable[tuple[str, str]], *, is_secret: SecretTest | None = None, names: Collection[str] = ()
) -> dict[str, str]:
    """Lower-cased header names -> values, credentials replaced by "[redacted]" (repeated headers joined).
    ``names``: lower-cased header names that are always redacted (an integration's token and signature
    headers); ``is_secret``: redacts any value that carries a configured secret."""
    out: dict[str, str] = {}
    for name, value in items:
        key = _clean(name.lower(), 200)
        value = REDACTED if _redacted(key, value, names, is_secret) else _clean(value)
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def query(items: Iterable[tuple[str, str]], *, is_secret: SecretTest | None = None) -> dict[str, str]:
    """Query parameters with credentials (``token=`` and friends, any configured secret) replaced by
    "[redacted]"."""
    return {_clean(k, 200): (REDACTED if _redacted(k.lower(), v, (), is_secret) else _clean(v)) for k, v in items}
