"""Sparse MLA attention over selected latent KV entries (MQA mode): forward and reference.

Every query head of a token attends to the same K selected entries of one shared latent
cache: entry s is kv[s] = [c(s) ‖ k_pe(s)] of width d_v + d_rope, where the latent c(s)
(the first d_v columns) is both key and value. Queries come absorbed into that space,
q = [q_lat ‖ q_pe]. For head h of token t with selected set S(t):

    o(t,h) = Σ_{s∈S(t)} softmax_s(scale · q(t,h)·kv[s]) · c(s)

A program takes one token and a block of its heads, so each gathered KV tile serves all
heads of the block. Indices < 0 or ≥ T_kv are padding (FlashMLA's -1) and attend nowhere;
a token with no valid index gets o = 0 and lse = -inf. The backward and the
differentiable `sparse_attention` are in `kernels.sparse_mla_backward`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

from kernels.checks import FLOATS, check_dim, check_runnable, check_same, check_tensor
from kernels.errors import KernelInputError

NAME = "sparse_attention"
LOG2E = math.log2(math.e)
INDEX_DTYPES = (torch.int32, torch.int64)


@triton.jit
def _sparse_attention_fwd_kernel(
    q_ptr,
    kv_ptr,
    idx_ptr,
    o_ptr,
    lse_ptr,
    n_heads,
    n_kv,
    top_k,
    d_v,
    d_rope,
    scale_log2,
    stride_qb,
    stride_qt,
    stride_qh,
    stride_kvb,
    stride_kvt,
    stride_ib,
    stride_it,
    stride_ob,
    stride_ot,
    stride_oh,
    stride_lb,
    stride_lt,
    BLOCK_H: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_R: tl.constexpr,
    PRECISION: tl.constexpr,
):
    n_head_blocks = tl.cdiv(n_heads, BLOCK_H)
    # int64 offsets: at 128K tokens × 64 heads × 576, t · stride_qt passes 2^31.
    t = (tl.program_id(0) // n_head_blocks).to(tl.int64)
    offs_h = (tl.program_id(0) % n_head_blocks) * BLOCK_H + tl.arange(0, BLOCK_H)
    b = tl.program_id(1).to(tl.int64)
    offs_v = tl.arange(0, BLOCK_V)
    offs_r = tl.arange(0, BLOCK_R)
    mask_h = offs_h < n_heads
    mask_v = offs_v < d_v
    mask_r = offs_r < d_rope

    q_rows = q_ptr + b * stride_qb + t * stride_qt + offs_h[:, None] * stride_qh
    q_lat = tl.load(q_rows + offs_v[None, :], mask=mask_h[:, None] & mask_v[None, :], other=0.0)
    q_pe = tl.load(
        q_rows + d_v + offs_r[None, :], mask=mask_h[:, None] & mask_r[None, :], other=0.0
    )
    kv_base = kv_ptr + b * stride_kvb
    idx_row = idx_ptr + b * stride_ib + t * stride_it

    m_i = tl.full((BLOCK_H,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_H,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_H, BLOCK_V), dtype=tl.float32)
    for k0 in range(0, top_k, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        idx = tl.load(idx_row + offs_k, mask=offs_k < top_k, other=-1)
        valid = (idx >= 0) & (idx < n_kv)
        if tl.max(valid.to(tl.int32), 0) > 0:
            kv_rows = kv_base + idx[:, None].to(tl.int64) * stride_kvt
            c = tl.load(kv_rows + offs_v[None, :], mask=valid[:, None] & mask_v[None, :], other=0.0)
            k_pe = tl.load(
                kv_rows + d_v + offs_r[None, :], mask=valid[:, None] & mask_r[None, :], other=0.0
            )
            s = tl.dot(q_lat, tl.trans(c), input_precision=PRECISION)
            s += tl.dot(q_pe, tl.trans(k_pe), input_precision=PRECISION)
            s = tl.where(valid[None, :], s * scale_log2, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp2(m_i - m_use)
            p = tl.exp2(s - m_use[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(c.dtype), c, input_precision=PRECISION)
            m_i = m_new

    has_any = l_i > 0.0
    o = acc / tl.where(has_any, l_i, 1.0)[:, None]
    log2_l = tl.log2(tl.where(has_any, l_i, 1.0))
    lse = tl.where(has_any, (m_i + log2_l) / 1.4426950408889634, float("-inf"))
    o_rows = o_ptr + b * stride_ob + t * stride_ot + offs_h[:, None] * stride_oh
    o_mask = mask_h[:, None] & mask_v[None, :]
    tl.store(o_rows + offs_v[None, :], o.to(o_ptr.dtype.element_ty), mask=o_mask)
    tl.store(lse_ptr + b * stride_lb + t * stride_lt + offs_h, lse, mask=mask_h)


def sparse_attention_reference(
    q: torch.Tensor, kv: torch.Tensor, indices: torch.Tensor, scale: float, d_v: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same attention in plain PyTorch by gathering the selected entries (differentiable).

    Args:
        q: (B, Tq, H, d_v+d_rope) absorbed queries.
        kv: (B, Tkv, d_v+d_rope) latent cache; the first d_v columns are the values.
        indices: (B, Tq, K) integer; entries < 0 or ≥ Tkv are padding.
        scale: softmax scale applied to q·kv.
        d_v: width of the latent (value) part.

    Returns:
        o: (B, Tq, H, d_v) in q's dtype, zero for a token without valid index.
        lse: (B, Tq, H) float32 natural-log sum of exp of the scaled scores, -inf without one.
    """
    b = torch.arange(q.shape[0], device=q.device)[:, None, None]
    valid = (indices >= 0) & (indices < kv.shape[1])
    picked = kv.float()[b, torch.where(valid, indices, 0).long()]
    s = torch.einsum("bthd,btkd->bthk", q.float(), picked) * scale
    s = s.masked_fill(~valid[:, :, None, :], float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - torch.where(lse.isfinite(), lse, 0.0)[..., None])
    o = torch.einsum("bthk,btkd->bthd", p, picked[..., :d_v])
    return o.to(q.dtype), lse


