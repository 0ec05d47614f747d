"""Cached decoding on the Triton sparse-attention kernel (interpreted on the CPU)."""

from __future__ import annotations

import torch

from model import ModelArgs, Transformer
from model.generate import generate
from model.kv_cache import KVCache, forward_cached
from model.sampling import SamplingConfig
from model.tokenizer import Tokenizer

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _model() -> Transformer:
    torch.manual_seed(0)
    args = ModelArgs(n_layers=2, moe_layers=(1,), max_seq_len=64, index_topk=6)
    return Transformer(args).to(DEVICE).eval()


def test_cached_steps_on_the_kernel_match_the_torch_forward() -> None:
    model = _model()
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, model.args.vocab_size, (2, 14), generator=gen).to(DEVICE)
    with torch.no_grad():
        full = model(tokens, mode="sparse", backend="torch").logits
    cache = KVCache(model, 2, 14)
    chunks = [(0, 8), *((t, t + 1) for t in range(8, 14))]
    steps = [
        forward_cached(model, tokens[:, a:b], cache, mode="sparse", backend="triton").logits
        for a, b in chunks
    ]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-4, rtol=1e-4)


def test_a_left_padded_batch_on_the_kernel_generates_what_torch_does() -> None:
    model, tok = _model(), Tokenizer()
    prompts = [tok.encode("x"), tok.encode("a longer prompt")]
    runs = [
        generate(
            model,
            prompts,
            max_tokens=6,
            stop_id=tok.end_id,
            pad_id=tok.pad_id,
            sampling=SamplingConfig(temperature=0),
            backend=backend,
        )  # fmt: skip
        for backend in ("triton", "torch")
    ]
    assert [g.token_ids for g in runs[0]] == [g.token_ids for g in runs[1]]
