"""Run an ASGI app with uvicorn on 127.0.0.1 (a free port) in a background thread, for tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn


@dataclass
class RunningServer:
    base_url: str
    loop: asyncio.AbstractEventLoop
    server: uvicorn.Server


@contextmanager
def serve_app(
    app: Any, *, lifespan: str = "off", before_stop: Callable[[asyncio.AbstractEventLoop], None] | None = None
) -> Iterator[RunningServer]:
    """Serve ``app`` until the block ends; the server is stopped and its thread joined on exit."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan=lifespan,
        access_log=False,
        log_config=None,
        log_level=None,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    loops: list[asyncio.AbstractEventLoop] = []
    errors: list[BaseException] = []

    async def run() -> None:
        loops.append(asyncio.get_running_loop())
        await server.serve()

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # reported by the main thread instead of a thread-exception warning
            errors.append(exc)

    thread = threading.Thread(target=target, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start") from (errors[0] if errors else None)
            time.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield RunningServer(f"http://127.0.0.1:{port}", loops[0], server)
    finally:
        if before_stop is not None and loops and thread.is_alive():
            try:
                before_stop(loops[0])
            except RuntimeError:  # loop already closed
                pass
        server.should_exit = True
        thread.join(20)
    if errors:
        raise RuntimeError("the test server failed") from errors[0]