def check_inputs(
    q: object, kv: object, indices: object, d_v: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate (q, kv, indices, d_v) and return the tensors typed."""
    q = check_tensor(NAME, "q", q, ndim=4, dtypes=FLOATS)
    kv = check_tensor(NAME, "kv", kv, ndim=3, dtypes=FLOATS)
    indices = check_tensor(NAME, "indices", indices, ndim=3, dtypes=INDEX_DTYPES)
    b, t, _, d = q.shape
    check_dim(NAME, "kv", kv, 0, b, "q's batch size")
    check_dim(NAME, "kv", kv, 2, d, "q's head dimension (d_v + d_rope)")
    check_dim(NAME, "indices", indices, 0, b, "q's batch size")
    check_dim(NAME, "indices", indices, 1, t, "q's tokens")
    check_same(NAME, "device", q=q, kv=kv, indices=indices)
    check_same(NAME, "dtype", q=q, kv=kv)
    if not 0 < d_v <= d:
        raise KernelInputError(f"{NAME}: d_v must be in 1…{d} (q's head dimension), got {d_v}")
    check_runnable(NAME, _sparse_attention_fwd_kernel, q)
    return q, kv, indices


def launch_config(
    n_heads: int, d_v: int, d_rope: int, dtype: torch.dtype, backward: bool
) -> dict[str, Any]:
    """Block sizes, warps and dot precision the wrappers launch with."""
    # From ptxas resource usage on sm_90: at d_v = 512 in bf16 the forward does not spill
    # with 32 heads × 32 keys, the backward spills 136 B with 16 × 16; float32 takes 16 × 16.
    block_v = max(16, triton.next_power_of_2(d_v))
    wide = block_v > 128
    small = wide and (backward or dtype == torch.float32)
    block_h = (16 if small else 32) if wide else 64
    return {
        "BLOCK_H": min(block_h, max(16, triton.next_power_of_2(n_heads))),
        "BLOCK_K": 16 if small else 32,
        "BLOCK_V": block_v,
        "BLOCK_R": max(16, triton.next_power_of_2(max(d_rope, 1))),
        "PRECISION": "ieee" if dtype == torch.float32 else "tf32",
        "num_warps": 8 if wide else 4,
    }


def launch_grid(b: int, t: int, h: int, cfg: dict[str, Any]) -> tuple[int, int]:
    """One program per (token, head block) on axis 0, whose limit is 2^31 - 1; batch on axis 1.

    The head blocks of a token are neighbours, so the second gathers its KV rows from L2.
    """
    return (t * triton.cdiv(h, cfg["BLOCK_H"]), b)


def sparse_attention_forward(
    q: torch.Tensor, kv: torch.Tensor, indices: torch.Tensor, scale: float, d_v: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward by the Triton kernel, without autograd.

    Args:
        q: (B, Tq, H, d_v+d_rope) float32/bfloat16/float16, contiguous.
        kv: (B, Tkv, d_v+d_rope), q's dtype, contiguous.
        indices: (B, Tq, K) int32/int64, contiguous; < 0 or ≥ Tkv means padding.
        scale: softmax scale.
        d_v: width of the latent (value) part of kv.

    Returns:
        o: (B, Tq, H, d_v) in q's dtype.
        lse: (B, Tq, H) float32, natural log.

    Raises:
        KernelInputError: on a bad shape, dtype, layout or device.
    """
    q, kv, indices = check_inputs(q, kv, indices, d_v)
    b, t, h, d = q.shape
    o = torch.empty(b, t, h, d_v, dtype=q.dtype, device=q.device)
    lse = torch.empty(b, t, h, dtype=torch.float32, device=q.device)
    cfg = launch_config(h, d_v, d - d_v, q.dtype, backward=False)
    _sparse_attention_fwd_kernel[launch_grid(b, t, h, cfg)](
        q, kv, indices, o, lse,
        h, kv.shape[1], indices.shape[2], d_v, d - d_v, scale * LOG2E,
        q.stride(0), q.stride(1), q.stride(2),
        kv.stride(0), kv.stride(1),
        indices.stride(0), indices.stride(1),
        o.stride(0), o.stride(1), o.stride(2),
        lse.stride(0), lse.stride(1),
        **cfg,
    )  # fmt: skip
    return o, lse
