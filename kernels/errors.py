"""The one exception the kernel wrappers raise on bad input."""

from __future__ import annotations


class KernelInputError(ValueError):
    """A kernel wrapper was given tensors it cannot run on; the message says which and why."""
