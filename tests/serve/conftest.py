from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serve import create_app


@pytest.fixture
def client(pipeline):
    """The app over the test pipeline; the lifespan runs (models load) on entering."""
    with TestClient(create_app(pipeline.settings, pipeline=pipeline), raise_server_exceptions=False) as c:
        yield c
