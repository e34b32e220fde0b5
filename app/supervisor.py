"""``serve --workers N``: N processes serving one listening socket (both cores of a 2-core machine).

The parent checks the address, then forks the children before any event loop, pool or thread exists; each child
builds its own app (its own pools and event loop) and listens on a socket of its own bound to the same address with
``SO_REUSEPORT``, so the kernel spreads new connections evenly over the processes. (One shared listening socket
does not: asyncio accepts every pending connection at once, so the first process to wake took all of them.)
The parent only supervises: SIGTERM / SIGINT /
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
import socket
import sys
from collections.abc import Callable

log = logging.getLogger("alertbridge")

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def reuseport_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT (listening unless ``listen`` is False: then it only holds
    the address, and the kernel gives it no connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP (with 0, every response
    # written in two parts waited ~40 ms for the client's delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(2048)
        sock.set_inheritable(False)
    except BaseException:
        sock.close()
        raise
    return sock


def run_processes(
    count: int,
    child: Callable[[int], int],
    on_exit: Callable[[int], None] | None = None,
    on_started: Callable[[], None] | None = None,
) -> int:
    """Fork ``count`` children running ``child(index)`` (its return value is the child's exit status); wait for all.
    ``on_started()`` once they are forked; ``on_exit(pid)`` after each child is gone (multi-process metrics
    clean-up). Returns the exit status of serve: 0 after SIGTERM, 130 after SIGINT, 1 when a child died on its
    own."""
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
        if on_started is not None:
            on_started()
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
