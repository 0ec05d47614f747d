"""Cached generation: parity with the full forward, greedy determinism, left padding, stops."""

from __future__ import annotations

from typing import cast

import pytest
import torch

from model import ModelArgs, ModelInputError, Transformer
from model.block import Block
from model.generate import Generation, generate
from model.kv_cache import KVCache, forward_cached
from model.sampling import SamplingConfig
from model.tokenizer import Tokenizer

TOK = Tokenizer()
GREEDY = SamplingConfig(temperature=0)


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    # top_k 6 < the sequence lengths below, so sparse mode really is sparse.
    args = ModelArgs(n_layers=2, moe_layers=(1,), max_seq_len=96, index_topk=6)
    return Transformer(args).eval()


def _run(model: Transformer, prompts: list[list[int]], **kw: object) -> list[Generation]:
    kw.setdefault("max_tokens", 12)
    return generate(model, prompts, stop_id=TOK.end_id, pad_id=TOK.pad_id, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_cached_steps_give_the_logits_of_a_full_forward(model: Transformer, mode: str) -> None:
    tokens = torch.randint(
        0, model.args.vocab_size, (2, 30), generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        full = model(tokens, mode=mode)  # type: ignore[arg-type]
    cache = KVCache(model, 2, 30)
    chunks = [(0, 8), (8, 13), *((t, t + 1) for t in range(13, 30))]
    steps = [forward_cached(model, tokens[:, a:b], cache, mode=mode) for a, b in chunks]  # type: ignore[arg-type]

    torch.testing.assert_close(
        torch.cat([s.logits for s in steps], 1), full.logits, atol=1e-5, rtol=1e-5
    )
    assert torch.equal(torch.cat([s.routes[1] for s in steps], 1), full.routes[1])  # type: ignore[misc]
    assert all(s.routes[0] is None for s in steps)


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_a_prefill_cut_into_row_chunks_gives_the_full_forward(
    model: Transformer, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long prompts are attended in chunks of query rows; a budget of 2 × 5 rows × 30 keys
    # makes a 30-token prompt take that path, with the indexer's ReLU ties (exact zeros).
    monkeypatch.setattr("model.kv_cache.CHUNK_ENTRIES", 2 * 5 * 30)
    tokens = torch.randint(
        0, model.args.vocab_size, (2, 30), generator=torch.Generator().manual_seed(2)
    )
    with torch.no_grad():
        full = model(tokens, mode=mode)  # type: ignore[arg-type]
    cache = KVCache(model, 2, 31)
    step = forward_cached(model, tokens, cache, mode=mode)  # type: ignore[arg-type]
    torch.testing.assert_close(step.logits, full.logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_logprobs_and_routing_replay_on_a_full_forward(model: Transformer, mode: str) -> None:
    prompt = TOK.encode("<|begin|><|user|>hi<|end|><|assistant|>")
    gen = _run(model, [prompt], max_tokens=20, mode=mode, seeds=[4])[0]
    seq = torch.tensor([prompt + gen.token_ids])
    with torch.no_grad():
        full = model(seq, mode=mode)  # type: ignore[arg-type]
    at = slice(len(prompt) - 1, seq.shape[1] - 1)  # the positions that predict each token
    expected = full.logits[0, at].log_softmax(-1).gather(-1, seq[0, 1 + at.start :, None])[:, 0]

    torch.testing.assert_close(torch.tensor(gen.logprobs), expected, atol=1e-4, rtol=1e-4)
    assert [r[0] for r in gen.routing] == full.routes[1][0, at].tolist()  # type: ignore[index]
    assert all(m == list(range(model.args.vocab_size)) for m in gen.sampling_mask)


def test_greedy_is_deterministic_and_top_k_1_is_greedy(model: Transformer) -> None:
    prompts = [TOK.encode("abc"), TOK.encode("a longer prompt")]
    first = _run(model, prompts, sampling=GREEDY)
    assert _run(model, prompts, sampling=GREEDY) == first
    top1 = _run(model, prompts, sampling=SamplingConfig(temperature=1.3, top_k=1), seeds=[5, 6])
    assert [g.token_ids for g in top1] == [g.token_ids for g in first]
    assert all(
        g.logprobs == [0.0] * 12 and all(len(m) == 1 for m in g.sampling_mask) for g in first
    )


@pytest.mark.parametrize("sampling", [GREEDY, SamplingConfig(temperature=1.0, top_p=0.9)])
def test_a_left_padded_batch_generates_what_each_sequence_does_alone(
    model: Transformer, sampling: SamplingConfig
) -> None:
    prompts = [TOK.encode("x"), TOK.encode("a much longer prompt, padded in the batch? no")]
    prompts.append(TOK.encode("mid-length é"))
    seeds = [11, 12, 13]
    batch = _run(model, prompts, sampling=sampling, seeds=seeds)
    for prompt, seed, together in zip(prompts, seeds, batch, strict=True):
        alone = _run(model, [prompt], sampling=sampling, seeds=[seed])[0]
        assert together.token_ids == alone.token_ids
        assert together.routing == alone.routing
        assert together.sampling_mask == alone.sampling_mask
        torch.testing.assert_close(together.logprobs, alone.logprobs, atol=1e-5, rtol=1e-5)


def test_a_sequence_stops_at_the_stop_id_while_the_others_go_on(model: Transformer) -> None:
    prompts = [TOK.encode("stop early"), TOK.encode("go on")]
    free = _run(model, prompts, sampling=GREEDY)
    stop = free[0].token_ids[3]
    assert stop not in free[0].token_ids[:3] and stop not in free[1].token_ids
    out = generate(model, prompts, max_tokens=12, stop_id=stop, pad_id=TOK.pad_id, sampling=GREEDY)

    assert out[0].token_ids == free[0].token_ids[:4] and out[0].stopped
    assert len(out[0].logprobs) == len(out[0].sampling_mask) == len(out[0].routing) == 4
    assert out[1].token_ids == free[1].token_ids and not out[1].stopped


def test_bad_requests_are_refused(model: Transformer) -> None:
    with pytest.raises(ModelInputError, match="max_seq_len"):
        _run(model, [[1] * 90], max_tokens=8)
    with pytest.raises(ModelInputError, match="every prompt"):
        _run(model, [[1], []])
    with pytest.raises(ModelInputError, match="seeds"):
        _run(model, [[1], [2]], seeds=[1])
    with pytest.raises(ModelInputError, match="max_tokens"):
        _run(model, [[1]], max_tokens=0)
    with pytest.raises(ModelInputError, match="mode"):
        forward_cached(model, torch.ones(1, 1, dtype=torch.long), KVCache(model, 1, 4), mode="x")  # type: ignore[arg-type]


def test_decoding_projects_only_the_new_token(model: Transformer) -> None:
    # The O(t) claim: after the prefill, each step runs one token per row through the
    # layers and reads the rest from the cache.
    seen: list[tuple[int, ...]] = []
    block = cast(Block, model.layers[1])
    hook = block.attn.wq_a.register_forward_hook(
        lambda _m, args, _out: seen.append(tuple(args[0].shape[:2]))
    )
    try:
        _run(model, [TOK.encode("abc"), TOK.encode("abcdefg")], max_tokens=5, sampling=GREEDY)
    finally:
        hook.remove()
    assert seen == [(2, 7), (2, 1), (2, 1), (2, 1), (2, 1)]
