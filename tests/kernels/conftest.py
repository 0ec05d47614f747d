"""Kernel tests run on CUDA where present, else on the CPU through Triton's interpreter.

Triton decides at kernel definition (import) whether to interpret, so TRITON_INTERPRET is
set here, at conftest import, before any test module imports `kernels`; and only without
CUDA, since an interpreted kernel never tests the compiled one. A test that takes `device`
runs once per device generated below: "cpu" (interpreted, float32 only: bf16 `tl.dot` is
wrong in the interpreter) where there is no CUDA, and "cuda", marked `gpu`, everywhere. A
test that also takes `dtype` gets bfloat16 on CUDA. Without CUDA, `gpu` tests are
deselected by tests/conftest.py (and counted as such in pytest's summary).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"

# (abs, rel, cos) tolerances of kernel vs reference, FlashMLA-style.
TOLERANCES = {
    torch.float32: {"abs_tol": 2e-5, "rel_tol": 1e-4, "cos_tol": 1e-9},
    torch.bfloat16: {"abs_tol": 1e-2, "rel_tol": 2e-2, "cos_tol": 1e-4},
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" not in metafunc.fixturenames:
        return
    gpu = pytest.mark.gpu
    cases = [] if HAS_CUDA else [("cpu", torch.float32, ())]
    cases += [("cuda", torch.float32, (gpu,)), ("cuda", torch.bfloat16, (gpu,))]
    if "dtype" in metafunc.fixturenames:
        params = [
            pytest.param(dev, dt, marks=m, id=f"{dev}-{str(dt).removeprefix('torch.')}")
            for dev, dt, m in cases
        ]
        metafunc.parametrize(("device", "dtype"), params)
    else:
        devices = [] if HAS_CUDA else [pytest.param("cpu", id="cpu")]
        metafunc.parametrize("device", [*devices, pytest.param("cuda", marks=gpu, id="cuda")])


@pytest.fixture()
def gen(request: pytest.FixtureRequest) -> torch.Generator:
    """A generator seeded from the test's id: fresh inputs per test, reproducible per test."""
    return torch.Generator().manual_seed(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture()
def randn(gen: torch.Generator) -> Callable[..., torch.Tensor]:
    """randn(*shape, device=, dtype=): standard normal drawn on the CPU from `gen`."""

    def draw(*shape: int, device: str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    return draw


@pytest.fixture()
def tol(request: pytest.FixtureRequest) -> dict[str, float]:
    """The tolerances for the test's dtype (float32 when it has none)."""
    dtype = request.node.callspec.params.get("dtype", torch.float32)
    return TOLERANCES[dtype]


@pytest.fixture()
def poisoned(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make torch.empty / empty_like fill floats with NaN and integers with -7777.

    Kernel wrappers allocate their outputs with these, so an element a kernel fails to
    write shows up in the comparison instead of passing as whatever memory held.
    """
    empty, empty_like = torch.empty, torch.empty_like

    def fill(t: torch.Tensor) -> torch.Tensor:
        return t.fill_(float("nan") if t.is_floating_point() else -7777)

    def poisoned_empty(*args: Any, **kwargs: Any) -> torch.Tensor:
        return fill(empty(*args, **kwargs))

    def poisoned_empty_like(*args: Any, **kwargs: Any) -> torch.Tensor:
        return fill(empty_like(*args, **kwargs))

    monkeypatch.setattr(torch, "empty", poisoned_empty)
    monkeypatch.setattr(torch, "empty_like", poisoned_empty_like)
    yield
