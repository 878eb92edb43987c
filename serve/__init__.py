"""The HTTP face of ``hybrid.Pipeline``: a FastAPI app built by ``create_app``."""

from serve.app import create_app

__all__ = ["create_app"]
