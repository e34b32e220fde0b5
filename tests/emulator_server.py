"""Run the OpsGenie/JSM emulator (app.emulator) on a real port for tests.

    from tests.emulator_server import run_emulator

    with run_emulator(api_keys={"k1"}, processing_delay=0.05) as emu:
        httpx.post(emu.base_url + "/v2/alerts", headers={"Authorization": "GenieKey k1"}, json={"message": "hi"})
        emu.wait_idle()
        assert emu.state.list_alerts()[0]["message"] == "hi"

The server runs uvicorn in a background thread with its own event loop; on exit, requests stuck in a ``hang``
fault are released and the server is stopped and joined. ``state`` lives on that loop: read it freely after
``wait_idle()``, and change it through ``call()`` (or the HTTP control endpoints).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette

from alertbridge.emulator import EmulatorState, build_app
from tests.servers import serve_app


@dataclass
class RunningEmulator:
    base_url: str  # e.g. "http://127.0.0.1:54321"
    app: Starlette
    state: EmulatorState
    loop: asyncio.AbstractEventLoop

    @property
    def jsm_base_url(self) -> str:
        return self.base_url + "/jsm/ops/integration"

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 5.0) -> Any:
        """Run ``fn(*args)`` on the server's event loop (thread-safe) and return its result."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until every accepted (202) request has been processed."""
        deadline = time.monotonic() + timeout
        while not self.state.idle:
            if time.monotonic() > deadline:
                raise TimeoutError(f"emulator still has unprocessed requests after {timeout}s")
            time.sleep(0.005)


@contextmanager
def run_emulator(**build_kwargs: Any) -> Iterator[RunningEmulator]:
    """Start ``build_app(**build_kwargs)`` with uvicorn on 127.0.0.1 (a free port); stop it cleanly on exit."""
    app = build_app(**build_kwargs)
    state: EmulatorState = app.state.emulator

    def release(loop: asyncio.AbstractEventLoop) -> None:
        loop.call_soon_threadsafe(state.release_hangs)

    with serve_app(app, lifespan="on", before_stop=release) as server:
        yield RunningEmulator(server.base_url, app, state, server.loop)
