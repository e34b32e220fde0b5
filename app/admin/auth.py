"""Who may use the console and the admin API: console users (argon2 password hashes), sessions (server side,
hashed ids), CSRF tokens derived from the session, login rate limiting (in Postgres, so it holds across
processes), and admin API tokens (SHA-256 hashes). No secret is ever stored or logged in clear."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from alertbridge.admin.actor import Actor
from alertbridge.admin.errors import Invalid, TooMany, Unauthorized
from alertbridge.db import Database
from alertbridge.models import Role
from alertbridge.store import admin_tokens, audit, login_failures, sessions, users

SESSION_TTL = 12 * 3600.0  # idle seconds before a session expires
LOGIN_WINDOW = 15 * 60.0
MAX_FAILURES_PER_NAME = 5  # within LOGIN_WINDOW
MAX_FAILURES_PER_ADDRESS = 20
MIN_PASSWORD = 10
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}$")
TOKEN_PREFIX = "abt_"

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))  # verified when the name is unknown: same timing


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def check_name(name: str, what: str = "name") -> str:
    if not NAME.fullmatch(name or ""):
        raise Invalid(f"{what} must be 1 to 63 letters, digits and _ . @ - (starting with a letter or digit)")
    return name


def check_role(role: str) -> str:
    if role not in (Role.ADMIN, Role.VIEWER):
        raise Invalid("role must be 'admin' or 'viewer'")
    return role


async def create_user(db: Database, name: str, password: str, role: str, *, actor: str = "cli") -> dict[str, object]:
    check_name(name, "user name")
    check_role(role)
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"the password must be at least {MIN_PASSWORD} characters")
    hashed = await anyio.to_thread.run_sync(_hasher.hash, password)
    async with db.transaction() as conn:
        row = await users.upsert(conn, name, hashed, role)
        await audit.record(
            conn,
            actor=actor,
            action="user.create" if row["created"] else "user.update",
            target=f"user:{name}",
            after={"name": name, "role": role, "password": "set"},
        )
    return row


async def create_token(db: Database, name: str, role: str, *, actor: str = "cli") -> tuple[dict[str, object], str]:
    """A new admin API token: (its row, the token — shown once, stored as a hash)."""
    check_name(name, "token name")
    check_role(role)
    token = TOKEN_PREFIX + new_secret()
    async with db.transaction() as conn:
        row = await admin_tokens.insert(conn, name, digest(token), role)
        await audit.record(
            conn, actor=actor, action="token.create", target=f"token:{row['id']}", after={"name": name, "role": role}
        )
    return row, token


async def token_actor(db: Database, token: str) -> Actor | None:
    if not token or len(token) > 200:
        return None
    async with db.connection() as conn:
        row = await admin_tokens.find(conn, digest(token))
    return Actor("token", row["name"], row["role"]) if row else None


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def login(db: Database, name: str, password: str, remote_addr: str | None) -> tuple[str, Actor]:
    """A new session (its id, for the cookie) — or Unauthorized, or TooMany while the rate limit holds."""
    name = (name or "").strip()[:200]
    async with db.connection() as conn:
        by_name, by_addr = await login_failures.recent(conn, name, remote_addr, LOGIN_WINDOW)
        if by_name >= MAX_FAILURES_PER_NAME or by_addr >= MAX_FAILURES_PER_ADDRESS:
            raise TooMany(
                f"too many failed logins; try again in {int(LOGIN_WINDOW // 60)} minutes",
                retry_after=int(LOGIN_WINDOW),
            )
        user = await users.by_name(conn, name) if name else None
    ok = await anyio.to_thread.run_sync(_verify, user["password_hash"] if user else _DUMMY_HASH, password or "")
    if user is None or not ok or user["disabled"]:
        async with db.connection() as conn:
            await login_failures.record(conn, name, remote_addr)
        raise Unauthorized("wrong user name or password")
    session_id = new_secret()
    async with db.transaction() as conn:
        if _hasher.check_needs_rehash(user["password_hash"]):
            await users.set_password_hash(conn, user["id"], await anyio.to_thread.run_sync(_hasher.hash, password))
        await login_failures.clear(conn, name)
        await sessions.create(conn, digest(session_id), user["id"], SESSION_TTL, remote_addr)
        await users.logged_in(conn, user["id"])
    return session_id, Actor("user", user["name"], user["role"])


async def session_actor(db: Database, session_id: str) -> Actor | None:
    if not session_id or len(session_id) > 200:
        return None
    async with db.connection() as conn:
        row = await sessions.find(conn, digest(session_id), SESSION_TTL)
    return Actor("user", row["name"], row["role"]) if row else None


async def logout(db: Database, session_id: str) -> None:
    async with db.connection() as conn:
        await sessions.delete(conn, digest(session_id))


def csrf_token(session_id: str) -> str:
    """Derived from the session id (never stored): a form must carry it back."""
    return hmac.new(session_id.encode("utf-8"), b"alertbridge-csrf", hashlib.sha256).hexdigest()


def csrf_ok(expected: str, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(expected.encode(), (supplied or "").encode())
