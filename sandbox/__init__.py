"""Where untrusted actions run: Docker, local namespaces and Jupyter kernels (DESIGN §8).

`from sandbox import DockerSandbox, LocalSandbox, KernelSandbox, SandboxSpec`. Backends are
imported on first use, so importing the package pulls in neither the Docker SDK nor
jupyter_client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sandbox.base import BACKENDS, Sandbox, SandboxError
from sandbox.spec import ExecResult, SandboxSpec

if TYPE_CHECKING:
    from sandbox.docker_sandbox import DockerSandbox
    from sandbox.kernel import KernelSandbox
    from sandbox.local import LocalSandbox

_LAZY = {
    "DockerSandbox": "sandbox.docker_sandbox",
    "LocalSandbox": "sandbox.local",
    "KernelSandbox": "sandbox.kernel",
}

__all__ = [
    "BACKENDS",
    "DockerSandbox",
    "ExecResult",
    "KernelSandbox",
    "LocalSandbox",
    "Sandbox",
    "SandboxError",
    "SandboxSpec",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
