"""End-to-end plumbing for tests: a config text -> the real bridge app served over HTTP on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alertbridge.config import Config, parse_config
from alertbridge.main import build_app, build_bridge
from tests.servers import RunningServer, serve_app

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "test-token-0123"
API_KEY = "test-genie-key"

T = TypeVar("T")

FAST_DELIVERY = """
[delivery]
timeout_seconds = 1.0
poll_interval_seconds = 0.1
backoff_base_seconds = 0.05
backoff_max_seconds = 0.5
config_error_retry_seconds = 0.2
lease_seconds = 5.0
shutdown_grace_seconds = 3.0
"""


def config_text(
    base_url: str,
    *,
    integrations: tuple[tuple[str, str], ...] = (("alertmanager", "alertmanager"), ("generic", "generic")),
    delivery: str = FAST_DELIVERY,
    extra_integration: str = "",
    server: str = "",
) -> str:
    parts = [server, delivery]
    for name, template in integrations:
        parts.append(
            f"""
[[integrations]]
name = "{name}"
template = "{template}"
tokens = ["{TOKEN}", "second-token-456"]
{extra_integration}
[integrations.target]
base_url = "{base_url}"
api_key = "{API_KEY}"
default_source = "alertbridge-test"
"""
        )
    return "\n".join(parts)


def make_config(base_url: str, base_dir: Path = FIXTURES, **kwargs: Any) -> Config:
    return parse_config(config_text(base_url, **kwargs), {}, source="test.toml", base_dir=base_dir)


@contextmanager
def run_bridge(
    config: Config, database_url: str, *, run_worker: bool = True, demo: bool = False
) -> Iterator[RunningServer]:
    app = build_app(build_bridge(config), database_url, run_worker=run_worker, demo=demo)
    with serve_app(app, lifespan="on") as server:
        yield server


def wait_for(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {value!r})")
        time.sleep(interval)


def fixture_bytes(path: str) -> bytes:
    return (FIXTURES / path).read_bytes()
