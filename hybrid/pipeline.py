"""The product in one object: ingest documents, tune the style adapter, answer with citations.

``Pipeline`` composes the leaves (``ingest`` for documents and retrieval, ``tune`` for the
adapter and generation) under one ``Settings``. The CLI and the HTTP server are thin faces of
it, and it is equally usable from Python::

    from hybrid import Pipeline, load_settings
    pipe = Pipeline(load_settings())
    pipe.ingest(["reports/"])
    print(pipe.ask("What caused the engine failure?").answer)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ingest
import tune
from hybrid import answering, planning, tuning
from hybrid.adapters import Adapters
from hybrid.collection import Collection
from hybrid.config import Settings
from hybrid.engine import EngineGenerator
from hybrid.errors import HybridError, leaf_errors
from hybrid.generators import Generators
from hybrid.records import Answer, AskOptions

if TYPE_CHECKING:
    from hybrid.engine import Generator
    from hybrid.support import SupportCheck


class Pipeline:
    """Ingest, search, tune and ask over one index and one adapter registry.

    The parts: ``collection`` (the index and its models, ``hybrid.collection``), ``adapters``
    (the registry, tuning, evaluation, export: ``hybrid.adapters``) and ``generators`` (one
    loaded model per adapter: ``hybrid.generators``). A question goes through ``hybrid.planning``
    and then ``hybrid.answering``.

    Args:
        settings: where things live and which models to use.
        embedder: an ``ingest.Embedder`` to use instead of loading ``settings.embedder``
            (tests pass a fake one).
        serving: a long-running server: with ``fast_decode = "auto"`` the generators build
            their fast path in the background (``hybrid.generators``).
    """

    def __init__(self, settings: Settings, *, embedder: ingest.Embedder | None = None, serving: bool = False) -> None:
        self.settings = settings
        self.collection = Collection(settings, embedder=embedder)
        self.adapters = Adapters(settings)
        self.generators = Generators(settings, self.adapters, serving=serving)
        self._support: SupportCheck | None = None

    # -- models and index, loaded once ------------------------------------------------------

    @property
    def embedder(self) -> ingest.Embedder:
        """The embedder: the one the existing index was built with, unless the user chose one."""
        return self.collection.embedder

    def index(self) -> ingest.Index:
        """The index at ``settings.index_location``, opened once (it sees later ingests by itself)."""
        return self.collection.index()

    def reranker(self) -> ingest.Reranker | None:
        """The cross-encoder named by ``settings.search.reranker``, loaded once; None if unset."""
        return self.collection.reranker()

    def reload_index(self) -> int:
        """Bring the open index up to date with its store now; returns the number of chunks.

        A search does this by itself (the index checks the store's generation), so this only
        moves the cost of loading new vectors off the first query after an ingest. The index
        object is kept, never swapped or closed, so searches in flight are unaffected.
        """
        return self.collection.reload()

    def close(self) -> None:
        """Close the index and drop the loaded models; replies in progress stop at their next token."""
        self.collection.close()
        self.generators.close()

    def generator(self, adapter: tune.AdapterVersion | None) -> Generator:
        """The generator for ``adapter`` on its own base model, loaded once (``hybrid.generators``)."""
        return self.generators.get(adapter)

    def house_sentences(self, adapter: tune.AdapterVersion | None) -> frozenset[str]:
        """The boilerplate ``adapter`` was taught (``hybrid.grounding.house_sentences``)."""
        return self.generators.house(adapter)[0]

    def support_check(self) -> SupportCheck:
        """The strict support check (``hybrid.support``) with this pipeline's embedder, made once."""
        if self._support is None:
            from hybrid.support import SupportCheck, min_similarity_for  # numpy: only for answers

            embedder = self.embedder
            self._support = SupportCheck(embedder.embed, min_similarity_for(embedder.name))
        return self._support

    def load(self, adapter: str | None = None) -> None:
        """Load the embedder, the index, the reranker (if set) and the generator now.

        The server calls this at start-up, so a misconfigured model fails the start, not the
        first request.
        """
        _ = self.embedder  # the index alone would load it only at the first search
        self.index()
        self.reranker()
        generator = self.generator(self.adapters.resolve(adapter))
        if isinstance(generator, EngineGenerator):
            generator.probe()  # says whether the engine answers; it may start after the server

    # -- the four verbs ---------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        prune: bool = False,
        progress: Callable[[str], None] | None = None,
        on_progress: Callable[[ingest.IngestProgress], None] | None = None,
    ) -> ingest.IngestReport:
        """Add, update (and with ``prune`` remove) PDFs in the index; incremental by content hash.

        Args:
            progress: called with a line per file; ``on_progress`` with counts, for a bar.
        """
        return self.collection.ingest(paths, prune=prune, progress=progress, on_progress=on_progress)

    def documents(self) -> list[dict]:
        """The stored documents: ``[{"source", "sha256", "pages", "chunks"}]``, by source."""
        return self.collection.documents()

    def remove_documents(self, paths: Sequence[str | Path]) -> list[str]:
        """Remove the documents at ``paths`` (files or folders) from the index; returns their sources."""
        return self.collection.remove(paths)

    def migrate(self, target: str, progress: Callable[[str], None] | None = None) -> ingest.MigrateReport:
        """Copy the embedded index into the PostgreSQL index at ``target`` (``hybrid migrate``)."""
        return self.collection.migrate(target, progress)

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        sources: Sequence[str] | None = None,
        pages: tuple[int | None, int | None] | None = None,
    ) -> list[ingest.Hit]:
        """The ``k`` passages that best match ``query``, best first (``hybrid.retrieval``).

        Args:
            sources: only documents matching one of these paths, file names or globs.
            pages: only pages in this (first, last) range; None leaves an end open.
        """
        return self.collection.search(query, k=k, sources=sources, pages=pages)

    def ask(
        self, question: str, options: AskOptions | None = None, *, cancel: threading.Event | None = None, **choices: Any
    ) -> Answer:
        """Answer ``question``: from retrieved passages with citations, or by rewriting text it supplies.

        First the plan (``hybrid.planning``): the router (``hybrid.router``) sends a request
        that only asks to rewrite, format, summarise or translate text it supplies to the
        adapter without retrieval (``route="style"``). Everything else is retrieved for, and
        refused (``route="refuse"``) when no passage clears the calibrated relevance threshold
        or the question names something the collection never mentions. Then the answering
        line (``hybrid.answering``): generation, the grounding check of each sentence
        (``hybrid.grounding``), the citations, the ``Answer``.

        Args:
            options: an ``AskOptions``, or its fields as keywords (``k=3, strict=True``), which
                override it: ``k``, ``adapter``, ``sources`` and ``pages`` (see ``search``),
                ``strict`` (refuse, with the reason, rather than return any unsupported
                sentence), ``unsupported`` (``drop`` or ``flag``), ``max_new_tokens``.
            cancel: set by another thread when nobody waits for the answer any more (the HTTP
                client went away): generation stops at the next token and frees the model.

        Raises:
            BadRequestError: an empty or too long question, an unknown option or one out of range.
            NotFoundError: the adapter, the base model or the index is missing.
        """
        options = AskOptions.of(options, **choices)
        plan = planning.plan(self, question, options)
        if isinstance(plan, Answer):
            return plan
        return answering.generate(plan, planning.token_limit(plan, options.max_new_tokens, self.settings), options.strict, cancel)

    def ask_stream(
        self, question: str, options: AskOptions | None = None, *, cancel: threading.Event | None = None, **choices: Any
    ) -> Iterator[tuple[str, Any]]:
        """``ask``, yielding the reply's text as it is generated, then the finished answer.

        Yields ``("token", str)`` for each piece of generated text, then one
        ``("answer", Answer)``: the same ``Answer`` that ``ask`` returns, after the grounding
        check and citation repair. The tokens are the raw generation (markers numbered as in
        the prompt, sentences the check later drops included); the final answer is what
        counts. A refusal yields only the answer. With ``strict`` the reply is generated whole
        and checked before anything is shown, so only the answer is yielded: streaming an
        answer that may then be refused would show the ungrounded text anyway.

        The request is checked, retrieval run and the model loaded when this is *called*, so
        every error of ``ask`` (``BadRequestError``, ``NotFoundError``...) raises here, before
        the first item. Closing the iterator early, or setting ``cancel`` (from any thread: a
        server does when the client goes away), stops the generation at the next token. The
        model is never held by the reader (see ``tune.Generator.stream``), so an iterator
        abandoned half-read cannot keep it from other requests.

        Args: as for ``ask``.
        """
        options = AskOptions.of(options, **choices)
        plan = planning.plan(self, question, options)
        if isinstance(plan, Answer):
            return iter([("answer", plan)])
        return answering.stream(plan, planning.token_limit(plan, options.max_new_tokens, self.settings), options.strict, cancel)

    def tune(
        self,
        examples: Sequence[str | Path],
        *,
        with_context: str | Path | None = None,
        progress: Callable[[dict], None] | None = None,
        **options: Any,
    ) -> tune.TuneOutcome:
        """Train a new adapter version on ``examples``: ``Adapters.tune``, optionally with context.

        Args:
            with_context: an index directory: train on the serve-time prompt, each example with
                ``settings.k`` passages from it (relevant ones and ``k // 2`` distractors) and
                a cited reply (``hybrid.context``); meta.json records it under ``context``.
                ``max_length`` then defaults to at least ``hybrid.tuning.CONTEXT_MAX_LENGTH``.
            options: ``Adapters.tune``'s (``name``, ``eval_path``, ``force``, ``from_ref``,
                TuneConfig fields such as ``epochs`` or ``rank``...).
        """
        if with_context is None:
            return self.adapters.tune(examples, progress=progress, **options)
        return tuning.tune_with_context(self.adapters, self.settings, examples, with_context,
                                        embedder=self.collection.loaded_embedder, progress=progress, **options)


__all__ = ["Pipeline", "HybridError", "leaf_errors"]
