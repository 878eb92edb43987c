"""Near-duplicate texts, found in near-linear time (private to the package; numpy only).

Two texts are near duplicates when, after folding case, punctuation and spacing, their sets of
word 3-grams ("shingles") overlap by a Jaccard similarity of at least a threshold (0.9: a few
words changed in a paragraph). Comparing every pair is quadratic: 50,000 examples make over a
billion pairs. MinHash with locality-sensitive hashing (Broder 1997; Leskovec, Rajaraman and
Ullman, *Mining of Massive Datasets*, ch. 3) instead gives each text a 50-number signature,
cuts it into 10 bands of 5, and compares only texts that share a whole band; each candidate is
then confirmed with the exact Jaccard similarity, so no pair is reported below the threshold.
A pair at 0.9 similarity shares a band with probability 0.9999; at 0.5, 0.27 (those candidates
are dropped by the check). Hashing costs about 1 s per 6 million words, on one core.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SHINGLE = 3  # words per shingle: word order matters, a changed word touches 3 shingles
BANDS, ROWS = 10, 5  # signature = BANDS * ROWS min-hashes
# Texts already holding one band value that are compared with a newcomer: in templated data a
# band value is shared by hundreds, and the first few of them stand for the rest.
BUCKET_KEEP = 8
# Candidates (most shared bands first) whose exact similarity is computed per text.
CANDIDATES = 4
# Candidates whose signatures agree on fewer than (threshold - this) of their min-hashes are
# dropped without the exact comparison (the estimate's standard error is 0.04 at 0.9).
ESTIMATE_SLACK = 0.1
CHUNK_SHINGLES = 100_000  # shingles hashed per numpy pass: 100,000 x 50 x 8 bytes = 40 MB
_WORD = re.compile(r"\w+")
_SEEDS = np.random.default_rng(20240531).integers(1, 2**63, size=BANDS * ROWS, dtype=np.uint64)
_MULTIPLIER = np.uint64(0xBF58476D1CE4E5B9)


@dataclass(frozen=True)
class NearDuplicate:
    """Text ``index`` nearly repeats the earlier text ``earlier``.

    Attributes:
        index: position of the later text.
        earlier: position of the first text it resembles.
        similarity: Jaccard similarity of their shingle sets (1.0: equal once normalised).
    """

    index: int
    earlier: int
    similarity: float


def words(text: str) -> list[str]:
    """The text's words, lower-cased, without punctuation."""
    return _WORD.findall(text.lower())


def near_duplicates(texts: Sequence[str], threshold: float = 0.9) -> list[NearDuplicate]:
    """Each text that nearly repeats an earlier one, with the earliest such text found.

    Args:
        texts: the texts, in file order; empty ones are never duplicates.
        threshold: the least Jaccard similarity of word 3-gram sets that counts.

    Returns:
        One `NearDuplicate` per repeating text, in order. A text equal to an earlier one once
        normalised has similarity 1.0; exact repeats are the caller's to report separately.
    """
    vocabulary: dict[str, int] = {}
    docs = [[vocabulary.setdefault(w, len(vocabulary)) for w in words(text)] for text in texts]
    signatures, shingles = _signatures(docs)
    normalised: dict[bytes, int] = {}  # whole signature -> first text with it
    buckets: dict[bytes, list[int]] = {}
    sets: dict[int, set[int]] = {}

    def shingle_set(i: int) -> set[int]:
        if i not in sets:
            sets[i] = set(shingles[i].tolist())
        return sets[i]

    found = []
    width = ROWS * 8  # bytes per band of the signature
    for index, ids in enumerate(docs):
        if not ids:
            continue
        signature = signatures[index]
        raw = signature.tobytes()
        if raw in normalised and docs[normalised[raw]] == ids:
            found.append(NearDuplicate(index, normalised[raw], 1.0))
            continue
        normalised.setdefault(raw, index)
        keys = [bytes([band]) + raw[band * width : (band + 1) * width] for band in range(BANDS)]
        shared: Counter[int] = Counter()
        for band_key in keys:
            shared.update(buckets.get(band_key, ()))
        for earlier, _count in sorted(shared.items(), key=lambda kv: (-kv[1], kv[0]))[:CANDIDATES]:
            # The share of equal min-hashes estimates the similarity (standard error 0.04 at
            # 0.9); only plausible pairs pay for the exact set comparison.
            if np.count_nonzero(signature == signatures[earlier]) < (threshold - ESTIMATE_SLACK) * len(signature):
                continue
            mine, other = shingle_set(index), shingle_set(earlier)
            similarity = len(mine & other) / len(mine | other)
            if similarity >= threshold:
                found.append(NearDuplicate(index, earlier, round(similarity, 3)))
                break
        for band_key in keys:
            members = buckets.setdefault(band_key, [])
            if len(members) < BUCKET_KEEP:
                members.append(index)
    return found


