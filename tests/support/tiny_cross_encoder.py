"""A tiny random cross-encoder that sentence-transformers' `CrossEncoder` loads from a folder.

Stands in for a real reranker such as cross-encoder/ms-marco-MiniLM-L-6-v2: a one-layer
`BertForSequenceClassification` with one output (a relevance logit) and a WordPiece tokenizer
whose vocabulary is the special tokens plus the words of the test corpus. Random weights rank
passages arbitrarily but deterministically, which is all the wiring tests need: they compare
the order our code produces with the order of the model's own `predict` scores.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SEED = 4321
# Wider than BERT's 0.02, so random passages get clearly different logits (no near-ties that
# would make the expected order depend on float rounding).
INIT_RANGE = 0.5
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def make_tiny_cross_encoder_dir(path: Path, texts: Iterable[str], *, hidden_size: int = 16) -> Path:
    """Save a tiny random cross-encoder and its tokenizer to ``path`` (created if needed).

    Args:
        path: the model directory to write.
        texts: every word (lowercased) and punctuation mark in these joins the vocabulary, so
            they tokenise without [UNK].
        hidden_size: width of the one transformer layer.

    Returns:
        ``path``, loadable with ``CrossEncoder(str(path))``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    words = sorted({w for text in texts for w in _WORD.findall(text.lower())})
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + words)}
    tokenizer = _wordpiece_tokenizer(vocab)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=256,
        num_labels=1,
        initializer_range=INIT_RANGE,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = BertForSequenceClassification(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _wordpiece_tokenizer(vocab: dict[str, int]) -> BertTokenizerFast:
    """BERT's tokenizer (lower case, [CLS] A [SEP] B [SEP]) over ``vocab``.

    Built with the `tokenizers` library rather than from a vocab.txt, because transformers 4
    and 5 disagree on how `BertTokenizerFast` takes a vocabulary file (5 ignores `vocab_file`).
    """
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=256,
    )
