"""The lightning indexer against a loop over its formula, and the top-k it selects."""

from __future__ import annotations

import math

import torch

from model import ModelArgs
from model.indexer import LightningIndexer
from model.rope import Rope, rope_tables

ARGS = ModelArgs(
    d_model=24, q_lora_rank=12, index_n_heads=3, index_head_dim=10, qk_rope_head_dim=4, index_topk=5
)


def _rotate(v: list[float], pos: int, theta: float) -> list[float]:
    """RoPE on one vector, pairs (i, i + d/2), written out."""
    half = len(v) // 2
    out = list(v)
    for i in range(half):
        a = pos * theta ** (-2 * i / len(v))
        out[i] = v[i] * math.cos(a) - v[i + half] * math.sin(a)
        out[i + half] = v[i] * math.sin(a) + v[i + half] * math.cos(a)
    return out


def _loop_logits(ix: LightningIndexer, x: torch.Tensor, qr: torch.Tensor) -> list[list[float]]:
    """I(t,s) = Σ_j w(t,j)·ReLU(q(t,j)·k(s)) with w scaled by H^-1/2·D^-1/2, one sum at a time."""
    h, d, r = ARGS.index_n_heads, ARGS.index_head_dim, ARGS.qk_rope_head_dim
    theta = ARGS.rope_theta
    wq, wk, ww = (m.weight.double().tolist() for m in (ix.wq_b, ix.wk, ix.weights_proj))
    ln_w, ln_b = ix.k_norm.weight.double().tolist(), ix.k_norm.bias.double().tolist()
    xs, qrs = x[0].double().tolist(), qr[0].double().tolist()
    n = len(xs)

    def matvec(m: list[list[float]], v: list[float]) -> list[float]:
        return [sum(a * b for a, b in zip(row, v, strict=True)) for row in m]

    keys = []
    for s in range(n):
        raw = matvec(wk, xs[s])
        mean = sum(raw) / d
        var = sum((u - mean) ** 2 for u in raw) / d
        k = [
            (u - mean) / math.sqrt(var + 1e-5) * g + c
            for u, g, c in zip(raw, ln_w, ln_b, strict=True)
        ]
        keys.append(_rotate(k[:r], s, theta) + k[r:])
    logits = [[-math.inf] * n for _ in range(n)]
    for t in range(n):
        q_all = matvec(wq, qrs[t])
        w = [u * h**-0.5 * d**-0.5 for u in matvec(ww, xs[t])]
        for s in range(t + 1):
            total = 0.0
            for j in range(h):
                q = q_all[j * d : (j + 1) * d]
                q = _rotate(q[:r], t, theta) + q[r:]
                total += w[j] * max(0.0, sum(a * b for a, b in zip(q, keys[s], strict=True)))
            logits[t][s] = total
    return logits


def test_indexer_logits_match_a_loop_over_the_formula() -> None:
    ix = LightningIndexer(ARGS)
    with torch.no_grad():
        ix.k_norm.weight.uniform_(0.5, 1.5)
        ix.k_norm.bias.uniform_(-0.2, 0.2)
    t = 9
    x, qr = torch.randn(1, t, ARGS.d_model), torch.randn(1, t, ARGS.q_lora_rank)
    rope = Rope(*rope_tables(ARGS.qk_rope_head_dim, t, ARGS.rope_theta))

    logits = ix.logits(ix(x, qr, rope))

    expected = torch.tensor(_loop_logits(ix, x, qr), dtype=torch.float64)
    assert logits.shape == (1, t, t)
    torch.testing.assert_close(logits[0].double(), expected, atol=1e-5, rtol=1e-4)


def test_selection_keeps_the_best_min_topk_t_earlier_keys() -> None:
    ix = LightningIndexer(ARGS)
    t = 12
    x, qr = torch.randn(2, t, ARGS.d_model), torch.randn(2, t, ARGS.q_lora_rank)
    state = ix(x, qr, Rope(*rope_tables(ARGS.qk_rope_head_dim, t, ARGS.rope_theta)))

    idx = ix.select(state, backend="torch")

    logits = ix.logits(state)
    assert idx.shape == (2, t, ARGS.index_topk)
    for b in range(2):
        for row in range(t):
            kept = [s for s in idx[b, row].tolist() if s >= 0]
            assert len(kept) == len(set(kept)) == min(ARGS.index_topk, row + 1)
            assert all(0 <= s <= row for s in kept)
            worst_kept = logits[b, row, kept].min()
            dropped = [s for s in range(row + 1) if s not in kept]
            assert all(logits[b, row, s] <= worst_kept for s in dropped)
