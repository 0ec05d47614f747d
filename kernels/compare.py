"""Tolerance checks of a kernel's output against its reference, in the manner of FlashMLA's tests.

Three measures are taken on the finite elements: the largest absolute difference, the
largest difference relative to the reference, and the cosine difference
1 - 2·Σxy / Σ(x² + y²) of the two tensors seen as vectors, which catches a systematic error
that stays under the elementwise tolerances. Non-finite values must sit in the same places:
a NaN where the reference has one, an inf of the same sign where the reference has one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Closeness:
    """How far an output is from its reference.

    Attributes:
        max_abs: largest |actual - expected| over finite elements.
        max_rel: largest |actual - expected| / |expected| over finite, non-zero references.
        cos_diff: 1 - 2·Σxy / Σ(x² + y²) over finite elements (0 when equal).
        outside: number of finite elements outside abs_tol + rel_tol·|expected|.
    """

    max_abs: float
    max_rel: float
    cos_diff: float
    outside: int


def compare(
    actual: torch.Tensor, expected: torch.Tensor, *, abs_tol: float, rel_tol: float
) -> Closeness:
    """Measure `actual` against `expected` (same shape) in float64 on the CPU."""
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    finite = torch.isfinite(e) & torch.isfinite(a)
    a, e = a[finite], e[finite]
    diff = (a - e).abs()
    if diff.numel() == 0:
        return Closeness(0.0, 0.0, 0.0, 0)
    nonzero = e != 0
    max_rel = (diff[nonzero] / e[nonzero].abs()).max().item() if nonzero.any() else 0.0
    denom = (a * a + e * e).sum().item()
    cos_diff = 1 - 2 * (a * e).sum().item() / denom if denom > 0 else 0.0
    outside = int((diff > abs_tol + rel_tol * e.abs()).sum().item())
    return Closeness(diff.max().item(), max_rel, cos_diff, outside)


def assert_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    *,
    abs_tol: float,
    rel_tol: float,
    cos_tol: float,
    name: str = "output",
) -> Closeness:
    """Raise AssertionError unless `actual` matches `expected` within the tolerances.

    Returns:
        The measured closeness, for reporting.
    """
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    a, e = actual.detach().cpu(), expected.detach().cpu()
    if a.is_floating_point() or e.is_floating_point():
        a, e = a.double(), e.double()
        for what, fa, fe in (
            ("NaN", a.isnan(), e.isnan()),
            ("+inf", a.isposinf(), e.isposinf()),
            ("-inf", a.isneginf(), e.isneginf()),
        ):
            if not torch.equal(fa, fe):
                bad = (fa != fe).nonzero()[:5].tolist()
                raise AssertionError(f"{name}: {what} in different places, e.g. at {bad}")
    c = compare(a, e, abs_tol=abs_tol, rel_tol=rel_tol)
    if c.outside or c.cos_diff > cos_tol:
        raise AssertionError(
            f"{name}: {c.outside} element(s) outside abs {abs_tol:g} + rel {rel_tol:g}; "
            f"max abs {c.max_abs:.3g}, max rel {c.max_rel:.3g}, cos diff {c.cos_diff:.3g} "
            f"(tolerance {cos_tol:g})"
        )
    return c
