"""``alertbridge admin ...``: console users, admin API tokens, the secret key (the rest of the command line is in
app.cli)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any


def _cli_error(message: str) -> Exception:
    from alertbridge.cli import CliError

    return CliError(message)


def _admin_database(args: argparse.Namespace) -> str:
    from alertbridge.cli import _database_url, _load_config
    from alertbridge.db import migrate

    config, _ = _load_config(args)
    url = _database_url(config)
    migrate(url)
    return url


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated): from stdin (--password-stdin), generated (--generate, or no terminal), or a prompt."""
    import getpass
    import secrets

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise _cli_error("--password-stdin: no password on standard input")
        return password, False
    if args.generate or not sys.stdin.isatty():
        return secrets.token_urlsafe(15), True
    first = getpass.getpass(f"password for {args.name}: ")
    if first != getpass.getpass("again: "):
        raise _cli_error("the two passwords differ")
    return first, False


def cmd_admin(args: argparse.Namespace) -> int:
    from alertbridge.admin import auth
    from alertbridge.admin.errors import ServiceError
    from alertbridge.db import Database
    from alertbridge.secretbox import generate_key
    from alertbridge.store import admin_tokens, users

    if args.admin_command == "generate-key":
        print(generate_key())
        return 0
    url = _admin_database(args)
    password, generated = _read_password(args) if args.admin_command == "create-user" else ("", False)

    async def run() -> int:
        async with Database(url, size=1, name="alertbridge-admin") as db:
            try:
                if args.admin_command == "create-user":
                    row = await auth.create_user(db, args.name, password, args.role)
                    verb = "created" if row["created"] else "updated (new password and role)"
                    print(f"console user {args.name!r} ({args.role}) {verb}")
                    if generated:
                        print("password (shown once):")
                        print(password)
                elif args.admin_command == "create-token":
                    _, token = await auth.create_token(db, args.name, args.role)
                    print(f"admin API token {args.name!r} ({args.role}); send it as 'Authorization: Bearer <token>'.")
                    print("It is stored only as a hash and cannot be shown again:")
                    print(token)
                elif args.admin_command == "revoke-token":
                    async with db.connection() as conn:
                        row = await admin_tokens.revoke(conn, args.id)
                    if row is None:
                        raise _cli_error(f"no active admin token with id {args.id}")
                    print(f"admin token {args.id} ({row['name']}) revoked")
                else:  # list
                    async with db.connection() as conn:
                        for u in await users.listing(conn):
                            print(f"user   {u['name']:<24} {u['role']:<7} last login {u['last_login_at'] or '-'}")
                        for t in await admin_tokens.listing(conn):
                            state = (
                                f"revoked {t['revoked_at']}"
                                if t["revoked_at"]
                                else f"last used {t['last_used_at'] or '-'}"
                            )
                            print(f"token  {t['id']:<4} {t['name']:<19} {t['role']:<7} {state}")
            except ServiceError as exc:
                raise _cli_error(exc.message) from None
        return 0

    return asyncio.run(run())


def add_parser(sub: Any, with_config: Callable[[argparse.ArgumentParser], None]) -> None:
    a = sub.add_parser("admin", help="console users, admin API tokens, the secret key")
    asub = a.add_subparsers(dest="admin_command", metavar="ADMIN_COMMAND", required=True)
    cu = asub.add_parser("create-user", help="create a console user (or set a new password and role)")
    cu.add_argument("name")
    cu.add_argument("--role", choices=["admin", "viewer"], required=True)
    cu.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    cu.add_argument("--generate", action="store_true", help="generate a password and print it")
    ct = asub.add_parser("create-token", help="create an admin API token; the token is the last line printed")
    ct.add_argument("name")
    ct.add_argument("--role", choices=["admin", "viewer"], required=True)
    rt = asub.add_parser("revoke-token", help="revoke an admin API token by id")
    rt.add_argument("id", type=int)
    asub.add_parser("list", help="list console users and admin API tokens")
    asub.add_parser("generate-key", help="print a new key for ALERTBRIDGE_SECRET_KEY")
    for sp in (cu, ct, rt, asub.choices["list"]):
        with_config(sp)
    a.set_defaults(func=cmd_admin)
