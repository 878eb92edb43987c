"""FastAPI dependencies: settings (overridable in tests) and the loaded pipeline."""

from __future__ import annotations

from functools import lru_cache

from fastapi import Request

from hybrid import NotReadyError, Pipeline, Settings, load_settings


@lru_cache
def get_settings() -> Settings:
    """Settings from hybrid.toml and HYBRID_* variables, read once (tests override this)."""
    return load_settings()


def get_pipeline(request: Request) -> Pipeline:
    """The pipeline the lifespan loaded; 503 until it is ready."""
    pipeline = getattr(request.app.state, "pipeline", None)
    if pipeline is None or not getattr(request.app.state, "ready", False):
        raise NotReadyError("models are still loading; retry when GET /healthz returns 200")
    return pipeline
