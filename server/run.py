"""Run the app under uvicorn with the given settings: one process, or several sharing one socket."""

from __future__ import annotations

import asyncio
import functools
import os
import tempfile
from typing import cast

import uvicorn
from cashscore.server import metrics
from cashscore.server.app import create_app
from cashscore.server.protocol import BoundedHttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from cashscore.core.config import Settings


def serve(settings: Settings) -> None:
    """Serve until interrupted; the settings reach every worker as an argument, never through the environment.

    Args:
        settings: everything the app and uvicorn need (paths, server limits, keys).
    """
    server = settings.server
    # uvicorn builds its protocol by calling this, as it would the class.
    bounded = functools.partial(BoundedHttpToolsProtocol, read_timeout=server.read_timeout)
    protocol = cast("type[asyncio.Protocol]", bounded)
    conf = uvicorn.Config(
        functools.partial(create_app, settings=settings),
        factory=True,
        host=server.host,
        port=server.port,
        workers=server.workers,
        # Header size and count, and how long a request may take to arrive.
        http=protocol,
        timeout_keep_alive=5,
        log_level=server.log_level,
        access_log=False,  # applicant data travels in query strings: never log them
    )
    if server.workers > 1:
        # Each worker keeps its metrics in files here; /metrics in any of them adds them all up.
        # Set before the workers start, as prometheus_client reads it when first imported.
        with tempfile.TemporaryDirectory(prefix="cashscore-metrics-") as folder:
            os.environ[metrics.MULTIPROCESS] = folder
            try:
                Multiprocess(conf, sockets=[conf.bind_socket()]).run()
            finally:
                os.environ.pop(metrics.MULTIPROCESS, None)
    else:
        uvicorn.Server(conf).run()
