"""What a request may ask for: the bounds shared by the CLI, the Python API and the HTTP schemas.

Every number that reaches SQLite, FAISS or the model from outside is bounded here once, so
that a request can neither overflow a 64-bit column (a page of 2**63) nor ask for work no
answer needs.
"""

from __future__ import annotations

from ingest import MAX_PAGE

MAX_QUESTION_CHARS = 4000  # a question or search query, in characters
K_MIN, K_MAX = 1, 50  # passages retrieved per question
MAX_NEW_TOKENS = 2048  # the longest reply any supported model is asked for, in tokens

__all__ = ["K_MAX", "K_MIN", "MAX_NEW_TOKENS", "MAX_PAGE", "MAX_QUESTION_CHARS"]
