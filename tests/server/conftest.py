from __future__ import annotations

import pytest
from cashscore.server.app import create_app
from litestar.testing import TestClient


@pytest.fixture
def client(trained):
    """The app on the tiny trained model, open (no API key), answering a server error as a 500."""
    with TestClient(app=create_app(trained[1], api_key="", admin_key="a"), raise_server_exceptions=False) as c:
        yield c
