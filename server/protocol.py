"""uvicorn's httptools protocol with bounds: header size and count, and how long a request may take to arrive."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A request line and headers beyond these answer 431 (an honest client sends under 2 KB).
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 64
REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Refuses oversized heads with 431 and slow requests with 408, before the app sees them."""

    def __init__(self, *args: Any, read_timeout: float = 15.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._header_count = 0
        self._head_done = True
        self._reading = False
        self._deadline: asyncio.TimerHandle | None = None
        # A request whose head and body have not all arrived in this time answers 408 and is
        # dropped: a client sending one byte at a time cannot hold a connection for ever.
        self._read_timeout = read_timeout

    def data_received(self, data: bytes) -> None:
        if not self._reading:
            # The first bytes of a request: from now on the clock runs until it has arrived whole.
            self._reading, self._head_done, self._head_bytes, self._header_count = True, False, 0, 0
            self._deadline = self.loop.call_later(self._read_timeout, self._too_slow)
        if not self._head_done:
            self._head_bytes += len(data)
        super().data_received(data)
        if not self._head_done and (self._head_bytes > MAX_HEAD_BYTES or self._header_count > MAX_HEADERS):
            self._refuse(431, f"the request line and headers exceed {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count <= MAX_HEADERS:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_done = True
        if self._header_count > MAX_HEADERS:
            self._refuse(431, f"more than {MAX_HEADERS} header fields")
            return
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not previous:
            # A proxy: everything but write and close is the transport's own.
            self.cycle.transport = cast(asyncio.Transport, HeadWithBody(self.transport, self.loop))

    def on_message_complete(self) -> None:
        self._stop_clock()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def _stop_clock(self) -> None:
        self._reading = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self._refuse(408, f"the request did not arrive whole within {self._read_timeout:g} s")

    def _refuse(self, status: int, message: str) -> None:
        self._stop_clock()
        if self.transport.is_closing():
            return
        body = message.encode()
        # Before its headers are complete, self.cycle is still the previous request's.
        current = self.cycle if self._head_done else None
        if current is None or not current.response_started:
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, REASONS[status], len(body), body)
            )
        if current is not None:
            current.disconnected = True
            current.message_event.set()
        self.transport.close()


class HeadWithBody:
    """A response's transport as uvicorn's cycle sees it: the status line and headers (its first
    write) wait for the body's first bytes, so that an answer leaves in one system call and one TCP
    segment, not two. Whatever is held goes out at the end of the loop's turn at the latest (a HEAD
    answer has no body to carry it)."""

    __slots__ = ("_transport", "_loop", "_head", "_first")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._first = True

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._head = data
            self._loop.call_soon(self._flush)
            return
        head, self._head = self._head, None
        self._transport.write(data if head is None else head + data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
