"""The attention probe reads the main attention the model really computes."""

from __future__ import annotations

from typing import cast

import torch

from model import ModelArgs, Transformer
from model.mla import MLA
from model.rope import Rope
from model.training.probe import (
    AttentionProbe,
    attention_scores,
    causal_mask,
    selected_index_logits,
    selected_scores,
)

SMALL = {"n_layers": 2, "moe_layers": (1,), "max_seq_len": 64}


def _model(top_k: int = 6) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelArgs(index_topk=top_k, **SMALL)).eval()


def test_probed_scores_reproduce_the_dense_attention_output() -> None:
    model = _model()
    attn = cast(MLA, model.layers[0].attn)
    x = torch.randn(2, 12, model.args.d_model)
    rope = Rope(model.rope_cos[:12], model.rope_sin[:12])
    with torch.no_grad():
        p = attn.project(x, rope)
        hidden = ~causal_mask(2, 12, x.device)[:, None]
        probs = attention_scores(attn, p).masked_fill(hidden, float("-inf")).softmax(-1)
        kv = attn.wkv_b(p.latent).unflatten(-1, (attn.n_heads, attn.nope + attn.v_dim))
        v = kv[..., attn.nope :]
        mine = torch.einsum("bhts,bshv->bthv", probs, v)
        sdpa = attn.dense(p)  # scaled_dot_product_attention, the model's own path

    torch.testing.assert_close(mine, sdpa, atol=1e-5, rtol=1e-4)


def test_dense_probe_targets_are_distributions_over_the_causal_prefix() -> None:
    model = _model()
    tokens = torch.randint(0, 256, (2, 16))
    with AttentionProbe(model) as probe, torch.no_grad():
        model(tokens, mode="dense")

    assert len(probe.layers) == model.args.n_layers
    for layer in probe.layers:
        assert torch.equal(layer.allowed, causal_mask(2, 16, tokens.device))
        torch.testing.assert_close(layer.target.sum(-1), torch.ones(2, 16))
        assert (layer.target >= 0).all() and (layer.target[~layer.allowed] == 0).all()
        assert torch.isinf(layer.index_logits[~layer.allowed]).all()
        assert torch.isfinite(layer.index_logits[layer.allowed]).all()


def test_sparse_probe_uses_the_selected_keys_of_the_forward() -> None:
    model = _model(top_k=5)
    tokens = torch.randint(0, 256, (2, 16))
    with AttentionProbe(model) as probe, torch.no_grad():
        out = model(tokens, mode="sparse")

    for layer, indices in zip(probe.layers, out.indices, strict=True):
        assert indices is not None and layer.keys is not None
        assert torch.equal(layer.allowed, indices >= 0)
        assert torch.equal(layer.keys[layer.allowed], indices[indices >= 0].long())
        assert torch.equal(layer.allowed.sum(-1), torch.arange(1, 17).clamp(max=5).expand(2, 16))
        torch.testing.assert_close(layer.target.sum(-1), torch.ones(2, 16))
        assert (layer.target[~layer.allowed] == 0).all()
        assert torch.isinf(layer.index_logits[~layer.allowed]).all()


def test_gathered_scores_and_logits_equal_the_full_matrices_at_the_selected_keys() -> None:
    model = _model(top_k=5)
    attn = cast(MLA, model.layers[1].attn)
    x = torch.randn(2, 16, model.args.d_model)
    rope = Rope(model.rope_cos[:16], model.rope_sin[:16])
    with torch.no_grad():
        p = attn.project(x, rope)
        state = attn.indexer(x, p.qr, rope)
        indices = attn.indexer.select(state)
        keys = indices.long().clamp(min=0)
        full_scores = attention_scores(attn, p)  # (B, H, T, T), the expanded form
        full_logits = attn.indexer.logits(state)  # (B, T, T), the kernels' reference
        gathered = selected_scores(attn, p, keys)
        logits = selected_index_logits(state, keys)

    rows = keys[:, None].expand(-1, attn.n_heads, -1, -1)
    torch.testing.assert_close(gathered, full_scores.gather(-1, rows), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, full_logits.gather(-1, keys), atol=1e-5, rtol=1e-4)
    assert torch.isfinite(logits).all()


def test_hooks_are_removed_on_exit() -> None:
    model = _model()
    tokens = torch.randint(0, 256, (1, 8))
    with AttentionProbe(model) as probe, torch.no_grad():
        model(tokens, mode="dense")
    model(tokens, mode="dense")

    assert len(probe.layers) == model.args.n_layers
