"""Compile the kernels ahead of time for a GPU and report what they use of it.

No GPU is needed: Triton lowers a kernel for a named target and assembles it with the
ptxas it bundles, so a CPU-only machine can still learn whether the kernels build for
Hopper and whether they spill. Each kernel is built with the launch config its wrapper
picks for bfloat16 at DeepSeek-like widths (latent 512 + RoPE 64, indexer head 128).

`python -m kernels.aot [ARCH]` prints the report as JSON. It needs a process without
TRITON_INTERPRET: with it set, Triton defines its own library for the interpreter.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from kernels import indexer, sparse_mla, sparse_mla_backward, topk


@dataclass(frozen=True)
class Resources:
    """What one compiled kernel uses per thread and per block.

    Attributes:
        registers: registers per thread.
        spill_bytes: local-memory stack per thread (0 when nothing spills).
        shared_bytes: shared memory per block.
    """

    registers: int
    spill_bytes: int
    shared_bytes: int


def deepseek_cases() -> dict[str, tuple[Any, dict[str, str], dict[str, Any]]]:
    """Per kernel: the jitted function, its pointer/float argument types, its launch config."""
    bf16 = torch.bfloat16
    return {
        "indexer_logits": (
            indexer._indexer_logits_kernel,
            {"q_ptr": "*bf16", "w_ptr": "*fp32", "k_ptr": "*bf16", "out_ptr": "*fp32"},
            indexer.launch_config(128, bf16),
        ),
        "causal_topk": (
            topk._causal_topk_kernel,
            {"x_ptr": "*fp32", "out_ptr": "*i32"},
            topk.LAUNCH_CONFIG,
        ),
        "sparse_attention_fwd": (
            sparse_mla._sparse_attention_fwd_kernel,
            {"q_ptr": "*bf16", "kv_ptr": "*bf16", "idx_ptr": "*i32", "o_ptr": "*bf16",
             "lse_ptr": "*fp32", "scale_log2": "fp32"},
            sparse_mla.launch_config(64, 512, 64, bf16, backward=False),
        ),
        "sparse_attention_bwd": (
            sparse_mla_backward._sparse_attention_bwd_kernel,
            {"q_ptr": "*bf16", "kv_ptr": "*bf16", "idx_ptr": "*i32", "do_ptr": "*bf16",
             "lse_ptr": "*fp32", "delta_ptr": "*fp32", "dq_ptr": "*bf16", "dkv_ptr": "*fp32",
             "scale": "fp32"},
            sparse_mla.launch_config(64, 512, 64, bf16, backward=True),
        ),
    }  # fmt: skip


def compile_for(arch: int = 90) -> dict[str, Resources]:
    """Compile every kernel for CUDA compute capability `arch` and read its resource usage.

    Raises:
        RuntimeError: when called with TRITON_INTERPRET set.
    """
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("kernels.aot needs a process without TRITON_INTERPRET; unset it")
    report = {}
    for name, (fn, types, config) in deepseek_cases().items():
        constexprs = {k: v for k, v in config.items() if k.isupper()}
        options = {k: v for k, v in config.items() if not k.isupper()}
        signature = {
            arg: "constexpr" if arg in constexprs else types.get(arg, "i32") for arg in fn.arg_names
        }
        compiled = triton.compile(
            ASTSource(fn, signature, constexprs),
            target=GPUTarget("cuda", arch, 32),
            options=options,
        )
        registers, stack = _usage(compiled.asm["cubin"])
        report[name] = Resources(registers, stack, compiled.metadata.shared)
    return report


def _usage(cubin: bytes) -> tuple[int, int]:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run(
            [tool, "--dump-resource-usage", f.name], capture_output=True, text=True, check=True
        ).stdout
    found = re.search(r"REG:(\d+) STACK:(\d+)", out)
    if found is None:
        raise RuntimeError(f"cuobjdump printed no resource usage:\n{out}")
    return int(found.group(1)), int(found.group(2))


if __name__ == "__main__":
    arch = int(sys.argv[1]) if len(sys.argv) > 1 else 90
    print(json.dumps({k: asdict(v) for k, v in compile_for(arch).items()}))
