"""A lean HTTP/1.1 client for delivery: kept-alive connections per origin, one request at a time on each, responses
parsed by httptools (llhttp, the parser uvicorn serves with).

Why not httpx on this path: per request httpx spends ~1 ms of CPU in Python (its model objects, cookies, auth and
redirect layers, httpcore's pool), and it gets slower as requests in flight rise; delivery makes one or two calls
per alert, so under a storm that was most of the worker's CPU (see bench/README.md). This client does only what
delivery needs: a method, a URL, headers and a body out; status, headers and a body capped at ``max_body`` back.
Errors are raised as httpx's exception types (``httpx.ConnectError``, ``httpx.RemoteProtocolError``, ...) so that
``opsgenie.classify_exception`` reads them exactly as before. Proxies from the environment are not supported here:
``opsgenie.Client`` keeps using httpx for an origin the environment routes through a proxy.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
import httpx

#: Idle connections are closed after this many seconds: before a server's own keep-alive timeout (uvicorn: 5 s,
#: most load balancers: 60 s) would close them under a request.
KEEPALIVE_EXPIRY = 4.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def ssl_context() -> ssl.SSLContext:
    """Verify like httpx does: SSL_CERT_FILE / SSL_CERT_DIR when set, else certifi's CA bundle."""
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if not cafile and not capath:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:  # pragma: no cover - certifi comes with httpx
            cafile = None
    return ssl.create_default_context(cafile=cafile or None, capath=capath or None)


class _Connection(asyncio.Protocol):
    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = time.monotonic()
        self._answer: asyncio.Future[Answer] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._status = 0
        self._keep_alive = True
        self._headers_done = False

    # --- asyncio.Protocol -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._answer is None:  # nothing asked: the server speaks out of turn; do not reuse this connection
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        self.closed = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is not None and not self._answer.done():
            if self._headers_done and "content-length" not in self._headers and not self._chunked:
                self._finish()  # a body delimited by the end of the connection
            else:
                self._fail(httpx.RemoteProtocolError("the server closed the connection without a complete response"))

    @property
    def _chunked(self) -> bool:
        return "chunked" in self._headers.get("transfer-encoding", "").lower()

    # --- httptools callbacks ----------------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._status = self.parser.get_status_code()
        self._keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self._size < self.max_body:
            self._body.append(body)
        self._size += len(body)

    def on_message_complete(self) -> None:
        self._finish()

    # --- one exchange -----------------------------------------------------------------------------------------
    def _finish(self) -> None:
        if self._answer is not None and not self._answer.done():
            body = b"".join(self._body)[: self.max_body]
            self._answer.set_result(Answer(self._status, self._headers, body))
        if not self._keep_alive:
            self.close()

    def _fail(self, exc: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)

    async def exchange(self, head: bytes, body: bytes | None) -> Answer:
        assert self.transport is not None
        if self.closed or self.transport.is_closing():
            raise httpx.RemoteProtocolError("the connection was closed before the request was sent")
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._headers, self._body, self._size, self._headers_done = {}, [], 0, False
        self.transport.write(head + body if body else head)
        try:
            return await self._answer
        finally:
            self._answer = None
            self.idle_since = time.monotonic()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Origin:
    """Kept-alive connections to one scheme://host:port, at most ``limit`` of them."""

    def __init__(self, scheme: str, host: str, port: int, *, limit: int, max_body: int, connect_timeout: float):
        self.scheme, self.host, self.port = scheme, host, port
        self.limit = limit
        self.max_body = max_body
        self.connect_timeout = connect_timeout
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(limit)
        self._ssl = ssl_context() if scheme == "https" else None
        self._host_header = host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self.max_body),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"could not connect to {self.host}:{self.port} in time") from None
        except OSError as exc:
            raise httpx.ConnectError(f"could not connect to {self.host}:{self.port}: {exc}") from exc
        return conn

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # the most recently used: the least likely to have been closed by the server
            if not conn.closed and now - conn.idle_since < KEEPALIVE_EXPIRY:
                return conn
            conn.close()
        return None

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> Answer:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        async with self._slots:
            conn = self._take_idle() or await self._connect()
            done = False
            try:
                answer = await conn.exchange(head, body)
                done = True
                return answer
            finally:
                if done and not conn.closed:
                    self._idle.append(conn)
                else:
                    conn.close()  # cancelled or failed mid-exchange: its answer may still come; never reuse it

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class Http1Client:
    """Requests to any number of origins, each with its own bounded set of kept-alive connections."""

    def __init__(self, *, limit: int, max_body: int, connect_timeout: float) -> None:
        self.limit = limit
        self.max_body = max_body
        self.connect_timeout = connect_timeout
        self._origins: dict[tuple[str, str, int], Origin] = {}

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Answer:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol(f"cannot send to {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, parts.hostname, port)
        origin = self._origins.get(key)
        if origin is None:
            origin = Origin(
                scheme,
                parts.hostname,
                port,
                limit=self.limit,
                max_body=self.max_body,
                connect_timeout=self.connect_timeout,
            )
            self._origins[key] = origin
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return await origin.request(method, target, headers, body)

    def close(self) -> None:
        for origin in self._origins.values():
            origin.close()
        self._origins.clear()
