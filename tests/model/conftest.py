"""Model tests run the PyTorch path; this only keeps `kernels` importable in either order.

Triton decides at kernel definition whether to interpret, and these tests import `model`,
which imports `kernels`. Without CUDA, set TRITON_INTERPRET first, as tests/kernels does,
so that running this directory before that one leaves the kernel tests runnable.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
