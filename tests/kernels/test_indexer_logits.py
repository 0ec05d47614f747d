"""The indexer logits kernel against its PyTorch reference."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from kernels import KernelInputError, assert_close, indexer_logits, indexer_logits_reference

Randn = Callable[..., torch.Tensor]

# (batch, query rows, heads, head dim, start_pos, keys): partial tiles, a non-power-of-two
# head dim, and a chunk of rows deep into a longer sequence.
SHAPES = [(2, 37, 3, 20, 0, 37), (1, 24, 4, 32, 40, 70)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.usefixtures("poisoned")
def test_indexer_logits_matches_reference(
    device: str, dtype: torch.dtype, shape: tuple[int, ...], randn: Randn, tol: dict[str, float]
) -> None:
    b, t, h, d, start, n_keys = shape
    q = randn(b, t, h, d, device=device, dtype=dtype)
    w = randn(b, t, h, device=device)
    k = randn(b, n_keys, d, device=device, dtype=dtype)

    out = indexer_logits(q, w, k, start)

    assert out.shape == (b, t, start + t) and out.dtype == torch.float32
    assert_close(out, indexer_logits_reference(q, w, k, start), **tol, name="logits")
    assert out[0, 0, start + 1 :].isneginf().all()  # causal: keys after the query are hidden


def test_indexer_logits_rejects_bad_inputs(randn: Randn) -> None:
    q, w, k = randn(1, 8, 2, 16), randn(1, 8, 2), randn(1, 8, 16)
    bad = {
        "k has size 12 in dimension 2": (q, w, randn(1, 8, 12), 0),
        "weights has dtype bfloat16": (q, w.bfloat16(), k, 0),
        "q must be contiguous": (randn(1, 2, 8, 16).transpose(1, 2), w, k, 0),
        "need keys up to there": (q, w, k, 3),
        "q must have 4 dimensions": (q[0], w, k, 0),
        "inputs must share one dtype": (q, w, k.half(), 0),
    }
    for message, args in bad.items():
        with pytest.raises(KernelInputError, match=message):
            indexer_logits(*args)
