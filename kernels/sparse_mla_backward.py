"""Sparse MLA attention backward, and `sparse_attention`, differentiable by both kernels.

The backward recomputes the probabilities from the forward's log-sum-exp and scatters dKV
with fp32 atomics, since many tokens select the same entry; dq is written per token.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from kernels.errors import KernelInputError
from kernels.sparse_mla import (
    NAME,
    check_inputs,
    launch_config,
    launch_grid,
    sparse_attention_forward,
)


@triton.jit
def _sparse_attention_bwd_kernel(
    q_ptr,
    kv_ptr,
    idx_ptr,
    do_ptr,
    lse_ptr,
    delta_ptr,
    dq_ptr,
    dkv_ptr,
    n_heads,
    n_kv,
    top_k,
    d_v,
    d_rope,
    scale,
    stride_qb,
    stride_qt,
    stride_qh,
    stride_kvb,
    stride_kvt,
    stride_ib,
    stride_it,
    stride_dob,
    stride_dot,
    stride_doh,
    stride_lb,
    stride_lt,
    BLOCK_H: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_R: tl.constexpr,
    PRECISION: tl.constexpr,
):
    # dq shares q's layout, dkv kv's, and delta lse's.
    n_head_blocks = tl.cdiv(n_heads, BLOCK_H)
    # int64 offsets: at 128K tokens × 64 heads × 576, t · stride_qt passes 2^31.
    t = (tl.program_id(0) // n_head_blocks).to(tl.int64)
    offs_h = (tl.program_id(0) % n_head_blocks) * BLOCK_H + tl.arange(0, BLOCK_H)
    b = tl.program_id(1).to(tl.int64)
    offs_v = tl.arange(0, BLOCK_V)
    offs_r = tl.arange(0, BLOCK_R)
    mask_h = offs_h < n_heads
    mask_hv = mask_h[:, None] & (offs_v < d_v)[None, :]
    mask_hr = mask_h[:, None] & (offs_r < d_rope)[None, :]

    head_rows = b * stride_qb + t * stride_qt + offs_h[:, None] * stride_qh
    q_lat = tl.load(q_ptr + head_rows + offs_v[None, :], mask=mask_hv, other=0.0)
    q_pe = tl.load(q_ptr + head_rows + d_v + offs_r[None, :], mask=mask_hr, other=0.0)
    do_rows = do_ptr + b * stride_dob + t * stride_dot + offs_h[:, None] * stride_doh
    do = tl.load(do_rows + offs_v[None, :], mask=mask_hv, other=0.0)
    stat = b * stride_lb + t * stride_lt + offs_h
    lse_log2 = tl.load(lse_ptr + stat, mask=mask_h, other=0.0) * 1.4426950408889634
    delta = tl.load(delta_ptr + stat, mask=mask_h, other=0.0)
    idx_row = idx_ptr + b * stride_ib + t * stride_it

    dq_lat = tl.zeros((BLOCK_H, BLOCK_V), dtype=tl.float32)
    dq_pe = tl.zeros((BLOCK_H, BLOCK_R), dtype=tl.float32)
    for k0 in range(0, top_k, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        idx = tl.load(idx_row + offs_k, mask=offs_k < top_k, other=-1)
        valid = (idx >= 0) & (idx < n_kv)
        if tl.max(valid.to(tl.int32), 0) > 0:
            row_off = b * stride_kvb + idx[:, None].to(tl.int64) * stride_kvt
            mask_kv = valid[:, None] & (offs_v < d_v)[None, :]
            mask_kr = valid[:, None] & (offs_r < d_rope)[None, :]
            c = tl.load(kv_ptr + row_off + offs_v[None, :], mask=mask_kv, other=0.0)
            k_pe = tl.load(kv_ptr + row_off + d_v + offs_r[None, :], mask=mask_kr, other=0.0)
            s = tl.dot(q_lat, tl.trans(c), input_precision=PRECISION)
            s += tl.dot(q_pe, tl.trans(k_pe), input_precision=PRECISION)
            live = mask_h[:, None] & valid[None, :]
            p = tl.where(live, tl.exp2(s * (scale * 1.4426950408889634) - lse_log2[:, None]), 0.0)
            dp = tl.dot(do, tl.trans(c), input_precision=PRECISION)
            ds = (p * (dp - delta[:, None]) * scale).to(c.dtype)
            dq_lat += tl.dot(ds, c, input_precision=PRECISION)
            dq_pe += tl.dot(ds, k_pe, input_precision=PRECISION)
            dc = tl.dot(tl.trans(ds), q_lat, input_precision=PRECISION)
            dc += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)
            dk_pe = tl.dot(tl.trans(ds), q_pe, input_precision=PRECISION)
            tl.atomic_add(dkv_ptr + row_off + offs_v[None, :], dc, mask=mask_kv)
            tl.atomic_add(dkv_ptr + row_off + d_v + offs_r[None, :], dk_pe, mask=mask_kr)

    dq_type = dq_ptr.dtype.element_ty
    tl.store(dq_ptr + head_rows + offs_v[None, :], dq_lat.to(dq_type), mask=mask_hv)
    tl.store(dq_ptr + head_rows + d_v + offs_r[None, :], dq_pe.to(dq_type), mask=mask_hr)


def sparse_attention_backward(
    q: torch.Tensor,
    kv: torch.Tensor,
    indices: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    do: torch.Tensor,
    scale: float,
    d_v: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward by the Triton kernel: the gradients of q and kv given dL/do.

    Args:
        q, kv, indices, scale, d_v: as given to `sparse_attention_forward`.
        o: (B, Tq, H, d_v) the forward output.
        lse: (B, Tq, H) float32, the forward log-sum-exp.
        do: (B, Tq, H, d_v) gradient of the output, any layout (made contiguous here).

    Returns:
        dq: (B, Tq, H, d_v+d_rope) in q's dtype.
        dkv: (B, Tkv, d_v+d_rope) in kv's dtype, zero on entries no token selected.

    Raises:
        KernelInputError: on a bad shape, dtype, layout or device.
    """
    q, kv, indices = check_inputs(q, kv, indices, d_v)
    b, t, h, d = q.shape
    expected = {"o": (o, (b, t, h, d_v)), "do": (do, (b, t, h, d_v)), "lse": (lse, (b, t, h))}
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise KernelInputError(
                f"{NAME}: {name} has shape {tuple(tensor.shape)}, expected {shape}"
            )
    do = do.to(q.dtype).contiguous()
    lse = lse.float().contiguous()
    delta = (do.float() * o.float()).sum(dim=-1).contiguous()
    dq = torch.empty_like(q)
    dkv = torch.zeros(kv.shape, dtype=torch.float32, device=kv.device)
    cfg = launch_config(h, d_v, d - d_v, q.dtype, backward=True)
    _sparse_attention_bwd_kernel[launch_grid(b, t, h, cfg)](
        q, kv, indices, do, lse, delta, dq, dkv,
        h, kv.shape[1], indices.shape[2], d_v, d - d_v, scale,
        q.stride(0), q.stride(1), q.stride(2),
        kv.stride(0), kv.stride(1),
        indices.stride(0), indices.stride(1),
        do.stride(0), do.stride(1), do.stride(2),
        lse.stride(0), lse.stride(1),
        **cfg,
    )  # fmt: skip
    return dq, dkv.to(kv.dtype)


