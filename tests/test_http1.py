"""The lean HTTP/1.1 client of delivery (app/http1.py), against raw servers on 127.0.0.1: what it sends, how it
reads every kind of response body, when it reuses a connection and when it must not, and how it fails."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from alertbridge.http1 import Http1Client
from alertbridge.opsgenie import Client, Request

pytestmark = pytest.mark.anyio

Handler = Callable[[bytes, asyncio.StreamWriter], object]


@asynccontextmanager
async def raw_server(answers: list[bytes], *, close_after: bool = False) -> AsyncIterator[dict]:
    """Answers request i (on whatever connection) with ``answers[i]``; records heads and connections."""
    state: dict = {"heads": [], "connections": 0, "bodies": []}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state["connections"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                state["heads"].append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                state["bodies"].append(await reader.readexactly(length))
                writer.write(answers[len(state["heads"]) - 1])
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            handlers.discard(asyncio.current_task())  # type: ignore[arg-type]

    handlers: set[asyncio.Task] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        await handle(reader, writer)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    state["url"] = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        server.close()
        for _ in range(100):  # the client closed its side: the handlers see it and close theirs
            if not handlers:
                break
            await asyncio.sleep(0.01)
        for task in list(handlers):
            task.cancel()
        await server.wait_closed()


def ok(body: bytes = b'{"result":"Request will be processed"}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def test_sends_the_request_and_reuses_the_kept_alive_connection() -> None:
    async with raw_server([ok(extra=b"X-Request-ID: r1\r\n"), ok()]) as srv:
        client = Http1Client(limit=4, max_body=1024, connect_timeout=5)
        first = await client.request("POST", f"{srv['url']}/v2/alerts?x=1", {"Authorization": "GenieKey k"}, b"{}")
        second = await client.request("POST", f"{srv['url']}/v2/alerts", {}, b'{"a":1}')
        client.close()
    assert (first.status, first.headers["x-request-id"], first.body) == (
        202,
        "r1",
        b'{"result":"Request will be processed"}',
    )
    assert second.status == 202
    assert srv["connections"] == 1  # kept alive
    head = srv["heads"][0].decode()
    assert head.startswith("POST /v2/alerts?x=1 HTTP/1.1\r\n")
    assert "Authorization: GenieKey k\r\n" in head and "Content-Length: 2\r\n" in head and "Host: 127.0.0.1:" in head
    assert srv["bodies"] == [b"{}", b'{"a":1}']


async def test_chunked_and_close_delimited_bodies_and_the_cap() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000
    async with raw_server([chunked]) as srv:
        client = Http1Client(limit=1, max_body=1024, connect_timeout=5)
        a = await client.request("GET", f"{srv['url']}/v2/alerts/requests/1", {}, None)
        client.close()
    async with raw_server([until_close], close_after=True) as srv2:
        client = Http1Client(limit=1, max_body=1024, connect_timeout=5)
        b = await client.request("GET", f"{srv2['url']}/x", {}, None)
        client.close()
    assert (a.status, a.body) == (200, b"hello world")
    assert "content-length" not in srv["heads"][0].decode().lower()  # a GET without a body says nothing of one
    assert (b.status, len(b.body)) == (200, 1024)  # read to the end of the connection, kept up to the cap


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    async with raw_server([ok(), ok()], close_after=True) as srv:
        client = Http1Client(limit=1, max_body=1024, connect_timeout=5)
        await client.request("POST", f"{srv['url']}/a", {}, b"{}")
        await asyncio.sleep(0.1)  # the server's close arrives
        second = await client.request("POST", f"{srv['url']}/a", {}, b"{}")
        client.close()
    assert second.status == 202 and srv["connections"] == 2


async def test_failures_are_httpx_errors_that_classify_as_before() -> None:
    async with raw_server([b"HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\nshort"], close_after=True) as srv:
        client = Http1Client(limit=1, max_body=1024, connect_timeout=5)
        with pytest.raises(httpx.RemoteProtocolError):
            await client.request("POST", f"{srv['url']}/a", {}, b"{}")
        client.close()
    async with raw_server([b"NOT HTTP AT ALL\r\n\r\n"]) as srv:
        client = Http1Client(limit=1, max_body=1024, connect_timeout=5)
        with pytest.raises(httpx.RemoteProtocolError):
            await client.request("POST", f"{srv['url']}/a", {}, b"{}")
        client.close()
    async with raw_server([]) as srv:
        port = srv["url"].rsplit(":", 1)[1]
    client = Http1Client(limit=1, max_body=1024, connect_timeout=5)
    with pytest.raises(httpx.ConnectError):
        await client.request("POST", f"http://127.0.0.1:{port}/a", {}, b"{}")  # nobody listens any more
    with pytest.raises(httpx.UnsupportedProtocol):
        await client.request("POST", "ftp://127.0.0.1/a", {}, b"{}")


async def test_a_timeout_abandons_the_connection() -> None:
    async with raw_server([b""]) as srv:  # never answers
        client = Client(timeout=0.3, max_in_flight=2)
        with pytest.raises(httpx.TimeoutException):
            await client.send(Request("POST", f"{srv['url']}/v2/alerts", {"message": "m"}, {}), "key")
        assert client._lean is not None and not any(o._idle for o in client._lean._origins.values())
        await client.aclose()


async def test_at_most_limit_requests_in_flight_per_origin() -> None:
    in_flight, most = 0, 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal in_flight, most
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                in_flight += 1
                most = max(most, in_flight)
                await asyncio.sleep(0.05)
                in_flight -= 1
                writer.write(ok())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            done.append(1)

    done: list[int] = []
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/a"
    client = Http1Client(limit=3, max_body=1024, connect_timeout=5)
    answers = await asyncio.gather(*(client.request("GET", url, {}, None) for _ in range(10)))
    client.close()
    for _ in range(100):
        if len(done) == 3:
            break
        await asyncio.sleep(0.01)
    server.close()
    await server.wait_closed()
    assert [a.status for a in answers] == [202] * 10
    assert most == 3
