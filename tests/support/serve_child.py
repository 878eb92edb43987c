"""``hybrid serve`` in a process of its own, with the fake embedder: for tests of several servers.

    python -m tests.support.serve_child ARGS...

ARGS are ``hybrid serve``'s. The process is a real server on a real port; only the embedder is
the tests' deterministic one (the real model would cost each server seconds to load).
"""

from __future__ import annotations

import sys

import ingest
from tests.support.fake_embedder import FakeEmbedder

if __name__ == "__main__":
    embedder = FakeEmbedder()
    ingest.load_embedder = lambda *args, **kwargs: embedder
    from hybrid.cli import main

    main(["serve", *sys.argv[1:]])
