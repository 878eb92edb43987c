"""The application factory: models load once in the lifespan, never at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from hybrid import Pipeline, Settings, __version__
from hybrid.config import shared_keys
from hybrid.errors import ConfigError
from serve.admin import router as admin_router
from serve.auth import LoopbackWithoutKeys, QueryKeyFirst
from serve.concurrency import GATED_PATHS, Gate, install_gate
from serve.deps import get_settings
from serve.errors import install_error_handlers
from serve.limits import BodyLimit
from serve.metrics import install_metrics
from serve.openai_api import openai_router
from serve.routes import router, v1
from serve.web import router as web_router

logger = logging.getLogger("hybrid.serve")


def create_app(settings: Settings | None = None, *, pipeline: Pipeline | None = None) -> FastAPI:
    """Build the HTTP app.

    Args:
        settings: overrides ``get_settings()`` (default: hybrid.toml and HYBRID_* variables).
        pipeline: a ready-made pipeline (tests pass one with small models); default: built from
            the settings and loaded in the lifespan.

    Raises:
        ConfigError: the query and admin keys are the same (``hybrid.config.shared_keys``).
    """
    if settings is not None and (problem := shared_keys(settings)):
        raise ConfigError(problem)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = app.dependency_overrides.get(get_settings, get_settings)()
        if problem := shared_keys(resolved):
            raise ConfigError(problem)  # the server does not start
        if pipeline is None:
            app.state.pipeline = Pipeline(resolved, serving=True)  # fast_decode "auto" builds the fast path
        else:
            app.state.pipeline = pipeline
        app.state.gate = Gate.from_settings(resolved)
        app.state.settings = resolved
        # Loading takes seconds (embedder, index, generator): off the event loop.
        await run_in_threadpool(app.state.pipeline.load)
        app.state.ready = True
        logger.info("hybrid ready: index %s", resolved.index_description)
        yield
        app.state.ready = False
        app.state.pipeline.close()

    app = FastAPI(title="hybrid", version=__version__, lifespan=lifespan,
                  description="Answers grounded in your documents, in your house style.")
    app.state.ready = False
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings
    install_error_handlers(app)
    # Middleware added later wraps what was added before. A gated request passes, from the
    # outside in: metrics (counts every answer, the gate's 503s included), the body's size and
    # time limits, the key check, then the gate, which reads the whole body before it takes a
    # slot: no slot for a request without a key or with a body still on its way.
    install_gate(app)
    app.state.settings = None
    app.add_middleware(QueryKeyFirst, get_settings=lambda: app.state.settings, paths=GATED_PATHS)
    app.add_middleware(BodyLimit)  # 413 before a large body is read, 408 for one that stalls
    install_metrics(app)
    # Outermost: no request from the network reaches a server without keys (serve.auth).
    app.add_middleware(LoopbackWithoutKeys, get_settings=lambda: app.state.settings)
    app.include_router(router)
    app.include_router(v1)
    app.include_router(admin_router)
    app.include_router(openai_router)
    app.include_router(web_router)
    return app
