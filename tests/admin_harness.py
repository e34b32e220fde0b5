"""Plumbing for admin API and console tests: the real bridge over HTTP with the emulator as target, admin tokens
and console users made through the real services."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from alertbridge.admin import auth
from alertbridge.config import parse_config
from alertbridge.db import Database
from alertbridge.main import build_app, build_bridge
from alertbridge.secretbox import generate_key
from tests.emulator_server import RunningEmulator, run_emulator
from tests.harness import API_KEY, FIXTURES, TOKEN, config_text
from tests.servers import serve_app

SECRET_KEY = generate_key()


def locked_integration(base_url: str) -> str:
    return f"""
[[integrations]]
name = "pinned"
template = "generic"
tokens = ["{TOKEN}"]
locked = true
[integrations.target]
base_url = "{base_url}"
api_key = "{API_KEY}"
"""


def console_config_text(base_url: str) -> str:
    return config_text(base_url) + locked_integration(base_url)


def run_async(coro: Any) -> Any:
    """Run a coroutine to its end on a loop of its own, in a thread (the caller's thread may have a running loop:
    Playwright's sync API keeps one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(60)


def make_token(database_url: str, name: str, role: str) -> str:
    async def make() -> str:
        async with Database(database_url, size=1) as db:
            return (await auth.create_token(db, name, role))[1]

    return str(run_async(make()))


def make_user(database_url: str, name: str, password: str, role: str) -> None:
    async def make() -> None:
        async with Database(database_url, size=1) as db:
            await auth.create_user(db, name, password, role)

    run_async(make())


@dataclass
class Console:
    base_url: str
    emulator: RunningEmulator
    admin: str  # admin API tokens
    viewer: str

    def api(self, method: str, path: str, *, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token is not False:
            headers["Authorization"] = f"Bearer {token or self.admin}"
        return httpx.request(method, f"{self.base_url}/api/v1{path}", headers=headers, timeout=30, **kw)

    def webhook(self, integration: str, body: bytes | dict[str, Any], token: str = TOKEN) -> httpx.Response:
        kw: dict[str, Any] = {"json": body} if isinstance(body, dict) else {"content": body}
        return httpx.post(
            f"{self.base_url}/webhooks/{integration}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            **kw,
        )


@contextmanager
def running_console(
    database_url: str, *, secret_key: str | None = SECRET_KEY, run_worker: bool = True, text: str | None = None
) -> Iterator[Console]:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        config = parse_config(text or console_config_text(emu.base_url), {}, source="test.toml", base_dir=FIXTURES)
        app = build_app(build_bridge(config), database_url, run_worker=run_worker, secret_key=secret_key)
        with serve_app(app, lifespan="on") as server:
            yield Console(
                server.base_url,
                emu,
                make_token(database_url, "ci", "admin"),
                make_token(database_url, "dashboard", "viewer"),
            )
