"""hybrid: answers grounded in your own documents, written in your own house style.

Public API::

    from hybrid import Pipeline, load_settings
    pipe = Pipeline(load_settings(home="~/.hybrid"))

Names are imported lazily so that ``hybrid --help`` does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Pipeline": "hybrid.pipeline",
    "Settings": "hybrid.config",
    "load_settings": "hybrid.config",
    "is_loopback": "hybrid.config",
    "Answer": "hybrid.records",
    "AskOptions": "hybrid.records",
    "Citation": "hybrid.records",
    "SentenceCheck": "hybrid.records",
    "Hit": "ingest.records",  # the leaf's record, re-exported: serve reaches it through hybrid
    "HybridError": "hybrid.errors",
    "BadRequestError": "hybrid.errors",
    "ConfigError": "hybrid.errors",
    "NotFoundError": "hybrid.errors",
    "NotReadyError": "hybrid.errors",
    "REFUSAL": "hybrid.guidance",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hybrid' has no attribute {name!r}")
