"""``serve --workers N``: N processes serving one listening socket (both cores of a 2-core machine).

The parent binds the socket, then forks the children before any event loop, pool or thread exists; each child
builds its own app (its own pools and event loop) and accepts connections from the shared socket (the kernel hands
each new connection to one of the processes waiting in accept). The parent only supervises: SIGTERM / SIGINT /
SIGHUP are passed on to every child (SIGHUP: each re-reads the config file), and when a child dies on its own the
others are stopped and ``serve`` exits with an error (the service manager restarts it; a half-sized bridge that
looks healthy is worse). The parent keeps what it started before forking (the embedded PostgreSQL): children leave
with ``os._exit`` and never run the parent's exit handlers.

Used by app.cli only.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

log = logging.getLogger("alertbridge")

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_processes(count: int, child: Callable[[int], int], on_exit: Callable[[int], None] | None = None) -> int:
    """Fork ``count`` children running ``child(index)`` (its return value is the child's exit status); wait for all.
    ``on_exit(pid)`` after each child is gone (multi-process metrics clean-up). Returns the exit status of serve:
    0 after SIGTERM, 130 after SIGINT, 1 when a child died on its own."""
    stopping: list[int] = []
    pids: dict[int, int] = {}

    def forward(signum: int, frame: object) -> None:
        if signum != signal.SIGHUP:
            stopping.append(signum)
        for pid in list(pids):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        for index in range(count):
            pid = os.fork()
            if pid == 0:  # the child: default signal handling until its server installs its own
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                status = 1
                try:
                    status = child(index)
                except SystemExit as exc:
                    status = exc.code if isinstance(exc.code, int) else 1
                except BaseException:
                    log.exception("serve process %d failed", index)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(status)
            pids[pid] = index
        log.info("serve: %d processes (pids %s)", count, ", ".join(str(p) for p in pids))
        failed = False
        while pids:
            pid, status = os.wait()
            index = pids.pop(pid, None)
            if index is None:
                continue
            if on_exit is not None:
                on_exit(pid)
            if not stopping:
                failed = True
                code = os.waitstatus_to_exitcode(status)
                log.error("serve process %d (pid %d) exited with %s; stopping the others", index, pid, code)
                stopping.append(signal.SIGTERM)
                for other in list(pids):
                    try:
                        os.kill(other, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        if failed:
            return 1
        return 128 + signal.SIGINT if signal.SIGINT in stopping else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
