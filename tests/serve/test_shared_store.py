"""Many servers, one truth: two real ``hybrid serve`` processes on one PostgreSQL store.

A document uploaded through one is found through the other without a restart; an adapter
version activated through one is the one the other answers with (the activation lives in the
database; the adapter files are on a path both read, as shared storage would be).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import ingest
from hybrid.cli import main
from tests.support.adapters import make_lora_registry
from tests.support.fake_embedder import FakeEmbedder
from tests.support.live_server import free_port, wait_for_job, wait_until_ready
from tests.support.pdfs import make_pdf

ROOT = Path(__file__).resolve().parents[2]
QUESTION = {"question": "How much did revenue grow?"}
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")


@contextmanager
def _server(home: Path, url: str, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "tests.support.serve_child", "--index", url, "--port", str(port)]
    proc = subprocess.Popen(args, cwd=ROOT, env={**env, "HYBRID_HOME": str(home)}, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, lambda: proc.poll() is None, within_s=120)
        yield base
    except RuntimeError:
        proc.kill()
        raise RuntimeError(proc.stderr.read().decode()[-3000:]) from None
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_two_servers_share_documents_and_adapter_activations(
    tmp_path: Path, postgres_url: str, corpus_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = make_lora_registry(tmp_path / "shared-adapters", tiny_model_dir)  # house@v1 active (its file)
    homes = [tmp_path / "a", tmp_path / "b"]
    for home in homes:
        home.mkdir()
        (home / "adapters").symlink_to(shared, target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYBRID_BASE_MODEL": str(tiny_model_dir),
           "HYBRID_MAX_NEW_TOKENS": "12", "HYBRID_MIN_SCORE": "0.2"}
    # The corpus first, so the servers open an index.
    monkeypatch.setattr(ingest, "load_embedder", lambda *a, **k: FakeEmbedder())
    monkeypatch.setenv("HYBRID_HOME", str(homes[0]))
    result = CliRunner().invoke(main, ["ingest", str(corpus_dir), "--index", postgres_url])
    assert result.exit_code == 0, result.output

    with _server(homes[0], postgres_url, env) as one, _server(homes[1], postgres_url, env) as other:
        # Ingest through one server, search through the other.
        new = tmp_path / "lighthouse log.pdf"
        make_pdf(new, ["Lighthouse log. The keeper relit the lamp after the gale at 0400."])
        accepted = httpx.post(f"{one}/v1/documents", files={"file": (new.name, new.read_bytes(), "application/pdf")})
        assert accepted.status_code == 202, accepted.text
        with httpx.Client(base_url=one) as client:
            assert wait_for_job(client, accepted.json()["job"])["status"] == "done"
        hits = httpx.post(f"{other}/v1/search", json={"query": "keeper relit the lamp after the gale", "k": 1}).json()["hits"]
        assert Path(hits[0]["source"]).name == "lighthouse log.pdf"

        # Activate through one server, answer through the other.
        assert httpx.post(f"{other}/v1/query", json=QUESTION, timeout=120).json()["adapter"] == "house@v1"
        activated = httpx.post(f"{one}/v1/adapters/house/activate", json={"version": "v3"})
        assert activated.status_code == 200 and activated.json()["previous"] == "v1"
        answer = httpx.post(f"{other}/v1/query", json=QUESTION, timeout=120).json()
        assert answer["adapter"] == "house@v3" and answer["citations"]
        assert httpx.get(f"{other}/v1/adapters").json()[0]["active"] == "v3"
        # The shared files still say v1: the activation is the database's.
        assert '"version": 1' in (shared / "house" / "active.json").read_text()
