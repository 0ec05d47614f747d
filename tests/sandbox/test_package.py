import subprocess
import sys

import sandbox


def test_public_names() -> None:
    from sandbox import DockerSandbox, KernelSandbox, LocalSandbox, SandboxSpec

    assert SandboxSpec().network is False
    for cls, name in (
        (DockerSandbox, "docker"),
        (LocalSandbox, "local"),
        (KernelSandbox, "kernel"),
    ):
        assert sandbox.BACKENDS.get(name) is cls


def test_import_is_light() -> None:
    code = "import sys, sandbox; print('docker' in sys.modules, 'jupyter_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
