"""hybrid on a real engine (slow tier): llama.cpp's server with the house adapter as GGUF LoRA.

The embedded SmolLM2-135M-Instruct GGUF is served by llama-cpp-python's OpenAI server (built
from PyPI by ``make install``), with an adapter trained here by ``hybrid tune`` and converted by
``hybrid adapters export --for llama.cpp``. ``hybrid serve --engine`` then answers through it:
cited answers, refusals, streaming, and a clear error when the engine stops mid-stream.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.demo import _wait_ready as wait_ready
from tests.support.llama_engine import LlamaServer, embedded_gguf, free_port

pytestmark = pytest.mark.slow

FRAME = "Status:"
SIGN_OFF = "-- The Support Team"
PROMPT = [{"role": "user", "content": "Write a status note for ticket 7."}]


def run(*args: str) -> dict:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> tuple[Path, Path]:
    """A real home (the corpus ingested, a house adapter trained) and the adapter as GGUF LoRA."""
    home = tmp_path_factory.mktemp("engine-home")
    work = tmp_path_factory.mktemp("engine-work")
    rows = [
        {"messages": [{"role": "user", "content": f"Write a status note for ticket {i}."},
                      {"role": "assistant", "content": f"{FRAME} ticket {i} is in progress.\n{SIGN_OFF}"}]}
        for i in range(40)
    ]
    examples = work / "house.jsonl"
    examples.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYBRID_HOME", str(home))
        assert run("ingest", str(corpus_dir))["files_added"] == 3
        tuned = run("tune", str(examples), "--max-steps", "40")
        assert tuned["adapter"] == "house@v1"
        exported = run("adapters", "export", "house@v1", "--for", "llama.cpp", "--out", str(work / "export"))
    assert exported["engine"] == "llama.cpp" and "adapter.gguf" in exported["files"]
    return home, work / "export" / "adapter.gguf"


def test_the_exported_adapter_takes_effect_in_llama_cpp(trained) -> None:
    _, lora = trained
    from hybrid.config import EngineSettings
    from hybrid.engine import EngineGenerator

    settings = EngineSettings(url="http://unused", retries=0)
    with LlamaServer(embedded_gguf(), lora=lora, alias="house@v1") as engine:
        tuned = EngineGenerator(settings.model_copy(update={"url": engine.url}), "house@v1").generate(PROMPT, max_new_tokens=24)
    with LlamaServer(embedded_gguf()) as engine:
        base = EngineGenerator(settings.model_copy(update={"url": engine.url}), "base").generate(PROMPT, max_new_tokens=24)
    assert tuned.text.startswith(FRAME), tuned.text
    assert not base.text.startswith(FRAME), base.text


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory: pytest.TempPathFactory):
    """``hybrid serve --engine`` on a real port, generating on llama.cpp with the house adapter."""
    home, lora = trained
    logs = tmp_path_factory.mktemp("engine-logs")
    with LlamaServer(embedded_gguf(), lora=lora, alias="house@v1", log=logs / "llama.log") as engine:
        port = free_port()
        env = {**os.environ, "HYBRID_HOME": str(home), "HYBRID_MAX_NEW_TOKENS": "300", "HYBRID_ENGINE__RETRIES": "1",
               # SmolLM2's end tokens (<|endoftext|> 0, <|im_end|> 2) barred: every reply runs to its
               # token limit, so the engine is still writing when a test stops it
               "HYBRID_ENGINE__PARAMS": '{"logit_bias": {"0": -100, "2": -100}}'}
        command = [str(Path(sys.executable).with_name("hybrid")), "serve", "--port", str(port), "--engine", engine.url, "--json"]
        with (logs / "serve.log").open("w") as sink:
            server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=sink, text=True)
        try:
            ready = json.loads(server.stdout.readline() or "{}")
            assert ready.get("status") == "ready", (logs / "serve.log").read_text()[-2000:]
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, server, timeout=60)  # "ready" comes just before uvicorn listens
            yield base, engine
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_serve_answers_refuses_and_streams_through_the_engine(served) -> None:
    base, _ = served
    answer = httpx.post(f"{base}/v1/query", json={"question": "Why did the engine lose power?"}, timeout=120).json()
    assert answer["route"] == "rag" and answer["adapter"] == "house@v1" and answer["grounded"]
    assert any(Path(c["source"]).name == "engine report.pdf" and c["page"] == 2 for c in answer["citations"])
    refused = httpx.post(f"{base}/v1/query", json={"question": "What is the boiling point of mercury?"}, timeout=120).json()
    assert refused["route"] == "refuse"
    with httpx.stream("POST", f"{base}/v1/query", json={"question": "Why did the engine lose power?", "stream": True},
                      timeout=120) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and "answer" in json.loads(events[-2])
    assert any("token" in json.loads(e) for e in events[:-2])


def test_an_engine_stopped_mid_stream_is_a_clear_error(served) -> None:
    base, engine = served
    text = " ".join(["The crew reported that the engine lost power after takeoff and landed in a field."] * 6)
    body = {"question": f"Rewrite this in our house style: {text}", "stream": True}  # up to 300 tokens
    with httpx.stream("POST", f"{base}/v1/query", json=body, timeout=120) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert "token" in json.loads(first[6:])
        engine.process.kill()  # the engine dies while it writes
        rest = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert rest and rest[-1]["error"]["code"] == "engine_unavailable", rest[-1:]
    down = httpx.post(f"{base}/v1/query", json={"question": "Why did the engine lose power?"}, timeout=120)
    assert down.status_code == 503 and down.json()["error"]["code"] == "engine_unavailable"
    assert int(down.headers["retry-after"]) >= 1
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
