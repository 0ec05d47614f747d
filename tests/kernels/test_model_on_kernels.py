"""The model's sparse path on the Triton kernels equals its PyTorch path, values and gradients."""

from __future__ import annotations

import torch

from kernels import assert_close
from model import ModelArgs, Transformer

ARGS = ModelArgs(d_model=32, n_layers=2, n_heads=2, q_lora_rank=16, kv_lora_rank=16,
                 qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, inter_dim=32,
                 index_n_heads=2, index_head_dim=16, index_topk=6, moe_layers=(1,),
                 moe_inter_dim=16, max_seq_len=32)  # fmt: skip


def test_sparse_model_on_kernels_matches_torch_path(device: str, gen: torch.Generator) -> None:
    torch.manual_seed(0)
    model = Transformer(ARGS).to(device)
    tokens = torch.randint(0, ARGS.vocab_size, (2, 14), generator=gen).to(device)

    runs = []
    for backend in ("triton", "torch"):
        model.zero_grad()
        out = model(tokens, mode="sparse", backend=backend)
        out.logits.square().mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        runs.append((out, grads))

    (kern, kern_grads), (ref, ref_grads) = runs
    assert all(torch.equal(a, b) for a, b in zip(kern.indices, ref.indices, strict=True))
    assert_close(kern.logits, ref.logits, abs_tol=1e-5, rel_tol=1e-4, cos_tol=1e-9, name="logits")
    assert kern_grads.keys() == ref_grads.keys()
    for name, g in kern_grads.items():
        assert_close(g, ref_grads[name], abs_tol=1e-5, rel_tol=1e-3, cos_tol=1e-8, name=name)
