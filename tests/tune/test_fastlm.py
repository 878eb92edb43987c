"""Speculative decoding (tune.fastlm) returns exactly the plain greedy loop's tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tune import Generator
from tune.decode import greedy_tokens
from tune.fastlm import SpeculativeDecoder, unsupported
from tune.fastpath import FastState
from tune.toolchain import compiler_available


def _model(*, kv_heads: int, tied: bool, seed: int = 3) -> LlamaForCausalLM:
    # Grouped-query attention (kv_heads < heads) and tied embeddings, as in SmolLM2.
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
        tie_word_embeddings=tied,
        initializer_range=0.3,  # confident enough that greedy choices are not near-ties
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config).eval()


def _plain(model, input_ids, **options) -> list[int]:
    with torch.inference_mode():
        return [token for token, _ in greedy_tokens(model, input_ids, **options)]


def _fast(decoder, input_ids, **options) -> list[int]:
    return [token for token, _ in decoder.tokens(input_ids, **options)]


@pytest.mark.parametrize(("kv_heads", "tied"), [(1, True), (2, False), (4, True)])
@pytest.mark.parametrize(("draft_tokens", "draft_dtype"), [(1, torch.bfloat16), (3, torch.int8), (6, torch.bfloat16)])
def test_speculative_tokens_equal_the_plain_loop(kv_heads, tied, draft_tokens, draft_dtype) -> None:
    model = _model(kv_heads=kv_heads, tied=tied)
    decoder = SpeculativeDecoder(model, draft_tokens=draft_tokens, draft_dtype=draft_dtype)
    generator = torch.Generator().manual_seed(draft_tokens)
    for length, penalty, limit in [(5, 1.0, 40), (23, 1.3, 33), (1, 1.1, 7), (9, 1.1, 1)]:
        input_ids = torch.randint(0, 97, (1, length), generator=generator)
        options = {"max_new_tokens": limit, "stop_ids": [], "repetition_penalty": penalty}
        expected = _plain(model, input_ids, **options)
        assert _fast(decoder, input_ids, **options) == expected
        assert len(expected) == limit
    assert 0.5 < decoder.kept / decoder.proposed <= 1  # the draft mostly agrees: it is the same model


def test_the_check_graph_takes_its_weights_as_inputs() -> None:
    # What build_check exports: the float32 decoder with every tensor passed in, so a compiled
    # check runs on whichever model's tensors it is given and holds none of its own.
    from tune.fastlm import _CheckGraph, _Decoder

    first, second = _model(kv_heads=2, tied=False), _model(kv_heads=2, tied=False, seed=4)
    decoders = [_Decoder(model, torch.float32).eval() for model in (first, second)]
    graph = _CheckGraph(decoders[0])
    assert not list(graph.parameters()) and not list(graph.buffers())
    keys = [torch.zeros(2, 16, 16) for _ in range(3)]
    values = [torch.zeros(2, 16, 16) for _ in range(3)]
    positions = torch.arange(4)
    cos, sin = first.model.rotary_emb(torch.zeros(1), positions[None])
    inputs = (torch.tensor([3, 1, 4, 1]), positions, cos[0], sin[0], keys, values, torch.empty(4, dtype=torch.int8))
    with torch.no_grad():
        for decoder in decoders:
            expected = decoder(*inputs)
            assert torch.equal(graph(*inputs, list(decoder.weights().values())), expected)
        assert not torch.equal(decoders[0](*inputs), decoders[1](*inputs))


def test_a_stop_token_ends_the_reply_where_the_plain_loop_ends_it() -> None:
    model = _model(kv_heads=1, tied=True)
    decoder = SpeculativeDecoder(model, draft_tokens=4)
    input_ids = torch.tensor([[5, 17, 3, 44, 8]])
    free = _plain(model, input_ids, max_new_tokens=30, stop_ids=[], repetition_penalty=1.0)
    stop = free[11]  # a token the reply reaches, mid-way through a draft block
    options = {"max_new_tokens": 30, "stop_ids": [stop], "repetition_penalty": 1.0}
    expected = _plain(model, input_ids, **options)
    assert expected[-1] == stop and len(expected) <= 12
    assert _fast(decoder, input_ids, **options) == expected


def test_the_check_corrects_a_draft_that_is_always_wrong() -> None:
    # The float32 check decides every token: a draft proposing nonsense costs speed only.
    model = _model(kv_heads=1, tied=True)
    decoder = SpeculativeDecoder(model, draft_tokens=4)
    draft = decoder._draft_step
    proposals = []

    def wrong(ids, *rest):
        logits = draft(ids, *rest)
        worst = logits.argmin(-1)
        proposals.append(int(worst[-1]))
        return torch.nn.functional.one_hot(worst, logits.shape[-1]).float()

    decoder._draft_step = wrong
    input_ids = torch.tensor([[9, 2, 71, 30]])
    options = {"max_new_tokens": 25, "stop_ids": [], "repetition_penalty": 1.2}
    assert _fast(decoder, input_ids, **options) == _plain(model, input_ids, **options)
    assert proposals  # the draft really ran


def test_a_reply_longer_than_a_package_accepts_uses_the_plain_loop(monkeypatch) -> None:
    import tune.fastlm

    model = _model(kv_heads=1, tied=True)
    decoder = SpeculativeDecoder(model, draft_tokens=4)
    monkeypatch.setattr(tune.fastlm, "_LONGEST", 20)
    input_ids = torch.tensor([[9, 2, 71, 30, 4, 4, 8, 1]])
    options = {"max_new_tokens": 15, "stop_ids": [], "repetition_penalty": 1.1}
    assert _fast(decoder, input_ids, **options) == _plain(model, input_ids, **options)
    assert decoder.proposed == 0  # the draft never ran


def test_models_outside_the_llama_layout_are_declined() -> None:
    model = _model(kv_heads=1, tied=True)
    assert unsupported(model) is None
    model.config.model_type = "gpt2"
    assert "gpt2" in unsupported(model)
    with pytest.raises(ValueError, match="no fast decoding"):
        SpeculativeDecoder(model)
    biased = _model(kv_heads=1, tied=True)
    biased.config.attention_bias = True
    assert "bias" in unsupported(biased)


def test_generator_falls_back_to_the_plain_loop_when_the_fast_path_fails(tiny_model_dir) -> None:
    generator = Generator.load(tiny_model_dir)
    messages = [{"role": "user", "content": "Question 7: when will my refund arrive?"}]
    expected = generator.generate(messages, max_new_tokens=12).text

    class Broken:
        def tokens(self, *args, **kwargs):
            raise RuntimeError("compiled code went away")
            yield  # a generator, like the real one

    generator.fast.use(Broken())
    assert generator.fast.status.state is FastState.READY
    assert generator.generate(messages, max_new_tokens=12).text == expected
    assert generator.fast.decoder is None and generator.fast.status.state is FastState.FAILED
    assert str(generator.fast.status) == "failed: RuntimeError: compiled code went away"


def test_fast_status_reports_an_unsupported_model(tiny_model_dir) -> None:
    generator = Generator.load(tiny_model_dir)
    generator.model.config.model_type = "gpt2"
    assert generator.fast.status.state is FastState.OFF
    generator.fast.start(background=True, cache_dir=Path("unused"))  # decided at once, no thread
    assert generator.fast.status.state is FastState.UNSUPPORTED and generator.fast.decoder is None
    assert "gpt2" in generator.fast.status.reason


def test_the_package_name_follows_the_model_and_adapter_files(tiny_model_dir, tmp_path) -> None:
    from tune.fastlm import package_name

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"v1")
    first = package_name(tiny_model_dir, adapter)
    assert first == package_name(tiny_model_dir, adapter) and first != package_name(tiny_model_dir, None)
    (adapter / "adapter_model.safetensors").write_bytes(b"v2, retrained")
    assert package_name(tiny_model_dir, adapter) != first


@pytest.mark.slow
@pytest.mark.skipif(not compiler_available(), reason="the draft build needs a C++ compiler")
def test_the_built_draft_gives_the_plain_loops_replies_and_is_reused(trained, tiny_model_dir, tmp_path, monkeypatch) -> None:
    # AOTInductor for real, in the subprocess the server uses: the int8 draft package.
    _, adapter, _ = trained
    generator = Generator.load(tiny_model_dir, adapter)
    questions = ["Question 7: when will my refund arrive?", "Why was I charged twice? Tell me what happened."]
    expected = [generator.generate([{"role": "user", "content": q}], max_new_tokens=30).text for q in questions]
    generator.fast.start(background=False, cache_dir=tmp_path)
    assert generator.fast.status.state is FastState.READY, generator.fast.status
    assert len(list(tmp_path.glob("draft-*.pt2"))) == len(list(tmp_path.glob("check-*.pt2"))) == 1
    got = [generator.generate([{"role": "user", "content": q}], max_new_tokens=30).text for q in questions]
    assert got == expected
    # The draft really drafts: most proposals survive the check (a broken package would make
    # every one of them wrong, and the replies would still be right, only slower).
    assert generator.fast.decoder.kept > 0.5 * generator.fast.decoder.proposed > 0
    streamed = "".join(generator.stream([{"role": "user", "content": questions[1]}], max_new_tokens=30))
    assert streamed.strip() == expected[1]

    # A second process start finds the package: no build.
    import tune.fastpath

    monkeypatch.setattr(tune.fastpath, "_build", lambda *args: pytest.fail("the package was rebuilt"))
    again = Generator.load(tiny_model_dir, adapter)
    again.fast.start(background=False, cache_dir=tmp_path)
    assert again.fast.status.state is FastState.READY
    assert again.generate([{"role": "user", "content": questions[0]}], max_new_tokens=30).text == expected[0]

    # Another adapter of the same base model builds its own draft and reuses the check.
    calls = []

    def record(*args):
        calls.append(args)
        raise RuntimeError("recorded")

    monkeypatch.setattr(tune.fastpath, "_build", record)
    Generator.load(tiny_model_dir).fast.start(background=False, cache_dir=tmp_path)
    assert [(draft is not None, check) for _, _, draft, check, _ in calls] == [(True, None)]


def test_a_failed_build_keeps_the_plain_loop(tiny_model_dir, tmp_path, monkeypatch) -> None:
    import tune.fastpath

    def broken(*args):
        raise RuntimeError("the fast decoding build exited with 1: no space left")

    monkeypatch.setattr(tune.fastpath, "_build", broken)
    generator = Generator.load(tiny_model_dir)
    messages = [{"role": "user", "content": "Hi"}]
    expected = generator.generate(messages, max_new_tokens=5)
    generator.fast.start(background=False, cache_dir=tmp_path)
    assert str(generator.fast.status).startswith("failed: RuntimeError: the fast decoding build exited with 1")
    assert generator.fast.decoder is None
    again = generator.generate(messages, max_new_tokens=5)  # the plain loop still answers
    assert (again.text, again.completion_tokens) == (expected.text, expected.completion_tokens)


def test_a_damaged_package_is_built_again(tiny_model_dir, tmp_path, monkeypatch) -> None:
    import tune.fastlm
    import tune.fastpath

    generator = Generator.load(tiny_model_dir)
    package = tmp_path / tune.fastlm.package_name(generator.model_dir, None)
    check = tmp_path / tune.fastlm.check_name(generator.model_dir)
    kernels = tmp_path / tune.fastlm.kernels_name()
    package.write_bytes(b"half a package")
    check.write_bytes(b"rebuilt")
    kernels.write_bytes(b"rebuilt")
    builds = []

    def build(model_dir, adapter_dir, *paths):
        builds.append(paths)
        for path in paths:
            path.write_bytes(b"rebuilt")

    def load(path):
        if path.read_bytes() != b"rebuilt":
            raise RuntimeError("not a zip archive")
        return None  # SpeculativeDecoder then drafts eagerly

    monkeypatch.setattr(tune.fastpath, "_build", build)
    monkeypatch.setattr(tune.fastlm, "load_package", load)
    monkeypatch.setattr(tune.fastlm, "load_kernels", load)
    generator.fast.start(background=False, cache_dir=tmp_path)
    assert generator.fast.status.state is FastState.READY and builds == [(package, check, kernels)]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    from tune.fastlm import build_kernels, load_kernels

    path = build_kernels(tmp_path_factory.mktemp("kernels") / "kernels.so")  # about 10 s
    load_kernels(path)
    load_kernels(path)  # a second load of the same ops is skipped, not an error
    return path


@pytest.mark.skipif(not compiler_available(), reason="the kernel build needs a C++ compiler")
@pytest.mark.parametrize(
    ("rows", "outputs", "inner"),
    [(1, 7, 16), (9, 97, 64), (16, 33, 96), (9, 1536, 576), (17, 5, 16), (3, 10, 20)],  # the last two: at::linear
)
def test_small_linear_is_a_float32_linear(kernels, rows, outputs, inner) -> None:
    generator = torch.Generator().manual_seed(rows * outputs)
    x, w = torch.randn(rows, inner, generator=generator), torch.randn(outputs, inner, generator=generator)
    got = torch.ops.hybrid.small_linear(x, w)
    assert got.shape == (rows, outputs) and got.dtype == torch.float32
    torch.testing.assert_close(got, torch.nn.functional.linear(x, w), rtol=1e-5, atol=1e-4)
    transposed = torch.ops.hybrid.small_linear(x.t().contiguous().t()[:, :], w)  # a strided x is copied
    torch.testing.assert_close(transposed, got, rtol=1e-5, atol=1e-4)


@pytest.mark.skipif(not compiler_available(), reason="the kernel build needs a C++ compiler")
def test_the_check_with_small_linear_gives_the_plain_loops_tokens(kernels) -> None:
    model = _model(kv_heads=2, tied=True)
    decoder = SpeculativeDecoder(model, draft_tokens=4)
    assert decoder._check_step.kernels  # the kernels are loaded, so the check uses them
    input_ids = torch.randint(0, 97, (1, 11), generator=torch.Generator().manual_seed(5))
    options = {"max_new_tokens": 30, "stop_ids": [], "repetition_penalty": 1.1}
    assert _fast(decoder, input_ids, **options) == _plain(model, input_ids, **options)
