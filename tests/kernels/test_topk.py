"""The streaming causal top-k kernel against a stable sort of the same logits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from kernels import KernelInputError, causal_topk, causal_topk_reference

Randn = Callable[..., torch.Tensor]


@pytest.mark.parametrize(
    ("shape", "top_k", "start"),
    # rows that see fewer keys than top_k and rows that see more; a chunk deep in a
    # sequence, wider than one column block; top_k above every row's count.
    [((2, 24, 24), 8, 0), ((1, 6, 1100), 40, 1094), ((1, 5, 9), 100, 0)],
    ids=str,
)
@pytest.mark.usefixtures("poisoned")
def test_causal_topk_matches_reference(
    device: str, shape: tuple[int, int, int], top_k: int, start: int, randn: Randn
) -> None:
    logits = randn(*shape, device=device)

    out = causal_topk(logits, top_k, start)

    assert out.dtype == torch.int32
    assert torch.equal(out.cpu(), causal_topk_reference(logits, top_k, start).cpu())
    rows = torch.arange(shape[1], device=device)
    kept = (out >= 0).sum(-1)
    assert torch.equal(kept, (start + rows + 1).clamp(max=min(top_k, shape[2])).expand_as(kept))


@pytest.mark.usefixtures("poisoned")
def test_causal_topk_breaks_ties_towards_lower_columns(device: str, gen: torch.Generator) -> None:
    # Few distinct values (signed zeros among them), so most rows cut through a run of ties.
    values = torch.tensor([-1.0, -0.0, 0.0, 2.0, float("-inf")])
    logits = values[torch.randint(0, 5, (1, 20, 20), generator=gen)].to(device)

    out = causal_topk(logits, 6)

    assert torch.equal(out.cpu(), causal_topk_reference(logits, 6).cpu())


def test_causal_topk_rejects_bad_inputs(randn: Randn) -> None:
    logits = randn(1, 4, 4)
    with pytest.raises(KernelInputError, match="top_k ≥ 1"):
        causal_topk(logits, 0)
    with pytest.raises(KernelInputError, match="dtype float16"):
        causal_topk(logits.half(), 2)
    with pytest.raises(KernelInputError, match="must have 3 dimensions"):
        causal_topk(logits[0], 2)
