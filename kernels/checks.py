"""Input checks shared by the kernel wrappers: shape, dtype, contiguity and device."""

from __future__ import annotations

from collections.abc import Collection

import torch

from kernels.errors import KernelInputError

FLOATS = (torch.float32, torch.bfloat16, torch.float16)


def check_tensor(
    kernel: str,
    name: str,
    t: object,
    *,
    ndim: int,
    dtypes: Collection[torch.dtype],
    contiguous: bool = True,
) -> torch.Tensor:
    """Check one input tensor and return it, typed.

    Raises:
        KernelInputError: `t` is not a tensor, or has the wrong rank, dtype or layout.
    """
    if not isinstance(t, torch.Tensor):
        raise KernelInputError(f"{kernel}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise KernelInputError(
            f"{kernel}: {name} must have {ndim} dimensions, got shape {tuple(t.shape)}"
        )
    if t.dtype not in dtypes:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise KernelInputError(
            f"{kernel}: {name} has dtype {str(t.dtype).removeprefix('torch.')}; "
            f"use one of {allowed} (convert with .to(...))"
        )
    if contiguous and not t.is_contiguous():
        raise KernelInputError(f"{kernel}: {name} must be contiguous; call .contiguous() first")
    return t


def check_dim(kernel: str, name: str, t: torch.Tensor, dim: int, expected: int, what: str) -> None:
    """Check that `t.shape[dim] == expected`, naming what the size must match."""
    if t.shape[dim] != expected:
        raise KernelInputError(
            f"{kernel}: {name} has size {t.shape[dim]} in dimension {dim} "
            f"(shape {tuple(t.shape)}), expected {expected} to match {what}"
        )


def check_same(kernel: str, attr: str, **tensors: torch.Tensor) -> None:
    """Check that all tensors agree on `attr` ("device" or "dtype")."""
    values = {name: getattr(t, attr) for name, t in tensors.items()}
    if len(set(values.values())) > 1:
        listing = ", ".join(
            f"{n} on {v}" if attr == "device" else f"{n}: {v}" for n, v in values.items()
        )
        raise KernelInputError(f"{kernel}: inputs must share one {attr}; got {listing}")


def check_runnable(kernel: str, jitted: object, t: torch.Tensor) -> None:
    """Check that a Triton kernel can run on `t`'s device.

    Compiled kernels need CUDA tensors; on the CPU they run only through Triton's
    interpreter, which is chosen when the kernel is defined (at import).
    """
    if t.device.type == "cuda":
        return
    from triton.runtime.interpreter import InterpretedFunction

    if not isinstance(jitted, InterpretedFunction):
        raise KernelInputError(
            f"{kernel}: got tensors on {t.device}; Triton kernels need CUDA tensors. "
            "On the CPU, set TRITON_INTERPRET=1 before importing kernels, or call the "
            "*_reference function instead."
        )
