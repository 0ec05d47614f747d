"""The code agent's tools — shell, file view / create / edit, submit — over one sandbox.

`TOOLS` are the specs stored with every code task; `Workspace` runs them in the agent's own
sandbox, where the repository sits at the base commit with neither the test patch nor the gold
patch. `Workspace.diff()` is what the agent submits: everything it changed, new files included.
Tool errors (a missing file, an ambiguous edit) come back as `ToolError`, which the gym shows
the agent; they never end the episode.
"""

from __future__ import annotations

import shlex

from envsynth.errors import ToolError, tool_arguments
from envsynth.schema import ToolSpec
from pipelines.code_agent.recipes import REPO_DIR
from sandbox.base import Sandbox

SHELL_TIMEOUT_S = 120.0
VIEW_LINES = 400
OUTPUT_CHARS = 20_000

SYSTEM_PROMPT = f"""You are a software engineer fixing an issue in a repository checked out at \
{REPO_DIR}. Use the tools to explore the code, reproduce the problem and change the source. \
The repository's own test suite, with tests you cannot see, decides whether the issue is \
fixed; editing tests does not help. The network is off. Call `submit` when you are done."""

TOOLS = [
    ToolSpec(
        name="shell",
        description=f"Run a bash command in {REPO_DIR} (state persists between calls). "
        "Returns the exit code and the output.",
        parameters={
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    ),
    ToolSpec(
        name="view_file",
        description="Show a file with line numbers, optionally a range of lines (1-based).",
        parameters={
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "start": {"type": "integer", "minimum": 1},
                "end": {"type": "integer", "minimum": 1},
            },
            "required": ["path"],
        },
    ),
    ToolSpec(
        name="create_file",
        description="Create or overwrite a file with the given content.",
        parameters={
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    ),
    ToolSpec(
        name="str_replace",
        description="Replace the one occurrence of `old` in a file with `new`.",
        parameters={
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "old": {"type": "string"},
                "new": {"type": "string"},
            },
            "required": ["path", "old", "new"],
        },
    ),
    ToolSpec(name="submit", description="Submit the current state of the repository."),
]
TOOL_NAMES = tuple(t.name for t in TOOLS)


class Workspace:
    """The agent's tools over `sandbox`, whose work dir holds the repository.

    `fresh_process`: the backend runs each command as a new process (LocalSandbox), so each
    shell command starts in the repository; otherwise the shell persists, `cd` included.
    """

    def __init__(self, sandbox: Sandbox, fresh_process: bool = False):
        self.sandbox = sandbox
        self.fresh_process = fresh_process
        self.sandbox.run(f"cd {REPO_DIR}", 10)

    def call(self, name: str, arguments: str) -> str:
        """Run one tool call; `ToolError` for a bad call or a failed file operation."""
        args = tool_arguments(arguments, name)
        match name:
            case "shell":
                return self.shell(_str(args, "command"))
            case "view_file":
                return self.view(_str(args, "path"), args.get("start"), args.get("end"))
            case "create_file":
                return self.create(_str(args, "path"), _str(args, "content"))
            case "str_replace":
                return self.replace(_str(args, "path"), _str(args, "old"), _str(args, "new"))
            case "submit":
                return "submitted"
        raise ToolError(f"unknown tool {name!r}; tools: {', '.join(TOOL_NAMES)}")

    def shell(self, command: str) -> str:
        if self.fresh_process:
            command = f"cd {REPO_DIR} && {command}"
        r = self.sandbox.run(command, SHELL_TIMEOUT_S)
        status = "timed out" if r.timed_out else f"exit code {r.exit_code}"
        out = (r.stdout + r.stderr)[-OUTPUT_CHARS:]
        return f"[{status}]\n{out}"

    def view(self, path: str, start: object = None, end: object = None) -> str:
        lines = self._read(path).splitlines()
        first = start if isinstance(start, int) and start >= 1 else 1
        last = end if isinstance(end, int) and end >= first else first + VIEW_LINES - 1
        shown = lines[first - 1 : last]
        body = "\n".join(f"{i:6}\t{line}" for i, line in enumerate(shown, start=first))
        more = f"\n[{len(lines) - last} more lines]" if last < len(lines) else ""
        return body + more

    def create(self, path: str, content: str) -> str:
        full = self._path(path)
        self.sandbox.run(f"mkdir -p -- {shlex.quote(full.rsplit('/', 1)[0])}", 10)
        self.sandbox.put_file(full, content.encode())
        return f"wrote {path} ({len(content.splitlines())} lines)"

    def replace(self, path: str, old: str, new: str) -> str:
        if not old:
            raise ToolError("`old` must not be empty")
        text = self._read(path)
        count = text.count(old)
        if count != 1:
            where = "not found" if count == 0 else f"found {count} times; add context"
            raise ToolError(f"`old` {where} in {path}")
        self.sandbox.put_file(self._path(path), text.replace(old, new).encode())
        return f"edited {path}"

    def diff(self) -> str:
        """Everything the agent changed since the base commit, as a git diff."""
        r = self.sandbox.run(
            f"cd {REPO_DIR} && git add -A >/dev/null 2>&1; git diff --cached --binary HEAD", 60
        )
        if r.exit_code != 0:
            raise ToolError(f"could not read the changes: {r.stderr.strip()[-500:]}")
        return r.stdout

    def _read(self, path: str) -> str:
        try:
            data = self.sandbox.get_file(self._path(path))
        except Exception as e:  # the backends' errors differ; the agent needs only the gist
            raise ToolError(f"cannot read {path}: {e}") from None
        return data.decode("utf-8", "replace")

    def _path(self, path: str) -> str:
        if not path or "\0" in path:
            raise ToolError("a path must be a non-empty string")
        return path if path.startswith("/") else f"{REPO_DIR}/{path}"


def _str(args: dict, name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise ToolError(f"argument {name!r} must be a string")
    return value
