"""How a command-line process ends: every path goes through a normal interpreter exit, so exit handlers run
(above all the one that stops the embedded PostgreSQL, app.embedded).

- SIGTERM and SIGHUP raise `Terminated` (a SystemExit, status 128 + signal); SIGINT stays a KeyboardInterrupt;
- `signals_held()`: no signal takes effect half-way through something that must not be cut (the embedded
  server's start);
- `graceful_server()`: uvicorn, stopping gracefully on SIGINT/SIGTERM and telling which one stopped it, instead of
  raising it again afterwards;
- `stdout_closed()`: the reader of our output went away.

Used by app.cli only (signal handlers belong to the main thread of the command).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

HELD = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived: leave through the normal exit path (exit handlers run), status 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def terminate_on_signals() -> None:
    """SIGTERM and SIGHUP end the process like an exception would (`serve` and `worker` handle SIGTERM themselves,
    gracefully, while they run)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminate)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM, SIGINT and SIGHUP for the block (a start of the embedded PostgreSQL: an initdb or a
    `pg_ctl start` killed half-way leaves a broken data folder or a server that nobody stops). The first one that
    arrived takes effect when the block ends."""
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in HELD}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signal.raise_signal(received[0])


def graceful_server(config: Any) -> Any:
    """A uvicorn Server that stops gracefully on SIGINT/SIGTERM and records the signal in ``stopped_by``, but does
    not raise it again afterwards (uvicorn does, and a KeyboardInterrupt raised then can land anywhere, even in the
    exit handlers that stop the embedded PostgreSQL)."""
    import uvicorn

    class Server(uvicorn.Server):
        stopped_by: list[int]

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.stopped_by.append(sig)
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def,override]
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    server = Server(config)
    server.stopped_by = []
    return server


def stdout_closed() -> int:
    """The reader of our stdout went away (`alertbridge render ... | head -1`): no traceback, and no second error
    when Python flushes stdout at exit. Status 141 = 128 + SIGPIPE, as a process killed by it."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 141
