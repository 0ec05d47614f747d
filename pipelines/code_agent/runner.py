"""Run a repository's test suite in a fresh sandbox and read the per-test results.

This is the one place that decides whether a test passed: validation (F2P / P2F) and the
CodeAgent gym's reward both call `run_suite`, so acceptance and reward cannot drift apart
(DESIGN §3). Each run gets a new hardened container of the instance image with the network
off; patches are applied with `git apply` inside it; results are read from the reports the
framework wrote under `JUNIT_DIR` — never from the exit code or the console — and only when
no report exists is the console log parsed, for frameworks whose log format is known.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from pydantic import BaseModel, ConfigDict, Field

from pipelines.code_agent.candidate import CodeAgentError
from pipelines.code_agent.junit import (
    JUnitError,
    TestStatus,
    go_test_json_to_junit,
    parse_log,
    read_junit_files,
)
from pipelines.code_agent.recipes import JUNIT_DIR, REPO_DIR, EnvRecipe
from sandbox.docker_sandbox import DockerSandbox
from sandbox.pool import Pool
from sandbox.spec import SandboxSpec

LOG_TAIL = 64 * 1024
LOG_FRAMEWORKS = ("pytest", "go")  # those whose console summary parse_log can read


class PatchApplyError(CodeAgentError):
    """A patch did not apply to the repository; the message has git's reason."""

    def __init__(self, name: str, message: str):
        super().__init__(f"the {name} patch does not apply: {message}")
        self.name = name


class TestRun(BaseModel):
    """One run of the suite.

    Attributes:
        results: test id → status, for every test the report lists.
        source: where the results came from: junit | log | none.
        exit_code / timed_out: of the test command (informative only).
        duration_s: the test command's wall time.
        log: the tail of the command's output (stored by hash, not inline).
        problem: why there are no results, when there are none.
    """

    model_config = ConfigDict(extra="forbid")
    __test__ = False  # not a pytest test class, despite the name

    results: dict[str, TestStatus] = Field(default_factory=dict)
    source: str = "none"
    exit_code: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    log: str = ""
    problem: str | None = None


def test_spec(image: str, recipe: EnvRecipe) -> SandboxSpec:
    """The sandbox a suite runs in: the instance image, no network, generous limits."""
    return SandboxSpec(
        image=image,
        workdir_from_image=True,
        network=False,
        cpus=2.0,
        memory_mb=2048,
        pids=1024,
        disk_mb=1024,
        wall_time_s=recipe.timeout_s,
        output_bytes=4 << 20,
    )


@contextmanager
def suite_runner(
    image: str, recipe: EnvRecipe, *, prestart: int = 1
) -> Iterator[Callable[[Sequence[tuple[str, str]]], TestRun]]:
    """`run_suite` for many runs of one image, each in a fresh sandbox started ahead.

    While one run executes, the next run's container is already starting (a pool of
    `prestart` sandboxes that are taken, never reused), which hides most of the per-run
    start-up of repeated validation runs.
    """
    spec = test_spec(image, recipe)
    pool: Pool[DockerSandbox] = Pool(
        lambda: DockerSandbox(spec),
        size=prestart,
        max_live=prestart + 1,
        reset=lambda _sb: False,
        close=DockerSandbox.close,
    )
    # Removing a used container takes a few hundred ms: done aside, while the next run goes.
    closer = ThreadPoolExecutor(1, thread_name_prefix="envsynth-suite-close")
    try:
        yield lambda patches: run_suite(
            image,
            recipe,
            patches,
            sandbox=pool.take(),
            close=lambda sb: closer.submit(sb.close),
        )
    finally:
        pool.close()
        closer.shutdown(wait=True)


def run_suite(
    image: str,
    recipe: EnvRecipe,
    patches: Sequence[tuple[str, str]] = (),
    *,
    spec: SandboxSpec | None = None,
    sandbox: DockerSandbox | None = None,
    close: Callable[[DockerSandbox], object] = DockerSandbox.close,
) -> TestRun:
    """Apply `patches` (name, unified diff) in order and run the suite once.

    The run gets a new sandbox of `image` (or `sandbox`, fresh and unused), and hands it to
    `close` when done. Raises `PatchApplyError` when a patch does not apply; other failures
    (the suite crashed, wrote no report) are a `TestRun` with no results and a `problem`.
    """
    sb = sandbox or DockerSandbox(spec or test_spec(image, recipe))
    try:
        for i, (name, diff) in enumerate(patches):
            if not diff.strip():
                continue
            path = f"/tmp/envsynth-{i}.diff"
            sb.put_file(path, diff.encode("utf-8", "surrogateescape"))
            applied = sb.run(
                f"cd {REPO_DIR} && git apply --whitespace=nowarn {path} && rm {path}", 60
            )
            if applied.exit_code != 0:
                raise PatchApplyError(name, (applied.stderr or applied.stdout).strip()[-2000:])
        start = time.monotonic()
        done = sb.run(f"mkdir -p {JUNIT_DIR} && cd {REPO_DIR} && {recipe.test_command}")
        duration = time.monotonic() - start
        log = (done.stdout + done.stderr)[-LOG_TAIL:]
        run = TestRun(
            exit_code=done.exit_code, timed_out=done.timed_out, duration_s=duration, log=log
        )
        reports = _reports(sb)
    finally:
        close(sb)
    try:
        if recipe.test_framework == "go":
            reports = [go_test_json_to_junit(r) for r in reports]
        if reports:
            run.results = read_junit_files(reports, framework=recipe.test_framework)
            run.source = "junit"
            return run
    except JUnitError as e:
        run.problem = f"unreadable report: {e}"
    if recipe.test_framework in LOG_FRAMEWORKS:
        parsed = parse_log(done.stdout, recipe.test_framework)
        if parsed:
            run.results, run.source, run.problem = parsed, "log", None
            return run
    if run.problem is None:
        run.problem = "timed out" if done.timed_out else "the test command wrote no report"
    return run


def _reports(sb: DockerSandbox) -> list[bytes]:
    listing = sb.run(f"ls -1 {JUNIT_DIR} 2>/dev/null", 30)
    names = sorted(n for n in listing.stdout.splitlines() if n.endswith((".xml", ".json")))
    return [sb.get_file(f"{JUNIT_DIR}/{n}") for n in names]
