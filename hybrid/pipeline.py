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

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ingest
import tune
from hybrid import answering, guidance, retrieval, router
from hybrid.adapters import Adapters
from hybrid.answering import Plan, refusal
from hybrid.config import Settings
from hybrid.context import ContextAugment, record_context
from hybrid.errors import BadRequestError, HybridError, leaf_errors
from hybrid.generators import Generators
from hybrid.limits import K_MAX, K_MIN, MAX_QUESTION_CHARS
from hybrid.prompt import build_evidence_messages, build_messages, build_style_messages, neutralise
from hybrid.records import Answer, AskOptions

if TYPE_CHECKING:
    from hybrid.support import SupportCheck

logger = logging.getLogger("hybrid")
# Longest training example, in tokens, with --with-context unless set: k fenced passages of up to
# 900 characters each plus the reply overflow the usual 1,024, and a cut example loses its reply.
CONTEXT_MAX_LENGTH = 2048


class Pipeline:
    """Ingest, search, tune and ask over one index and one adapter registry.

    Args:
        settings: where things live and which models to use.
        embedder: an ``ingest.Embedder`` to use instead of loading ``settings.embedder``
            (tests pass a fake one).
        serving: a long-running server: with ``fast_decode = "auto"`` the generators build
            their fast path in the background (``hybrid.generators``).
    """

    def __init__(self, settings: Settings, *, embedder: ingest.Embedder | None = None, serving: bool = False) -> None:
        self.settings = settings
        self._embedder = embedder
        self._index: ingest.Index | None = None
        self._reranker: ingest.Reranker | None = None
        self._support: SupportCheck | None = None
        self._lock = threading.Lock()  # guards the index, held only briefly
        self._load_lock = threading.Lock()  # one reranker load at a time
        # The embedder's own: it may load inside Index.open, which runs under self._lock.
        self._embedder_lock = threading.Lock()
        self.adapters = Adapters(settings)
        self.generators = Generators(settings, self.adapters, serving=serving)

    # -- models and index, loaded once ------------------------------------------------------

    @property
    def embedder(self) -> ingest.Embedder:
        """The embedder: the one the existing index was built with, unless the user chose one."""
        if self._embedder is None:
            with self._embedder_lock, leaf_errors():
                if self._embedder is None:
                    self._embedder = ingest.load_embedder(
                        self._embedder_spec(),
                        batch_size=self.settings.ingest.batch_size,
                        allow_download=self.settings.allow_download,
                        dtype=self.settings.ingest.embed_dtype,
                    )
        return self._embedder

    def _embedder_spec(self) -> str:
        if "embedder" in self.settings.model_fields_set:
            return self.settings.embedder
        try:
            return ingest.read_manifest(self.settings.index_dir)["embedder"]
        except ingest.IndexNotFoundError:
            return self.settings.embedder

    def _index_embedder(self) -> ingest.Embedder:
        """The embedder to open the index with, its model loaded only once a text needs embedding.

        When the index records the embedder that would be loaded, its name and size come from
        there: opening the index, listing its documents or an ingest that finds nothing changed
        then never load the model.
        """
        if self._embedder is not None:
            return self._embedder
        with leaf_errors():
            spec = self._embedder_spec()
            try:
                recorded = ingest.read_manifest(self.settings.index_dir)
            except ingest.IndexNotFoundError:
                recorded = {}
        name, dim = recorded.get("embedder"), recorded.get("dim")
        if name == ingest.embedder_name(spec) and isinstance(dim, int):
            return ingest.LazyEmbedder(lambda: self.embedder, name=name, dim=dim)
        return ingest.LazyEmbedder(lambda: self.embedder)  # a new index, or another embedder

    def index(self) -> ingest.Index:
        """The index at ``settings.index_dir``, opened once (it sees later ingests by itself)."""
        if self._index is None:
            embedder = self._index_embedder()
            with self._lock, leaf_errors():
                if self._index is None:
                    self._index = ingest.Index.open(self.settings.index_dir, embedder)
        return self._index

    def reload_index(self) -> int:
        """Bring the open index up to date with its store now; returns the number of chunks.

        A search does this by itself (the index checks the store's generation), so this only
        moves the cost of loading new vectors off the first query after an ingest. The index
        object is kept, never swapped or closed, so searches in flight are unaffected.
        """
        with leaf_errors():
            return len(self.index())

    def close(self) -> None:
        """Close the index and drop the loaded models; replies in progress stop at their next token."""
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None
        self.generators.close()

    def generator(self, adapter: tune.AdapterVersion | None) -> tune.Generator:
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
        self.generator(self.adapters.resolve(adapter))

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
        with leaf_errors():
            report = ingest.ingest_paths(
                paths,
                self.settings.index_dir,
                self._index_embedder(),  # loads the model only if a file needs embedding
                self.settings.ingest,
                prune=prune,
                progress=progress,
                on_progress=on_progress,
            )
        return report  # an open Index notices the new generation and reloads by itself

    def documents(self) -> list[dict]:
        """The stored documents: ``[{"source", "sha256", "pages", "chunks"}]``, by source."""
        with leaf_errors():
            return self.index().documents()

    def remove_documents(self, paths: Sequence[str | Path]) -> list[str]:
        """Remove the documents at ``paths`` (files or folders) from the index; returns their sources."""
        with leaf_errors():
            return ingest.remove_documents(self.index(), paths)

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
        query = _checked_text(query, "query")
        k = _checked_k(self.settings.k if k is None else k)
        reranker = self.reranker()
        with leaf_errors():
            return retrieval.search(self.index(), query, k=k, config=self.settings.search, reranker=reranker,
                                    sources=sources, pages=pages)

    def reranker(self) -> ingest.Reranker | None:
        """The cross-encoder named by ``settings.search.reranker``, loaded once; None if unset."""
        spec = self.settings.search.reranker
        if not spec:
            return None
        if self._reranker is None:
            with self._load_lock, leaf_errors():
                if self._reranker is None:
                    self._reranker = ingest.Reranker(spec, allow_download=self.settings.allow_download)
        return self._reranker

    def ask(
        self, question: str, options: AskOptions | None = None, *, cancel: threading.Event | None = None, **choices: Any
    ) -> Answer:
        """Answer ``question``: from retrieved passages with citations, or by rewriting text it supplies.

        The router (``hybrid.router``) sends a request that only asks to rewrite, format,
        summarise or translate text it supplies to the adapter without retrieval
        (``route="style"``). Everything else is retrieved for, and refused (``route="refuse"``)
        when no passage clears the calibrated relevance threshold or the question names
        something the collection never mentions. Each answer sentence then goes through the
        grounding check (``hybrid.grounding``), and the reply becomes an ``Answer``
        (``hybrid.answering``).

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
        plan = self._plan(question, options)
        if isinstance(plan, Answer):
            return plan
        return answering.generate(plan, self._tokens(plan, options.max_new_tokens), options.strict, cancel)

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
        plan = self._plan(question, options)
        if isinstance(plan, Answer):
            return iter([("answer", plan)])
        return answering.stream(plan, self._tokens(plan, options.max_new_tokens), options.strict, cancel)

    def _tokens(self, plan: Plan, requested: int | None) -> int:
        """The reply's token limit: the request's or ``max_new_tokens``; for an answer from
        evidence sentences at most ``evidence_tokens``, plus what the adapter's house frame
        (opening, labels, closing) takes, so the frame is never what gets cut."""
        limit = requested or self.settings.max_new_tokens
        if plan.evidence:
            frame = plan.frame
            extra = plan.generator.count_tokens(" ".join([frame.opening, *frame.labels, frame.closing])) if frame else 0
            limit = min(limit, self.settings.evidence_tokens + extra)
        return limit

    def _plan(self, question: str, options: AskOptions) -> Plan | Answer:
        """Route and retrieve: a plan for the generation, or the refusal when there is nothing to say."""
        question = _checked_text(question, "question")
        version = self.adapters.resolve(options.adapter, allow_path=options.allow_path)
        adapter_ref = version.ref if version is not None else None
        decision = router.route(question)
        drop = options.unsupported == "drop"
        if decision.route == "style":
            logger.info("style: %s", decision.reason)
            return Plan(question=question, route="style", reason=decision.reason, generator=self.generator(version),
                        messages=build_style_messages(question), hits=[], supplied=decision.supplied, adapter=adapter_ref,
                        retrieve_ms=0.0, drop=drop, house=self.house_sentences(version))
        started = time.perf_counter()
        hits = self.search(question, k=options.k, sources=options.sources, pages=options.pages)
        retrieve_ms = (time.perf_counter() - started) * 1000
        threshold = guidance.min_score_for(self.embedder.name, self.settings.min_score)
        missing = [name for name in guidance.names_in(question) if not self.index().mentions(name)]
        relevance = guidance.decide(hits, threshold, missing)
        logger.info("%s: %s", "answer" if relevance.answer else "refuse", relevance.reason)
        if not relevance.answer:
            return refusal(adapter_ref, relevance.reason, retrieve_ms)
        # Retrieved text is data: sentences that address the assistant never reach the model,
        # the citations or the extractive fallback (hybrid.prompt.neutralise).
        relevant = [neutralise(h) for h in hits if h.score >= threshold]
        house, frame = self.generators.house(version)
        plan = Plan(question=question, route="rag", reason=relevance.reason, generator=self.generator(version),
                    messages=build_messages(question, relevant), hits=relevant, supplied=None, adapter=adapter_ref,
                    retrieve_ms=retrieve_ms, drop=drop, house=house, check=self.support_check(), frame=frame)
        if self.settings.evidence:
            # Evidence first: the model sees only the sentences that answer (hybrid.evidence).
            from hybrid import evidence  # numpy: only for answers

            started = time.perf_counter()
            reranker = self.reranker()
            chosen = evidence.select(question, relevant, self.embedder.embed, self.settings.evidence,
                                     reranker.scores if reranker is not None else None)
            if chosen:
                shown = evidence.group(chosen)
                plan = dataclasses.replace(plan, messages=build_evidence_messages(question, shown), hits=shown, evidence=chosen,
                                           retrieve_ms=plan.retrieve_ms + (time.perf_counter() - started) * 1000)
        return plan

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
                ``max_length`` then defaults to at least ``CONTEXT_MAX_LENGTH``.
            options: ``Adapters.tune``'s (``name``, ``eval_path``, ``force``, ``from_ref``,
                TuneConfig fields such as ``epochs`` or ``rank``...).
        """
        if with_context is None:
            return self.adapters.tune(examples, progress=progress, **options)
        if options.get("max_length") is None:
            options["max_length"] = max(self.settings.tune.max_length, CONTEXT_MAX_LENGTH)
        seed = options.get("seed")
        index_dir = Path(with_context).expanduser().resolve()
        source = Pipeline(self.settings.model_copy(update={"index": index_dir}), embedder=self._embedder)
        try:
            augment = ContextAugment(
                lambda question, k: source.search(question, k=k),
                source.index(),
                index_dir=str(index_dir),
                passages=self.settings.k,
                distractors=self.settings.k // 2,
                seed=self.settings.tune.seed if seed is None else seed,
                log=(lambda line: progress({"message": line})) if progress else logger.info,
            )
            outcome = self.adapters.tune(examples, progress=progress, augment=augment, **options)
            with leaf_errors():
                return record_context(self.adapters.registry, outcome, augment)
        finally:
            source.close()


def _checked_text(text: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadRequestError(f"the {what} is empty; pass some text to search for")
    if len(text) > MAX_QUESTION_CHARS:
        raise BadRequestError(f"the {what} has {len(text)} characters; the limit is {MAX_QUESTION_CHARS}")
    return text.strip()


def _checked_k(k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not K_MIN <= k <= K_MAX:
        raise BadRequestError(f"k must be a whole number from {K_MIN} to {K_MAX}, got {k!r}")
    return k


__all__ = ["Pipeline", "HybridError", "leaf_errors"]