class _SparseAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, q: torch.Tensor, kv: torch.Tensor, indices: torch.Tensor, scale: float, d_v: int
    ) -> torch.Tensor:
        o, lse = sparse_attention_forward(q, kv, indices, scale, d_v)
        ctx.save_for_backward(q, kv, indices, o, lse)
        ctx.scale, ctx.d_v = scale, d_v
        return o

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, kv, indices, o, lse = ctx.saved_tensors
        dq, dkv = sparse_attention_backward(q, kv, indices, o, lse, do, ctx.scale, ctx.d_v)
        return dq, dkv, None, None, None


def sparse_attention(
    q: torch.Tensor, kv: torch.Tensor, indices: torch.Tensor, scale: float, d_v: int
) -> torch.Tensor:
    """Sparse MLA attention by the Triton kernels, differentiable in q and kv.

    Args:
        q: (B, Tq, H, d_v+d_rope) float32/bfloat16/float16, contiguous; absorbed queries.
        kv: (B, Tkv, d_v+d_rope), q's dtype, contiguous; latent ‖ rope key per position.
        indices: (B, Tq, K) int32/int64, contiguous; selected positions, < 0 means padding.
        scale: softmax scale applied to q·kv.
        d_v: width of the latent part, which is also the value.

    Returns:
        (B, Tq, H, d_v) in q's dtype.

    Raises:
        KernelInputError: on a bad shape, dtype, layout or device.
    """
    out: torch.Tensor = _SparseAttention.apply(q, kv, indices, scale, d_v)
    return out
