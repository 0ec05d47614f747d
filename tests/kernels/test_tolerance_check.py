"""The tolerance check the kernel tests rely on fails where it should."""

from __future__ import annotations

import pytest
import torch

from kernels import assert_close, compare

TOL = {"abs_tol": 1e-5, "rel_tol": 1e-4, "cos_tol": 1e-9}


def test_assert_close_accepts_rounding_and_matching_non_finites() -> None:
    x = torch.tensor([1.0, -2.0, float("inf"), float("nan"), float("-inf")])
    c = assert_close(x + 1e-6, x, **TOL)
    assert c.outside == 0 and c.max_abs == pytest.approx(1e-6, rel=0.1)


@pytest.mark.parametrize(
    ("actual", "message"),
    [
        ([1.0, float("nan"), 3.0], "NaN in different places"),
        ([1.0, 2.0, float("inf")], r"\+inf in different places"),
        ([1.0, 2.0, 3.01], "1 element"),
        ([1.0, 2.0], "shape"),
    ],
)
def test_assert_close_rejects(actual: list[float], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        assert_close(torch.tensor(actual), torch.tensor([1.0, 2.0, 3.0]), **TOL)


def test_cosine_difference_catches_a_uniform_drift_inside_elementwise_tolerance() -> None:
    expected = torch.linspace(-1, 1, 1001)
    drifted = expected * 1.00005 + 5e-6  # inside abs + rel everywhere, but systematic
    assert compare(drifted, expected, abs_tol=1e-5, rel_tol=1e-4).outside == 0
    with pytest.raises(AssertionError, match="cos diff"):
        assert_close(drifted, expected, abs_tol=1e-5, rel_tol=1e-4, cos_tol=1e-12)
