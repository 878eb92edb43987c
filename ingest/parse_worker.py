"""A PDF-parsing worker process: ``python -m ingest.parse_worker``.

Reads one JSON request per line on stdin, ``{"source", "sha256", "config"}``, and writes one
JSON line per request on stdout: ``{"pages": [[page, text], ...], "error", "warnings"}``, or
``{"fatal": message}`` for an error that is not the file's fault (OCR asked for without
Tesseract). It exits at the end of its input, so it ends with the process that started it,
however that one ends (``kill -9`` included: the pipe closes).
"""

from __future__ import annotations

import json
import logging
import sys

from ingest.config import IngestConfig
from ingest.errors import IngestError
from ingest.parse import parse_file


def main() -> int:
    # pypdf logs what it repairs ("EOF marker not found"); unconfigured logging would print it
    # on the ingest's stderr, between the progress lines. Failures come back in the reply.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            parsed = parse_file(request["source"], request["sha256"], IngestConfig(**request["config"]))
            reply = {
                "pages": [[p.page, p.text] for p in parsed.pages],
                "error": parsed.error,
                "warnings": parsed.warnings,
            }
        except IngestError as exc:
            reply = {"fatal": str(exc)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
