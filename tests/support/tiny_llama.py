"""A tiny random Llama with a real (byte-level BPE) tokenizer and a ChatML chat template.

Stands in for SmolLM2 anywhere a base model directory is expected, so tests of tokenisation,
label masking, LoRA training and generation run in seconds with no download.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<unk>"]
VOCAB_SIZE = 1024  # 256 byte symbols + 3 specials + merges: most corpus words become one id
SEED = 1234
INIT_RANGE = 0.5

# The same ChatML template as SmolLM2-135M-Instruct, with a shorter default system prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORDS = """
the a an and or but if then so because of to in on at by for with from into over under about
after before between during without within is are was were be been being have has had do does
did will would can could should may might must shall not no yes this that these those it its
they them their there here we us our you your he she his her i me my who what when where why
how which all any each every some many much more most few less least other such only own same
than too very just also now new old good great high low long short small large big first last
next early late right left best better well still even back again once always never often
time year day week month hour minute people person man woman child world life hand part place
case point group company number fact way work home school house water money report order
account customer service support help question answer problem issue request refund payment
delivery shipping address email phone password name date price cost change cancel update check
please thank thanks sorry hello dear team assist understand know think see look find give tell
ask use make take get go come want need like feel try call keep let put set show send receive
review study trial patient patients treatment effect evidence result results risk health care
plain language summary data analysis compared included showed found low moderate quality
""".split()


def _corpus() -> list[str]:
    # Deterministic sentences mixing words, digits and punctuation, so BPE learns common merges.
    sentences = []
    for i in range(400):
        words = [_WORDS[(i * 7 + j * 13) % len(_WORDS)] for j in range(8 + i % 5)]
        words.insert(i % 6, str((i * 37) % 1000))
        sentence = " ".join(words).capitalize()
        sentences.append(sentence + ".!?,;:"[i % 6] + (" (see 2.5%)" if i % 9 == 0 else ""))
    return sentences + [" ".join(_WORDS)]


def make_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any text round-trips) with ChatML special tokens."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<unk>",
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def make_tiny_model_dir(path: Path, *, hidden_size: int = 32) -> Path:
    """Save a tiny random `LlamaForCausalLM` and its tokenizer to ``path`` (created if needed).

    Deterministic: the same weights and vocabulary every time, without touching the global RNG.

    Returns:
        ``path``, usable as a base model directory.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        # Wide enough initial weights that the output head can express confident predictions:
        # with the usual 0.02 a 32-wide model cannot get far below uniform, whatever LoRA learns.
        initializer_range=INIT_RANGE,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
