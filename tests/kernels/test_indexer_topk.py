"""Indexer top-k selection streamed over row chunks, against the full-matrix reference."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from kernels import KernelInputError, indexer_logits_reference, indexer_topk, indexer_topk_reference

Randn = Callable[..., torch.Tensor]


@pytest.mark.parametrize("chunk_rows", [7, None], ids=["chunks-of-7", "one-chunk"])
@pytest.mark.usefixtures("poisoned")
def test_indexer_topk_matches_reference(
    device: str, dtype: torch.dtype, chunk_rows: int | None, randn: Randn
) -> None:
    b, t, h, d, top_k, start = 2, 20, 3, 32, 8, 6
    q = randn(b, t, h, d, device=device, dtype=dtype)
    w = randn(b, t, h, device=device)
    k = randn(b, start + t, d, device=device, dtype=dtype)

    out = indexer_topk(q, w, k, top_k, start_pos=start, chunk_rows=chunk_rows)

    expected = indexer_topk_reference(q, w, k, top_k, start_pos=start)
    assert out.shape == expected.shape == (b, t, top_k)
    assert torch.equal(out >= 0, expected >= 0)
    # Rounding may swap near-ties, so compare what was selected by its reference logit:
    # every selected key scores at least the K-th best, up to rounding.
    logits = indexer_logits_reference(q, w, k, start)
    picked = logits.gather(-1, out.clamp(min=0).long()).masked_fill(out < 0, float("inf"))
    kth = logits.gather(-1, expected.clamp(min=0).long()).masked_fill(expected < 0, float("inf"))
    slack = 1e-4 * logits.masked_fill(logits.isinf(), 0).abs().amax()
    assert (picked >= kth.amin(-1, keepdim=True) - slack).all()
    assert all(len(set(row.tolist()) - {-1}) == int((row >= 0).sum()) for row in out.flatten(0, 1))
    if dtype == torch.float32 and device == "cpu":
        assert torch.equal(out, expected)


def test_indexer_topk_rejects_bad_inputs(randn: Randn) -> None:
    q, w, k = randn(1, 8, 2, 16), randn(1, 8, 2), randn(1, 8, 16)
    with pytest.raises(KernelInputError, match="top_k must be ≥ 1"):
        indexer_topk(q, w, k, 0)
    with pytest.raises(KernelInputError, match="chunk_rows must be ≥ 1"):
        indexer_topk(q, w, k, 4, chunk_rows=0)
    with pytest.raises(KernelInputError, match="weights has size 3 in dimension 1"):
        indexer_topk(q, randn(1, 3, 2), k, 4)
