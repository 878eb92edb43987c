"""The HTTP face of ``hybrid.Pipeline``: a FastAPI app built by ``create_app``, served by ``run``."""

from serve.app import create_app
from serve.server import run, server_config

__all__ = ["create_app", "run", "server_config"]
