"""The loaded generators: one per (base model, adapter version), a few kept, and what each adapter taught.

``Generators`` loads a ``tune.Generator`` the first time an adapter is asked for and keeps at
most ``MAX_GENERATORS`` (each is a full model copy; the least recently used goes first). A load
blocks only requests for models that are not loaded yet. Fast decoding follows the
``fast_decode`` setting: ``on`` builds it for every generator, ``auto`` only in a server
(``serving``), in the background so that answers never wait for the build.

With ``engine.url`` set, a generator is an ``hybrid.engine.EngineGenerator`` instead: the
engine holds the models, so nothing is loaded here, and each adapter version is the engine's
model of the name ``engine_model`` gives.

It also reads, once per adapter version, the house frame and boilerplate the version learnt
(from the ``examples.jsonl`` in its folder), which the answering steps need.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import tune
from hybrid.adapters import Adapters, base_of
from hybrid.config import Settings
from hybrid.engine import EngineGenerator, Generator
from hybrid.errors import leaf_errors
from hybrid.grounding import house_sentences
from hybrid.house import HouseFrame, house_frame

# Generators (base model + merged adapter) kept in memory at once: each is a full model copy.
MAX_GENERATORS = 2


class Generators:
    """The generators of ``adapters``' versions under ``settings``.

    Args:
        serving: a long-running server: with ``fast_decode = "auto"`` each generator builds its
            fast path in the background.
    """

    def __init__(self, settings: Settings, adapters: Adapters, *, serving: bool = False) -> None:
        self.settings = settings
        self.adapters = adapters
        self.serving = serving
        self._loaded: OrderedDict[tuple[str, str | None], tune.Generator] = OrderedDict()
        self._house: dict[str, tuple[frozenset[str], HouseFrame]] = {}  # adapter folder -> its boilerplate and frame
        self._engines: dict[str, EngineGenerator] = {}  # the engine's model name -> its client
        self._lock = threading.Lock()  # guards the caches, held only briefly
        self._load_lock = threading.Lock()  # one model load at a time

    def get(self, adapter: tune.AdapterVersion | None) -> Generator:
        """The generator for ``adapter`` (None: the base model alone) on its own base model."""
        if self.settings.engine.url:
            name = engine_model(self.settings, adapter)
            with self._lock:
                if name not in self._engines:
                    self._engines[name] = EngineGenerator(self.settings.engine, name)
                return self._engines[name]
        base_dir = self.adapters.base_model_dir(base_of(adapter) if adapter is not None else None)
        key = (str(base_dir), str(adapter.path) if adapter is not None else None)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        with self._load_lock:
            with self._lock:
                if key in self._loaded:  # loaded by another request meanwhile
                    return self._loaded[key]
            with leaf_errors():
                loaded = tune.Generator.load(base_dir, adapter.path if adapter else None)
            mode = self.settings.fast_decode
            if mode == "on" or (mode == "auto" and self.serving):
                loaded.fast.start(background=mode == "auto", cache_dir=self.settings.fast_decode_dir)
            with self._lock:
                self._loaded[key] = loaded
                while len(self._loaded) > MAX_GENERATORS:
                    self._loaded.popitem(last=False)
            return loaded

    def fast_status(self) -> dict[str, str]:
        """Where the fast path of each loaded generator stands (``tune.fastpath.FastStatus`` as
        text: "ready", "unsupported: ..."), keyed "base", NAME@vN for a registry version, or the
        adapter folder given as a path."""
        with self._lock:
            loaded = list(self._loaded.items())
        states = {}
        for (_, adapter), generator in loaded:
            key = "base"
            if adapter is not None:
                folder = Path(adapter)
                key = f"{folder.parent.name}@{folder.name}" if folder.parent.parent == self.settings.adapters_dir else adapter
            states[key] = str(generator.fast.status)
        return states

    def stalled_seconds(self) -> float:
        """The longest time any loaded generator has gone without a new token while making a
        reply (0.0 when none is busy)."""
        with self._lock:
            loaded = [*self._loaded.values(), *self._engines.values()]
        return max((generator.stalled_seconds() for generator in loaded), default=0.0)

    def house(self, adapter: tune.AdapterVersion | None) -> tuple[frozenset[str], HouseFrame]:
        """The boilerplate ``adapter`` was taught (``hybrid.grounding.house_sentences``) and the
        frame its replies share (``hybrid.house``); empty for the base model and for adapters
        without stored examples."""
        if adapter is None:
            return frozenset(), HouseFrame()
        key = str(adapter.path)
        with self._lock:
            if key in self._house:
                return self._house[key]
        stored = adapter.path / "examples.jsonl"
        replies: list[str] = []
        if stored.is_file():
            examples, _ = tune.read_examples(stored)
            replies = [m["content"] for e in examples for m in e.messages if m["role"] == "assistant"]
        found = (house_sentences(replies), house_frame(replies))
        with self._lock:
            self._house[key] = found
        return found

    def close(self) -> None:
        """Drop the loaded generators; replies in progress stop at their next token."""
        with self._lock:
            for generator in [*self._loaded.values(), *self._engines.values()]:
                generator.close()
            self._loaded.clear()
            self._engines.clear()


def engine_model(settings: Settings, adapter: tune.AdapterVersion | None) -> str:
    """The engine's name for ``adapter``: ``engine.models`` by NAME@vN, then by NAME, else NAME@vN;
    for the base model, ``engine.model``, else the ``base_model`` setting."""
    if adapter is None:
        return settings.engine.model or settings.base_model
    names = settings.engine.models
    return names.get(adapter.ref) or names.get(adapter.name) or adapter.ref
