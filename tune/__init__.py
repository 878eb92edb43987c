"""tune: house-style examples -> LoRA adapter; base model loading and generation.

A leaf package: it imports neither ``ingest``, ``hybrid`` nor ``serve``. Reading and checking
examples and the adapter registry need no torch; the names that do (models, generation,
training) and the dataset check (numpy) are imported on first use, so ``import tune`` stays
light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tune.config import TuneConfig
from tune.data import Example, Problem, read_examples
from tune.errors import (
    AdapterNotFoundError,
    DataError,
    DatasetError,
    ExportError,
    InvalidAdapterNameError,
    ModelNotFoundError,
    TuneConfigError,
    TuneError,
)
from tune.registry import (
    ADAPTER_NAME_RE,
    ActivationStore,
    ActiveFiles,
    AdapterMeta,
    AdapterRegistry,
    AdapterVersion,
    FirstOf,
    parse_ref,
)

if TYPE_CHECKING:
    from tune.check import CheckReport, check_examples
    from tune.evaluate import StyleReport, evaluate_adapter
    from tune.export import ExportResult, export_adapter, recorded_base_model
    from tune.generate import GenerationResult, Generator
    from tune.models import DEFAULT_BASE_MODEL, load_model, resolve_base_model
    from tune.tokens import load_tokenizer
    from tune.train import TrainResult, train_adapter
    from tune.workflow import TuneOutcome, tune

# Names that pull in torch/transformers/peft (or numpy, for the check), and the module each lives in.
_LAZY = {
    "CheckReport": "tune.check",
    "check_examples": "tune.check",
    "DEFAULT_BASE_MODEL": "tune.models",
    "resolve_base_model": "tune.models",
    "load_model": "tune.models",
    "load_tokenizer": "tune.tokens",
    "Generator": "tune.generate",
    "GenerationResult": "tune.generate",
    "TrainResult": "tune.train",
    "train_adapter": "tune.train",
    "TuneOutcome": "tune.workflow",
    "StyleReport": "tune.evaluate",
    "evaluate_adapter": "tune.evaluate",
    "ExportResult": "tune.export",
    "export_adapter": "tune.export",
    "recorded_base_model": "tune.export",
    "tune": "tune.workflow",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'tune' has no attribute {name!r}")


__all__ = [
    "ADAPTER_NAME_RE",
    "DEFAULT_BASE_MODEL",
    "AdapterNotFoundError",
    "AdapterMeta",
    "ActivationStore",
    "ActiveFiles",
    "AdapterRegistry",
    "AdapterVersion",
    "CheckReport",
    "DataError",
    "DatasetError",
    "Example",
    "ExportError",
    "ExportResult",
    "FirstOf",
    "GenerationResult",
    "Generator",
    "InvalidAdapterNameError",
    "ModelNotFoundError",
    "Problem",
    "StyleReport",
    "TrainResult",
    "TuneConfig",
    "TuneConfigError",
    "TuneError",
    "TuneOutcome",
    "check_examples",
    "evaluate_adapter",
    "export_adapter",
    "load_model",
    "load_tokenizer",
    "parse_ref",
    "read_examples",
    "recorded_base_model",
    "resolve_base_model",
    "train_adapter",
    "tune",
]
