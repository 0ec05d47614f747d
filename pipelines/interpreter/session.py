"""The agent's interpreter: a live Jupyter kernel holding the task's files, and its tools.

The pipeline runs each reference solution through this session and the gym gives the agent
the same one, so a task is accepted by exactly what the agent will use.
"""

from __future__ import annotations

from collections.abc import Mapping

from envsynth.schema import ToolSpec
from sandbox.kernel import Isolation, KernelSandbox
from sandbox.spec import ExecResult, SandboxSpec

TOOLS = [
    ToolSpec(
        name="python",
        description=(
            "Run Python code in a persistent Jupyter kernel (standard library only; no "
            "network). The task's files are in the working directory. Returns what the code "
            "printed, the value of its last expression, and any error."
        ),
        parameters={
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python source"}},
            "required": ["code"],
            "additionalProperties": False,
        },
    ),
    ToolSpec(
        name="answer",
        description="Give the final answer (just the value). This ends the task.",
        parameters={
            "type": "object",
            "properties": {"answer": {"type": "string", "description": "the final answer"}},
            "required": ["answer"],
            "additionalProperties": False,
        },
    ),
]
# What one cell may cost: enough for the problems' brute-force solutions, no more.
SPEC = SandboxSpec(memory_mb=1024, wall_time_s=60.0, output_bytes=64 << 10)
# The part of a cell's output an observation shows; the rest is cut with a note.
OBSERVATION_CHARS = 4000


class KernelSession:
    """One kernel with the task's files in its working directory.

    Args:
        files: file name → text, written before the first cell.
        spec: the kernel's limits.
        isolation: "docker", "local" or "auto" (see `sandbox.kernel.kernel_starter`).
    """

    def __init__(
        self,
        files: Mapping[str, str] | None = None,
        spec: SandboxSpec = SPEC,
        isolation: Isolation = "auto",
    ):
        self.sandbox = KernelSandbox(spec, isolation=isolation)
        try:
            for name, text in (files or {}).items():
                self.sandbox.put_file(name, text.encode())
        except BaseException:
            self.sandbox.close()
            raise

    def run(self, code: str) -> ExecResult:
        """Execute one cell."""
        return self.sandbox.run(code)

    def close(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> KernelSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def observation(result: ExecResult) -> str:
    """What the agent sees of a cell: its output, its error, and how it ended."""
    parts = [result.stdout.rstrip()] if result.stdout.strip() else []
    if result.stderr.strip():
        parts.append(result.stderr.rstrip())
    if result.timed_out:
        parts.append("[the cell timed out and was interrupted]")
    elif result.exit_code not in (0, None):
        parts.append(f"[the cell raised an error (exit {result.exit_code})]")
    text = "\n".join(parts) or "[no output]"
    if len(text) > OBSERVATION_CHARS:
        cut = len(text) - OBSERVATION_CHARS
        text = text[:OBSERVATION_CHARS] + f"\n[… {cut} more characters cut]"
    return text


def last_line(result: ExecResult) -> str:
    """The last non-empty line a cell printed: where a reference solution puts its answer."""
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