def _signatures(docs: list[list[int]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One min-hash signature (a row of ``BANDS * ROWS`` numbers) per document, and its shingles.

    An empty document has a signature of zeros and no shingles.

    Documents are hashed in chunks of about `CHUNK_SHINGLES` shingles, so numpy does the work
    in a few large operations rather than several small ones per document.
    """
    signatures = np.zeros((len(docs), BANDS * ROWS), dtype=np.uint64)
    per_doc: list[np.ndarray] = []
    start = 0
    while start < len(docs):
        end, size = start, 0
        while end < len(docs) and (size == 0 or size + len(docs[end]) <= CHUNK_SHINGLES):
            size += len(docs[end])
            end += 1
        lengths = np.array([len(ids) for ids in docs[start:end]])
        present = np.flatnonzero(lengths)
        if len(present):
            flat = np.fromiter((w for ids in docs[start:end] for w in ids), dtype=np.uint64, count=int(lengths.sum()))
            shingles, owners = _shingles(flat, lengths)
            # Row k holds every shingle under the k-th permutation: xor with a seed, multiply by
            # an odd constant, fold the high bits down (each step is a bijection of 64 bits).
            permuted = (_SEEDS[:, None] ^ shingles[None, :]) * _MULTIPLIER
            permuted ^= permuted >> np.uint64(29)
            firsts = np.searchsorted(owners, present)
            signatures[start + present] = np.minimum.reduceat(permuted, firsts, axis=1).T
            per_doc += np.split(shingles, np.searchsorted(owners, np.arange(1, end - start)))
        else:
            per_doc += [np.zeros(0, dtype=np.uint64)] * (end - start)
        start = end
    return signatures, per_doc


def _shingles(flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the word n-grams of documents laid end to end, and the document of each.

    Args:
        flat: word ids of every document, concatenated.
        lengths: words per document.

    Returns:
        (hashes, owners); owners ascend. A document shorter than `SHINGLE` words is one
        shingle of all its words; an n-gram never runs from one document into the next.
    """
    flat = flat + np.uint64(1)  # no zero word: _mix(0) is 0
    total = len(flat)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    length = lengths[owner]
    position = np.arange(total) - (np.cumsum(lengths) - lengths)[owner]
    combined = np.zeros(total, dtype=np.uint64)
    for offset in range(SHINGLE):
        shifted = np.zeros(total, dtype=np.uint64)
        shifted[: total - offset] = flat[offset:]
        combined = np.where(position + offset < length, _mix(combined ^ shifted), combined)
    keep = (position + SHINGLE <= length) | ((position == 0) & (length < SHINGLE))
    return combined[keep], owner[keep]


def _mix(x: np.ndarray) -> np.ndarray:
    # The splitmix64 finaliser (uint64 arithmetic wraps, as intended): every input bit flips
    # about half the output bits, so the minimum over a set behaves like the minimum under a
    # random permutation.
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
