"""Sparse MLA attention, forward and backward, against its gather-based PyTorch reference."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from kernels import (
    KernelInputError,
    assert_close,
    sparse_attention,
    sparse_attention_forward,
    sparse_attention_reference,
)

Randn = Callable[..., torch.Tensor]

# (batch, tokens, heads, d_v, d_rope, kv positions, top_k): heads spanning two head blocks
# and a value width that is not a power of two; top_k beyond what a token can select.
SHAPES = [(2, 9, 3, 32, 16, 20, 24), (1, 5, 20, 24, 8, 7, 40)]


def _indices(gen: torch.Generator, b: int, t: int, n_kv: int, top_k: int) -> torch.Tensor:
    """Distinct positions per token, with -1 padding, one out-of-range entry, and token 0
    of batch 0 selecting nothing."""
    idx = torch.stack(
        [torch.randperm(max(n_kv, top_k), generator=gen)[:top_k] for _ in range(b * t)]
    )
    idx = idx.view(b, t, top_k).int()
    idx[idx >= n_kv] = -1
    idx[..., -1] = n_kv + 3
    idx[0, 0] = -1
    return idx


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.usefixtures("poisoned")
def test_sparse_attention_forward_matches_reference(
    device: str,
    dtype: torch.dtype,
    shape: tuple[int, ...],
    randn: Randn,
    gen: torch.Generator,
    tol: dict[str, float],
) -> None:
    b, t, h, d_v, d_rope, n_kv, top_k = shape
    q = randn(b, t, h, d_v + d_rope, device=device, dtype=dtype)
    kv = randn(b, n_kv, d_v + d_rope, device=device, dtype=dtype)
    idx = _indices(gen, b, t, n_kv, top_k).to(device)
    scale = (d_v + d_rope) ** -0.5

    out, lse = sparse_attention_forward(q, kv, idx, scale, d_v)

    ref_out, ref_lse = sparse_attention_reference(q, kv, idx, scale, d_v)
    assert_close(out, ref_out, **tol, name="o")
    assert_close(lse, ref_lse, **tol, name="lse")
    assert (out[0, 0] == 0).all() and lse[0, 0].isneginf().all()  # token with no valid index


@pytest.mark.usefixtures("poisoned")
def test_sparse_attention_backward_matches_autograd_of_reference(
    device: str, dtype: torch.dtype, randn: Randn, gen: torch.Generator, tol: dict[str, float]
) -> None:
    b, t, h, d_v, d_rope, n_kv, top_k = 2, 6, 20, 24, 16, 10, 12
    q = randn(b, t, h, d_v + d_rope, device=device, dtype=dtype)
    kv = randn(b, n_kv, d_v + d_rope, device=device, dtype=dtype)
    idx = _indices(gen, b, t, n_kv, top_k)
    idx[idx == n_kv - 1] = -1  # so that one entry gets no gradient
    idx = idx.to(device)
    d_out = randn(b, t, h, d_v, device=device, dtype=dtype)
    scale = (d_v + d_rope) ** -0.5

    grads = []
    for attend in (sparse_attention, lambda *a: sparse_attention_reference(*a)[0]):
        q_, kv_ = q.clone().requires_grad_(), kv.clone().requires_grad_()
        attend(q_, kv_, idx, scale, d_v).backward(d_out)
        grads.append((q_.grad, kv_.grad))

    (dq, dkv), (ref_dq, ref_dkv) = grads
    assert_close(dq, ref_dq, **tol, name="dq")
    assert_close(dkv, ref_dkv, **tol, name="dkv")
    assert (dkv[:, -1] == 0).all()


def test_sparse_attention_rejects_bad_inputs(randn: Randn) -> None:
    q, kv = randn(1, 4, 2, 48), randn(1, 6, 48)
    idx = torch.zeros(1, 4, 3, dtype=torch.int32)
    bad = {
        "kv has size 40 in dimension 2": (q, randn(1, 6, 40), idx, 32),
        "indices has dtype float32": (q, kv, idx.float(), 32),
        "indices has size 5 in dimension 1": (q, kv, torch.zeros(1, 5, 3, dtype=torch.int32), 32),
        "d_v must be in 1…48": (q, kv, idx, 64),
        "kv must be contiguous": (q, randn(1, 48, 6).transpose(1, 2), idx, 32),
    }
    for message, args in bad.items():
        with pytest.raises(KernelInputError, match=message):
            sparse_attention_forward(*args[:3], 0.1, args[3])
