"""MoE: the routing it reports, its output against a per-token sum, and routing replay."""

from __future__ import annotations

import pytest
import torch

from model import ModelArgs, ModelInputError
from model.moe import MoE

ARGS = ModelArgs(d_model=16, moe_inter_dim=8, n_routed_experts=5, n_activated_experts=2)


def test_moe_output_is_the_gated_sum_of_its_routed_experts_plus_the_shared_one() -> None:
    moe = MoE(ARGS)
    x = torch.randn(2, 6, ARGS.d_model)

    out = moe(x)

    assert out.routes.shape == (2, 6, 2) and out.routes.dtype == torch.int64
    scores = (x @ moe.gate.weight.t()).softmax(-1)
    assert moe.shared is not None
    for b in range(2):
        for t in range(6):
            ids = out.routes[b, t]
            assert len(set(ids.tolist())) == 2
            assert set(ids.tolist()) == set(scores[b, t].topk(2).indices.tolist())
            w = scores[b, t, ids] / scores[b, t, ids].sum()
            expected = sum(w[i] * moe.experts[int(e)](x[b, t]) for i, e in enumerate(ids))
            expected = expected + moe.shared(x[b, t])
            torch.testing.assert_close(out.out[b, t], expected, atol=1e-6, rtol=1e-5)


def test_replaying_routes_reproduces_the_output_and_other_routes_change_it() -> None:
    moe = MoE(ARGS)
    x = torch.randn(1, 7, ARGS.d_model)
    first = moe(x)

    replay = moe(x, first.routes)
    forced = moe(x, (first.routes + 1) % ARGS.n_routed_experts)

    assert torch.equal(replay.routes, first.routes)
    torch.testing.assert_close(replay.out, first.out)
    assert torch.equal(forced.routes, (first.routes + 1) % ARGS.n_routed_experts)
    assert not torch.allclose(forced.out, first.out)


@pytest.mark.parametrize(
    "routes",
    [torch.zeros(1, 7, 3, dtype=torch.long), torch.full((1, 7, 2), 5), torch.zeros(1, 7, 2)],
)
def test_bad_routes_are_rejected(routes: torch.Tensor) -> None:
    with pytest.raises(ModelInputError, match="routes must be"):
        MoE(ARGS)(torch.randn(1, 7, ARGS.d_model), routes)
