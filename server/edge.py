"""The ASGI layer around the whole app: request ids, security headers, overload shedding, metrics for every status."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from cashscore.server import metrics

# A caller's own X-Request-ID is echoed when it is this tame; anything else gets a fresh id.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# nginx's convention for a request the client abandoned before the answer: not a server error.
CLIENT_CLOSED = 499
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def request_id(scope: dict[str, Any]) -> str:
    """The id of the request being served (set by `wrap`), for log lines."""
    return str(scope.get("state", {}).get("request_id", "-"))


def wrap(app: Any, max_in_flight: int) -> Any:
    """Put the edge around an ASGI app.

    Args:
        app: the application.
        max_in_flight: requests handled at once; more answer 503 with Retry-After at once instead
            of queueing without bound.

    Returns:
        The wrapped ASGI application.
    """
    in_flight = 0

    async def edge(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal in_flight
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        given = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), b"").decode("latin-1")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        status = 0

        async def capture(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid.encode()), *HEADERS],
                }
            await send(message)

        try:
            if in_flight >= max_in_flight:
                await _overloaded(capture)
                return
            in_flight += 1
            try:
                await app(scope, receive, capture)
            finally:
                in_flight -= 1
        finally:
            path = scope["path"]
            route = path if path in metrics.ROUTES else "other"
            metrics.observe(scope["method"], route, status or CLIENT_CLOSED, time.perf_counter() - started)

    return edge


async def _overloaded(send: Any) -> None:
    body = b'{"status_code":503,"detail":"the server is at capacity; retry in a second"}'
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", b"1"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
