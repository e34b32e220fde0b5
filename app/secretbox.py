"""Encryption of the secrets the console stores (OpsGenie API keys entered in the console): Fernet (AES-128-CBC
+ HMAC-SHA256, from ``cryptography``) with a key the operator provides in ``ALERTBRIDGE_SECRET_KEY``.

Several keys may be given, comma-separated: the first encrypts, all decrypt (key rotation: put the new key
first, keep the old one until every stored key was re-entered).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENV_NAME = "ALERTBRIDGE_SECRET_KEY"
NO_KEY = (
    f"{ENV_NAME} is not set: without it the console cannot store an OpsGenie API key (it is only ever stored "
    f"encrypted). Generate one with `alertbridge admin generate-key`, set it for every serve and worker process, "
    "and restart them"
)


class SecretKeyError(ValueError):
    pass


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise SecretKeyError(f"{ENV_NAME} is empty")
        try:
            self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in parts])
        except (ValueError, UnicodeEncodeError):
            raise SecretKeyError(
                f"{ENV_NAME} must be a Fernet key (32 url-safe base64-encoded bytes; several: comma-separated); "
                "generate one with `alertbridge admin generate-key`"
            ) from None

    @classmethod
    def from_env(cls, value: str | None) -> SecretBox | None:
        return cls(value) if value and value.strip() else None

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str | None:
        """None when the token was made with another key (or altered)."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            return None

    def __repr__(self) -> str:
        return "SecretBox(<hidden>)"
