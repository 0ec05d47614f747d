"""The kernels build for Hopper (sm_90) at DeepSeek-like shapes, checked without a GPU.

The interpreter checks what a kernel computes, not whether Triton can lower it for a GPU
nor whether it fits there. `kernels.aot` compiles each kernel for sm_90 with the launch
config its wrapper picks and reports ptxas's resource usage. It runs in a subprocess
because this process interprets Triton (TRITON_INTERPRET is set by conftest without CUDA).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SHARED_LIMIT = 227 * 1024
# The backward holds q, dO and dq of 16 heads × 512 and spills a little (136 B per thread
# when written); it is the training path, the forward kernels are the benchmark's.
MAY_SPILL = {"sparse_attention_bwd"}


@pytest.fixture(scope="module")
def report() -> dict[str, dict[str, int]]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-m", "kernels.aot", "90"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, dict[str, int]] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_every_kernel_builds_for_sm90_within_shared_memory(
    report: dict[str, dict[str, int]],
) -> None:
    assert set(report) == {
        "indexer_logits", "causal_topk", "sparse_attention_fwd", "sparse_attention_bwd"
    }  # fmt: skip
    for name, usage in report.items():
        assert 0 < usage["registers"] <= 255, name
        assert usage["shared_bytes"] <= SHARED_LIMIT, name


@pytest.mark.slow
def test_forward_kernels_do_not_spill(report: dict[str, dict[str, int]]) -> None:
    spills = {k: v["spill_bytes"] for k, v in report.items() if k not in MAY_SPILL}
    assert all(b == 0 for b in spills.values()), spills
