"""How ``serve`` listens: uvicorn, set up against hostile and careless clients.

* **Header deadline**: a connection must deliver a complete request head within ``header_timeout_seconds`` of
  connecting (or of its previous response); otherwise it gets ``408`` and is closed. uvicorn has no such timeout,
  so silent or trickling connections (slowloris) used to stay open until file descriptors ran out.
* **Keep-alive** idle connections close after ``keep_alive_seconds``; **body deadline** and the ``413`` that closes
  the connection live in ``web/webhooks.py``.
* **Concurrency**: at most ``max_connections`` connections/requests (uvicorn's ``limit_concurrency``: 503 beyond);
  by default derived from the open-file limit, so the process keeps descriptors for its database and OpenGenie
  connections. Request heads are capped at 16 KiB (h11's incomplete-event limit).
* **Descriptor exhaustion** (``EMFILE``) is logged once with advice, then counted, not logged per failed accept
  (asyncio logs a traceback for each, thousands per second).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from alertbridge.config import ServerConfig

log = logging.getLogger("alertbridge.server")

MAX_HEADER_BYTES = 16 * 1024
RESERVED_FDS = 64  # database pools, LISTEN, OpsGenie client, logs, the listening socket
_ACCEPT_FAILED = "socket.accept() out of system resource"
_408 = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(16, min(10_000, soft - RESERVED_FDS))


class _HeadDeadline:
    """The timer behind a deadline for every request head (the protocols below set and clear it)."""

    header_timeout: float = 10.0  # set per server by ``protocol_class``
    loop: asyncio.AbstractEventLoop
    _header_timer: asyncio.TimerHandle | None
    _header_deadline: Callable[[], None]  # what each protocol does when the deadline passes

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None


class GuardedH11Protocol(_HeadDeadline, H11Protocol):
    """uvicorn's h11 protocol with a deadline for every request head."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request head is complete
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request's head has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_408)
        self.transport.close()


_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class GuardedHttpToolsProtocol(_HeadDeadline, HttpToolsProtocol):
    """uvicorn's httptools protocol (llhttp, in C: a fraction of h11's cost per request) with the same guards as
    ``GuardedH11Protocol``: a deadline for every request head, and heads capped at ``MAX_HEADER_BYTES`` (431)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_head = True  # waiting for (the rest of) a request head
        self._head_bytes = 0
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
            self._disarm()
            self.transport.write(_431)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._in_head = True  # the next request's head has the same deadline
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_408)
        self.transport.close()


def protocol_class(header_timeout: float, *, fast: bool = True) -> type[asyncio.Protocol]:
    """The guarded protocol class for uvicorn: on httptools (``fast``), or on h11."""
    base: type[asyncio.Protocol] = GuardedHttpToolsProtocol if fast else GuardedH11Protocol
    return type(base.__name__, (base,), {"header_timeout": header_timeout})


def uvicorn_config(app: Any, server: ServerConfig, *, host: str, port: int, **kwargs: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(server.header_timeout_seconds),
        timeout_keep_alive=max(1, round(server.keep_alive_seconds)),
        limit_concurrency=server.max_connections or default_max_connections(),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        **kwargs,
    )


class AcceptErrors:
    """A loop exception handler: the first failed accept (out of file descriptors) is logged once with advice;
    the rest are counted and summed up at most once a minute."""

    def __init__(self, summary_every: float = 60.0) -> None:
        self.count = 0
        self.summary_every = summary_every
        self._last_summary = 0.0
        self._reported = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        exc = context.get("exception")
        if message == _ACCEPT_FAILED:
            self.count += 1
            now = time.monotonic()
            if self.count == 1:
                soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
                log.error(
                    "out of file descriptors (%s): new connections wait until some close. Open-file limit %s; "
                    "raise it (ulimit -n / LimitNOFILE) or lower [server] max_connections. Logged once.",
                    exc,
                    soft,
                )
                self._last_summary = now
            elif now - self._last_summary >= self.summary_every:
                log.warning("accept failed %d more times (out of file descriptors)", self.count - self._reported - 1)
                self._reported = self.count - 1
                self._last_summary = now
            return
        if "_start_serving" in message and isinstance(exc, ValueError):
            return  # asyncio's retry timer firing after the listening socket closed (after descriptor exhaustion)
        loop.default_exception_handler(context)


async def serve(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
    """Run a uvicorn server with the accept-error filter installed on its loop (``sockets``: already bound, shared
    by the processes of ``serve --workers``)."""
    asyncio.get_running_loop().set_exception_handler(AcceptErrors())
    await server.serve(sockets=sockets)
