"""Keeping secrets out of what we store and log. Pure."""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "[redacted]"

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
)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or any(word in lowered for word in _SECRET_WORDS)


def _clean(value: str, limit: int = 2000) -> str:
    return value.replace("\x00", "")[:limit]


def headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased header names -> values, credentials replaced by "[redacted]" (repeated headers joined)."""
    out: dict[str, str] = {}
    for name, value in items:
        key = _clean(name.lower(), 200)
        value = REDACTED if is_secret_name(key) else _clean(value)
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def query(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query parameters with credentials (``token=`` and friends) replaced by "[redacted]"."""
    return {_clean(k, 200): (REDACTED if is_secret_name(k) else _clean(v)) for k, v in items}
