"""An answer leaves in one write: head and body together, and nothing held back or out of order."""

from __future__ import annotations

import asyncio
import json
import socket

from cashscore.server.protocol import HeadWithBody
from helpers.applicants import GOOD
from helpers.processes import serve_process


class Recorder:
    """A transport that records what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


def test_the_head_waits_for_the_body_and_goes_out_with_it():
    async def main():
        raw = Recorder()
        wrapped = HeadWithBody(raw, asyncio.get_running_loop())
        wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
        assert raw.writes == []
        wrapped.write(b"body")
        wrapped.write(b"more")
        await asyncio.sleep(0)
        return raw.writes, wrapped.get_extra_info("peername")

    writes, extra = asyncio.run(main())
    assert writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]
    assert extra == "extra peername"  # everything else is the transport's own


def test_a_head_without_a_body_leaves_at_the_end_of_the_turn_and_before_a_close():
    async def main():
        raw = Recorder()
        HeadWithBody(raw, asyncio.get_running_loop()).write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await asyncio.sleep(0)
        closing = Recorder()
        wrapped = HeadWithBody(closing, asyncio.get_running_loop())
        wrapped.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
        wrapped.close()
        await asyncio.sleep(0)
        return raw.writes, closing.writes, closing.closed

    alone, closed, was_closed = asyncio.run(main())
    assert alone == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    assert closed == [b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"] and was_closed


def read_answers(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """`count` HTTP/1.1 answers (head, body) read off a socket, by content-length."""
    data, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, data = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        while len(data) < length:
            data += sock.recv(65536)
        answers.append((head, data[:length]))
        data = data[length:]
    return answers


def test_a_real_server_answers_posts_heads_and_pipelined_requests_whole_and_in_order(trained):
    body = json.dumps(GOOD).encode()
    post = b"POST /v1/score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    with serve_process(trained[1]) as (base, _):
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            # Three requests in one send: each answer whole, in the order asked.
            s.sendall(post + b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n" + post)
            first, live, third = read_answers(s, 3)
            assert first[0].startswith(b"HTTP/1.1 200") and json.loads(first[1])["decision"] in ("approve", "deny")
            assert live[0].startswith(b"HTTP/1.1 200") and json.loads(live[1]) == {"status": "alive"}
            assert json.loads(third[1]) == json.loads(first[1])
            # HEAD has no body to carry its head: it still arrives, and the connection goes on.
            s.sendall(b"HEAD /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            assert data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n")
            s.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            ((head, answer),) = read_answers(s, 1)
            assert head.startswith(b"HTTP/1.1 200") and json.loads(answer) == {"status": "alive"}
            assert s.recv(65536) == b""  # closed after the answer, as asked
