"""Training on the serve-time prompt: ``hybrid tune --with-context INDEX``.

``tune_with_context`` trains a new adapter version as ``Adapters.tune`` does, each example first
paired with passages from an index and given a cited reply (``hybrid.context``, RAFT-style), and
records the pairing in the version's meta.json under ``context``. ``ContextAugment`` is the
``augment`` callable ``tune.tune`` calls on the training, then the evaluation, examples.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ingest
from hybrid.collection import Collection
from hybrid.context import ContextReport, Search, check_pairing, pair_with_context
from hybrid.errors import leaf_errors

if TYPE_CHECKING:
    import tune
    from hybrid.adapters import Adapters
    from hybrid.config import Settings
    from tune import Example

logger = logging.getLogger("hybrid")
# Longest training example, in tokens, unless set: k fenced passages of up to 900 characters
# each plus the reply overflow the usual 1,024, and a cut example loses its reply.
CONTEXT_MAX_LENGTH = 2048


def tune_with_context(
    adapters: Adapters,
    settings: Settings,
    examples: Sequence[str | Path],
    index: str | Path,
    *,
    embedder: ingest.Embedder | None = None,
    progress: Callable[[dict], None] | None = None,
    **options: Any,
) -> tune.TuneOutcome:
    """Train on ``examples``, each with ``settings.k`` passages from the index at ``index``
    (relevant ones and ``k // 2`` distractors) and a cited reply; ``options`` as for
    ``Adapters.tune``, ``max_length`` defaulting to at least ``CONTEXT_MAX_LENGTH``.

    Args:
        embedder: the embedder already loaded, if any; the index's own is loaded otherwise.
    """
    if options.get("max_length") is None:
        options["max_length"] = max(settings.tune.max_length, CONTEXT_MAX_LENGTH)
    seed = options.get("seed")
    if ingest.is_postgres(str(index)):
        index_dir, update = str(index).strip(), {"store": str(index).strip()}
    else:
        index_dir = str(Path(index).expanduser().resolve())
        update = {"index": Path(index_dir), "store": None}
    source = Collection(settings.model_copy(update=update), embedder=embedder)
    try:
        augment = ContextAugment(
            lambda question, k: source.search(question, k=k),
            source.index(),
            index_dir=index_dir,
            passages=settings.k,
            distractors=settings.k // 2,
            seed=settings.tune.seed if seed is None else seed,
            log=(lambda line: progress({"message": line})) if progress else logger.info,
        )
        outcome = adapters.tune(examples, progress=progress, augment=augment, **options)
        with leaf_errors():
            return record_context(adapters.registry, outcome, augment)
    finally:
        source.close()


class ContextAugment:
    """The ``augment`` callable for ``tune.tune``: pairs each set of examples, keeps the reports.

    ``tune.tune`` calls it on the training examples, then on the evaluation ones (if any); the
    reports are kept in that order for the adapter's meta.json.

    Args:
        search, index, passages, distractors, refusal_share, seed: see `pair_with_context`.
        index_dir: the index, as recorded in the adapter's meta.
        log: called with one summary line per set of examples.
    """

    def __init__(
        self,
        search: Search,
        index: ingest.Index,
        *,
        index_dir: str,
        passages: int,
        distractors: int,
        refusal_share: float = 0.1,
        seed: int = 0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        check_pairing(passages, distractors, refusal_share)
        self._search, self._index, self._log = search, index, log
        self.settings = {
            "index": index_dir,
            "passages": passages,
            "distractors": distractors,
            "refusal_share": refusal_share,
            "seed": seed,
        }
        self.reports: list[ContextReport] = []

    def __call__(self, examples: Sequence[Example]) -> list[Example]:
        settings = {k: v for k, v in self.settings.items() if k != "index"}
        paired, report = pair_with_context(examples, self._search, self._index, **settings)
        self.reports.append(report)
        if self._log is not None:
            self._log(self.summaries()[-1])
        return paired

    def summaries(self) -> list[str]:
        """One line per set of examples paired so far (training first)."""
        return [r.summary(what) for r, what in zip(self.reports, ("training", "evaluation"))]

    def warnings(self) -> list[str]:
        """A warning per set of examples with examples that train without sources."""
        found = [r.warning(what) for r, what in zip(self.reports, ("training", "evaluation"))]
        return [w for w in found if w]

    def meta(self) -> dict:
        """The settings, then ``training`` and ``evaluation`` counts (None: no such set) and ``warnings``."""
        reports = [r.to_dict() for r in self.reports] + [None, None]
        return {**self.settings, "training": reports[0], "evaluation": reports[1], "warnings": self.warnings()}


def record_context(registry: tune.AdapterRegistry, outcome: tune.TuneOutcome, augment: ContextAugment) -> tune.TuneOutcome:
    """Add the pairing (settings and counts, key ``context``) and its warnings to the new
    version's meta.json, and return the outcome with that version.

    ``tune.tune`` writes meta.json before this can run, so it is written once more.
    """
    version = outcome.version
    meta = replace(version.meta, context=augment.meta(), warnings=[*version.meta.warnings, *augment.warnings()])
    return replace(outcome, version=registry.finalize(version.name, version.version, meta, activate=False))


__all__ = ["CONTEXT_MAX_LENGTH", "ContextAugment", "record_context", "tune_with_context"]
