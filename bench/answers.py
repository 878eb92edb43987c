"""Answer quality: our pipeline against the plain LangChain RAG a user writes, same generator,
same questions, one run, one scorecard (``hybrid.evaluation``).

    .venv/bin/pip install -e '.[bench]'      # the reference needs langchain-community
    .venv/bin/python bench/answers.py --corpus ../shared/data/pdfs/sec10q \
        --qa ../shared/data/qa/sec10q_qna.csv --limit 40

The reference: ``PyPDFLoader`` -> ``RecursiveCharacterTextSplitter(1000, 200)`` -> MiniLM
(the same model files) -> LangChain's ``FAISS``, top 4 -> a "use the context" prompt -> the same
SmolLM2-135M-Instruct, greedy, with the same repetition penalty and token limit as ours. Its
answer counts as a refusal when it says it does not know or that the context does not say.

Both systems answer each question in turn, so a busy machine slows them alike; the scorecard
prints each beside the other with the ratio ours/reference. Our index is built (or brought up
to date) in ``--home``; the reference's is cached in ``--ref-index``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

# The reference's prompt: what a LangChain tutorial's RAG chain asks, in our words.
REFERENCE_PROMPT = (
    "Use the following context to answer the question. If the context does not contain the answer, "
    "say that you don't know.\n\nContext:\n{context}\n\nQuestion: {question}\nAnswer:"
)
REFERENCE_K = 4
_DONT_KNOW = re.compile(
    r"\b(?:i\s+don'?t\s+know|i\s+do\s+not\s+know|(?:context|documents?|text)\s+(?:does|do)\s+not\s+(?:contain|provide|mention|say)"
    r"|no\s+information\s+(?:about|on))\b",
    re.IGNORECASE,
)


def reference_system(store, generator, max_new_tokens: int):
    """The plain RAG chain as a scorecard system."""
    from hybrid.evaluation import Passage, Reply

    def answer(question: str) -> Reply:
        started = time.perf_counter()
        docs = store.similarity_search(question, k=REFERENCE_K)
        context = "\n\n".join(d.page_content for d in docs)
        messages = [{"role": "user", "content": REFERENCE_PROMPT.format(context=context, question=question)}]
        result = generator.generate(messages, max_new_tokens=max_new_tokens)
        passages = [Passage(d.metadata["source"], int(d.metadata.get("page", 0)) + 1, d.page_content) for d in docs]
        route = "refuse" if _DONT_KNOW.search(result.text) else "rag"
        return Reply(
            answer=result.text, route=route, passages=passages, seconds=time.perf_counter() - started,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
            prefill_seconds=result.first_token_seconds or None,
        )

    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="../shared/data/pdfs/sec10q")
    parser.add_argument("--qa", default="../shared/data/qa/sec10q_qna.csv")
    parser.add_argument("--home", default="/tmp/hybrid-bench-home", help="our HYBRID_HOME (index reused)")
    parser.add_argument("--ref-index", default="/tmp/hybrid-bench-reference", help="the reference's index (reused)")
    parser.add_argument("--adapter", default="none", help="our adapter [none]")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--every", type=int, default=1, help="only every Nth question (a sample across the set)")
    parser.add_argument("--off-corpus", default=None, help="off-corpus questions, one per line [built-in set]")
    parser.add_argument("--out", default=None, help="write the scorecards' JSON here")
    args = parser.parse_args()

    from bench.retrieval import build_reference
    from hybrid import Pipeline, evaluation, load_settings, report
    from hybrid.qa import label_pages, read_qa, read_questions

    settings = load_settings(home=args.home, adapter=args.adapter)
    pipeline = Pipeline(settings)
    pipeline.ingest([args.corpus], progress=lambda m: print(m, file=sys.stderr))
    pipeline.load()
    items = read_qa(args.qa)[:: args.every][: args.limit]
    labelled = label_pages(items, _page_texts(pipeline))
    print(f"{len(items)} questions ({labelled} with silver page labels from their answers)", file=sys.stderr)
    store = build_reference(sorted(Path(args.corpus).rglob("*.pdf")), Path(args.ref_index))
    generator = pipeline.generator(None)  # the same base model, loaded once
    systems = {
        "hybrid": evaluation.pipeline_system(pipeline, settings.k),
        "reference": reference_system(store, generator, settings.max_new_tokens),
    }
    off = read_questions(args.off_corpus) if args.off_corpus else list(evaluation.OFF_CORPUS)
    done = [0]

    def progress(_: str) -> None:
        done[0] += 1
        if done[0] % 10 == 0:
            print(f"  {done[0]} answers", file=sys.stderr)

    cards = evaluation.run(systems, items, off, pipeline.support_check(), settings.k, progress)
    bodies = [card.to_dict() for card in cards]
    print(report.markdown(bodies))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(bodies, indent=2, ensure_ascii=False) + "\n")
        report.plot(bodies, Path(args.out).with_suffix(".png"))
    return 0


def _page_texts(pipeline) -> dict[tuple[str, int], str]:
    texts: dict[tuple[str, int], list[str]] = {}
    for row in pipeline.index()._conn.execute("SELECT source, page, text FROM chunks"):
        texts.setdefault((row[0], row[1]), []).append(row[2])
    return {key: "\n".join(parts) for key, parts in texts.items()}


if __name__ == "__main__":
    sys.exit(main())
