"""Optional second-stage ranking with a local cross-encoder.

A cross-encoder reads the question and a passage together, so it judges relevance better than
comparing two separately computed embeddings, at the cost of one forward pass per passage.
There is no embedded default: point `search.reranker` at a local model directory (for example
a copy of cross-encoder/ms-marco-MiniLM-L-6-v2) or a hub id already in the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ingest.errors import IngestError
from ingest.records import Hit


class Reranker:
    """A sentence-transformers `CrossEncoder` on the CPU.

    Args:
        spec: a local model directory or a Hugging Face id.
        allow_download: let an id that is not cached be downloaded.

    Raises:
        IngestError: the model cannot be found or loaded.
    """

    def __init__(self, spec: str, *, allow_download: bool = False) -> None:
        from sentence_transformers import CrossEncoder

        local = Path(spec).expanduser()
        try:
            self.model = CrossEncoder(
                str(local) if local.is_dir() else spec,
                device="cpu",
                local_files_only=not allow_download,
            )
        except Exception as exc:  # many types for a missing or malformed model
            raise IngestError(
                f"cannot load the reranker {spec!r}: {exc}; search.reranker must be a local "
                "cross-encoder directory or a cached hub id (or empty to rerank nothing)"
            ) from exc
        self.name = spec

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """The cross-encoder's relevance of each of `texts` to `query` (higher is better)."""
        if not texts:
            return []
        return [float(x) for x in self.model.predict([(query, t) for t in texts], show_progress_bar=False)]

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """`hits` reordered by the cross-encoder's relevance, best first; scores unchanged."""
        if len(hits) < 2:
            return list(hits)
        scores = self.scores(query, [h.text for h in hits])
        order = sorted(range(len(hits)), key=lambda i: -float(scores[i]))
        return [hits[i] for i in order]
