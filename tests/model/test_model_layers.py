"""RMSNorm and RoPE against their formulas."""

from __future__ import annotations

import math

import torch

from model.norm import RMSNorm
from model.rope import Rope, rope_tables


def test_rmsnorm_matches_formula() -> None:
    x = torch.randn(3, 5, 16)
    norm = RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x64, w64 = x.double(), norm.weight.double()
    expected = x64 / torch.sqrt((x64**2).mean(-1, keepdim=True) + 1e-6) * w64
    torch.testing.assert_close(norm(x).double(), expected, atol=1e-6, rtol=1e-5)


def test_rope_tables_match_the_angles() -> None:
    cos, sin = rope_tables(8, 50, theta=100.0)
    pos, i = 37, 3
    angle = pos * 100.0 ** (-2 * i / 8)
    assert math.isclose(cos[pos, i].item(), math.cos(angle), abs_tol=1e-6)
    assert math.isclose(sin[pos, i].item(), math.sin(angle), abs_tol=1e-6)


def test_rope_scores_depend_only_on_relative_position() -> None:
    d, n = 16, 40
    rope = Rope(*rope_tables(d, n, theta=10000.0))
    q, k = torch.randn(d), torch.randn(d)
    rq = rope.apply(q.expand(1, n, d))[0]  # q placed at every position
    rk = rope.apply(k.expand(1, n, d))[0]
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(n), atol=1e-5)
    for shift in (1, 7, 20):
        assert math.isclose(
            (rq[5] @ rk[2]).item(), (rq[5 + shift] @ rk[2 + shift]).item(), abs_tol=1e-4
        )
    assert not math.isclose((rq[5] @ rk[2]).item(), (rq[5] @ rk[3]).item(), abs_tol=1e-4)
