"""LangChain's own standard tests for retrievers (`langchain-tests`), run against HybridRetriever.

They check what LangChain code relies on: ``k`` in the constructor and per call
(``retriever.invoke(query, k=1)``), and that ``invoke`` and ``ainvoke`` return Documents. The
index is the small test corpus, embedded by the fake embedder.

The async tests run on anyio's pytest plugin (anyio comes with httpx), marked here only:
pytest-asyncio, which langchain-tests installs, stays in its strict mode and touches no other
test, and no plugin it brings (pytest-socket among them) is switched on for the suite.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from hybrid.langchain import HybridRetriever

pytestmark = pytest.mark.anyio  # async tests (ainvoke) only; the others run as usual


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # LangChain's async path runs on asyncio; no trio run


class TestHybridRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _over_the_test_corpus(self, pipeline) -> None:
        # The standard tests build retrievers from properties, not fixtures: keep the pipeline here.
        self._pipeline = pipeline

    @property
    def retriever_constructor(self) -> type[HybridRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"pipeline": self._pipeline, "k": 5}

    @property
    def retriever_query_example(self) -> str:
        return "engine fuel starvation"


def test_per_call_arguments_override_the_retriever_s_own(pipeline) -> None:
    retriever = HybridRetriever(pipeline=pipeline, k=5)
    assert len(retriever.invoke("engine fuel starvation")) == 5
    assert len(retriever.invoke("engine fuel starvation", k=2)) == 2
    assert retriever.k == 5  # one call's k does not stick
    only = retriever.invoke("fuel starvation landed in a field", sources=["*engine*"], pages=(2, 2))
    assert {(d.metadata["page"], d.metadata["source"].endswith("engine report.pdf")) for d in only} == {(2, True)}


async def test_ainvoke_takes_k_per_call_too(pipeline) -> None:
    retriever = HybridRetriever(pipeline=pipeline, k=5)
    assert len(await retriever.ainvoke("engine fuel starvation", k=1)) == 1
    assert len(await retriever.ainvoke("engine fuel starvation")) == 5


def test_an_unknown_per_call_argument_is_an_error(pipeline) -> None:
    with pytest.raises(TypeError, match="top_n"):
        HybridRetriever(pipeline=pipeline).invoke("engine", top_n=2)
