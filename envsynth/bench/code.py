"""`envsynth bench code`: what one code instance costs in time and disk, next to its targets.

On repositories it generates with git (`pipelines.code_agent.demo_repos`: Python, JavaScript,
Go; each an issue–fix pair with a suite of configurable size), for every instance:

- **environment cold**: the setup agent from a bare repository (install trials, the
  environment image, the verifying test run) and the instance layer, with none of the bench's
  images present. The bench's own images are removed first — only those, found by their tags
  and repository label — and each run salts its repositories, so no layer is reused.
- **environment cached**: the same calls again, finding both images: what a resumed run, or
  another instance of a repository whose environment exists, pays.
- **raw suite**: the test command's own wall time in one run (`TestRun.duration_s`): the
  baseline that validation is compared with.
- **validation**: the three states × `runs`, wall time, as `validation / (raw × runs)` (the
  issue's form: target ≤ 3, once the image is cached) and `validation / (raw × runs × 3)`
  (the cost of a suite run in a sandbox over the suite alone), and the fixed cost per run.
  Validation runs the suite 3 × runs times one after the other, so the first form is three
  times the second: it meets ≤ 3 only when a sandboxed run costs no more than the suite.
- **disk**: the instance image's size minus the environment image's (target ≤ 100 MB), and
  the size of the work-dir volume a sandbox seeds from the image when it starts.

With `sdists`, the setup agent alone runs on the source distributions of small pure-Python
packages that ship their tests, fetched with pip and each made a one-commit git repository:
a stand-in for real open-source repositories, which this machine may not reach (target:
≥ 85% set up with no per-repository spec).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Group
from rich.table import Table

if TYPE_CHECKING:
    from pipelines.code_agent.demo_repos import DemoRepo

TARGET_DISK_MB = 100.0
TARGET_VALIDATION_RATIO = 3.0  # validation ≤ 3 × (raw suite time × runs)
TARGET_SETUP_RATE = 0.85
BENCH_OWNER = "envsynth-bench"
# Small pure-Python packages whose source distributions carry their test suites.
SDIST_PACKAGES = (
    "six",
    "idna",
    "more-itertools",
    "iniconfig",
    "toolz",
    "jmespath",
    "packaging",
    "click",
    "attrs",
    "itsdangerous",
    "pluggy",
    "cachetools",
)
Log = Callable[[str], None]


class InstanceResult(BaseModel):
    """The measures of one generated instance (seconds and megabytes)."""

    model_config = ConfigDict(extra="forbid")

    instance_id: str
    language: str
    tests: int
    setup_ok: bool
    setup_reason: str | None = None
    env_cold_s: float = 0.0
    instance_layer_s: float = 0.0
    env_cached_s: float = 0.0
    raw_suite_s: float = 0.0
    validation_s: float = 0.0
    suite_in_validation_s: float = 0.0
    runs: int = 0
    accepted: bool = False
    fail_to_pass: list[str] = Field(default_factory=list)
    pass_to_pass: int = 0
    env_image_mb: float = 0.0
    instance_image_mb: float = 0.0
    volume_mb: float = 0.0
    # derived by _derive from the measures above
    disk_mb: float = 0.0
    ratio_issue: float = 0.0
    ratio_per_run: float = 0.0
    overhead_per_run_s: float = 0.0


def _derive(result: InstanceResult) -> InstanceResult:
    """Fill the derived measures of a finished instance.

    - disk_mb: what the instance adds above its repository's environment image;
    - ratio_issue: validation / (raw suite × runs), the issue's form (target ≤ 3);
    - ratio_per_run: validation / (raw suite × runs × 3 states): one sandboxed run over the
      suite alone;
    - overhead_per_run_s: the cost of one validation run beyond its test command (sandbox
      start, patches, reading reports): validation minus the test commands' own time.
    """
    n = result.runs * 3
    result.disk_mb = result.instance_image_mb - result.env_image_mb
    if result.raw_suite_s > 0 and n:
        result.ratio_issue = result.validation_s / (result.raw_suite_s * result.runs)
        result.ratio_per_run = result.ratio_issue / 3
        result.overhead_per_run_s = (result.validation_s - result.suite_in_validation_s) / n
    return result


class SdistResult(BaseModel):
    """The setup agent on one package's source distribution."""

    model_config = ConfigDict(extra="forbid")

    package: str
    archive: str = ""
    ok: bool = False
    reason: str | None = None
    profile: dict[str, str] = Field(default_factory=dict)
    tests: int = 0
    passed: int = 0
    seconds: float = 0.0
    detail: str = ""


class CodeBenchReport(BaseModel):
    """Everything one `envsynth bench code` measured, with the machine and date."""

    model_config = ConfigDict(extra="forbid")

    date: str
    machine: dict[str, str]
    runs: int
    size: dict[str, int]
    instances: list[InstanceResult] = Field(default_factory=list)
    sdists: list[SdistResult] = Field(default_factory=list)
    removed_images: int = 0


def bench_image_tags(owner: str = BENCH_OWNER) -> tuple[list[str], list[str]]:
    """The instance and environment image tags the bench made for `owner`'s repositories.

    Environment images are found by their repository label, instance images by their tag:
    nothing else is ever listed, so nothing else is ever removed.
    """
    from pipelines.code_agent.environment import REPO_LABEL, image_name
    from sandbox.docker_sandbox import docker_client
    from sandbox.images import IMAGE_LABEL

    inst_prefix = image_name("inst", f"{owner}__x")[: -len("x")]
    env_prefix = image_name("env", f"{owner}/x")[: -len("x")]
    inst, env = [], []
    for image in docker_client().images.list(filters={"label": IMAGE_LABEL}):
        for tag in image.tags:
            if tag.startswith(inst_prefix):
                inst.append(tag)
            elif tag.startswith(env_prefix) and image.labels.get(REPO_LABEL, "").startswith(
                f"{owner}/"
            ):
                env.append(tag)
    return inst, env


def remove_bench_images(owner: str = BENCH_OWNER) -> int:
    """Remove the bench's instance images, then its environment images; how many tags.

    Removing a tag also removes its untagged parents (the setup agent's install trials), so
    no layer of the bench's repositories stays in docker's build cache.
    """
    from pipelines.code_agent.environment import remove_image

    inst, env = bench_image_tags(owner)
    for tag in [*inst, *env]:
        remove_image(tag)
    return len(inst) + len(env)


def _seconds(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def measure_instance(repo: DemoRepo, tmp: Path, runs: int, log: Log) -> InstanceResult:
    """Set up, validate and weigh one generated instance (its images must not exist yet)."""
    from pipelines.code_agent.environment import build_instance_image, export_tree, image_size_mb
    from pipelines.code_agent.runner import run_suite
    from pipelines.code_agent.setup_agent import setup_environment
    from pipelines.code_agent.validate import validate

    cand = repo.candidate()
    tree = export_tree(repo.path, repo.base, tmp / f"tree-{cand.instance_id}")
    result = InstanceResult(
        instance_id=cand.instance_id, language=repo.language, tests=0, setup_ok=False, runs=runs
    )
    setup, result.env_cold_s = _seconds(lambda: setup_environment(repo.repo, tree, log=log))
    if not setup.ok or setup.recipe is None or setup.image is None:
        result.setup_reason = setup.reason
        log(f"{cand.instance_id}: setup failed: {setup.reason}\n{setup.detail[-1500:]}")
        return result
    if setup.cached:
        log(f"{cand.instance_id}: the environment was cached; the cold time is not cold")
    build = partial(build_instance_image, setup.image, tree.files, tree, cand.instance_id)
    image, result.instance_layer_s = _seconds(build)
    result.env_cold_s += result.instance_layer_s

    def again() -> Any:
        return setup_environment(repo.repo, tree, log=log), build()

    (cached, _), result.env_cached_s = _seconds(again)
    if not cached.cached:
        log(f"{cand.instance_id}: the second set-up found no cached environment")
    result.setup_ok, recipe = True, setup.recipe
    raw = run_suite(image, recipe)
    result.raw_suite_s = raw.duration_s
    validation, result.validation_s = _seconds(
        lambda: validate(partial(run_suite, image, recipe), repo.test_patch, repo.patch, runs)
    )
    outcome = validation.outcome
    result.suite_in_validation_s = sum(r.duration_s for rs in validation.runs.values() for r in rs)
    result.accepted = validation.accepted
    result.fail_to_pass, result.pass_to_pass = outcome.fail_to_pass, len(outcome.pass_to_pass)
    result.tests = len(validation.runs["gold"][0].results) if validation.runs.get("gold") else 0
    result.env_image_mb, result.instance_image_mb = image_size_mb(setup.image), image_size_mb(image)
    result.volume_mb = _volume_mb(image, recipe)
    log(f"{cand.instance_id}: {validation.rejection or 'accepted'}")
    return _derive(result)


def _volume_mb(image: str, recipe: Any) -> float:
    """Megabytes of the work dir a sandbox of `image` starts with (its seeded volume)."""
    from pipelines.code_agent.runner import test_spec
    from sandbox.docker_sandbox import DockerSandbox

    spec = test_spec(image, recipe)
    with DockerSandbox(spec) as sb:
        done = sb.run(f"du -sk {spec.workdir} | cut -f1", 120)
    try:
        return int(done.stdout.strip()) * 1024 / 1e6
    except ValueError:
        return 0.0


def measure_sdist(package: str, tmp: Path, log: Log) -> SdistResult:
    """The setup agent alone on one package's source distribution."""
    from pipelines.code_agent.candidate import CodeAgentError
    from pipelines.code_agent.demo_repos import git, sdist_repository
    from pipelines.code_agent.environment import export_tree
    from pipelines.code_agent.junit import TestStatus
    from pipelines.code_agent.setup_agent import setup_environment

    result = SdistResult(package=package)
    try:
        source = sdist_repository(package, tmp / package)
    except CodeAgentError as e:
        result.reason = "download_failed"
        log(str(e))
        return result
    result.archive = source.name
    head = git(source, "rev-parse", "HEAD").strip()
    tree = export_tree(source, head, tmp / package / "tree")
    repo = f"{BENCH_OWNER}/sdist-{package}"
    setup, result.seconds = _seconds(
        lambda: setup_environment(repo, tree, use_cache=False, log=log)
    )
    result.ok, result.reason, result.profile = setup.ok, setup.reason, setup.profile
    result.detail = setup.detail[-1500:]
    if setup.verify is not None:
        result.tests = len(setup.verify.results)
        result.passed = sum(s == TestStatus.passed for s in setup.verify.results.values())
    outcome = "set up" if setup.ok else f"{setup.reason}\n{result.detail}"
    log(f"sdist {source.name}: {outcome}")
    return result


def _machine() -> dict[str, str]:
    from sandbox.docker_sandbox import docker_client

    return {
        "cpus": str(os.cpu_count() or 0),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "docker": str(docker_client().version().get("Version", "?")),
    }


def run_code_bench(
    python: int = 3,
    javascript: int = 1,
    go: int = 1,
    *,
    runs: int = 3,
    modules: int = 8,
    tests_per_module: int = 50,
    work: int = 20000,
    sdists: bool = False,
    sdist_packages: Sequence[str] | None = None,
    keep_images: bool = False,
    log: Log | None = None,
) -> dict[str, Any]:
    """Measure the code pipeline per instance on generated repositories; see the module doc.

    Args:
        python / javascript / go: how many generated repositories of each language.
        runs: validation repeats per state.
        modules / tests_per_module / work: the size of each generated suite (`DemoSize`).
        sdists: also measure the setup agent's success rate on package source distributions
            (needs the package index; takes minutes).
        sdist_packages: the packages for that (default `SDIST_PACKAGES`).
        keep_images: leave the bench's images in docker afterwards (removed by default).
        log: receives a line per step.

    Returns:
        The `CodeBenchReport` as a JSON-ready dict; `code_table` renders it.

    Raises:
        CodeAgentError: Docker cannot run sandboxes here, or a size is invalid.
    """
    from pipelines.code_agent.candidate import CodeAgentError
    from pipelines.code_agent.demo_repos import DemoSize, demo_repo
    from sandbox.docker_sandbox import unavailable_reason

    if (why := unavailable_reason()) is not None:
        raise CodeAgentError(f"envsynth bench code needs Docker: {why}")
    if min(runs, modules, tests_per_module) < 1 or min(python, javascript, go, work) < 0:
        raise CodeAgentError("runs, modules and tests per module must be ≥ 1; counts ≥ 0")
    say = log or (lambda _msg: None)
    size = DemoSize(modules, tests_per_module, work)
    report = CodeBenchReport(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=_machine(),
        runs=runs,
        size={"modules": modules, "tests_per_module": tests_per_module, "work": work},
    )
    report.removed_images = remove_bench_images()
    salt = f"{time.time_ns():x}"
    counts = {"python": python, "javascript": javascript, "go": go}
    try:
        with tempfile.TemporaryDirectory(prefix="envsynth-bench-code-") as tmp:
            root = Path(tmp)
            for language, count in counts.items():
                for i in range(count):
                    repo = demo_repo(root, language, i, size, owner=BENCH_OWNER, salt=salt)
                    report.instances.append(measure_instance(repo, root, runs, say))
            for package in (sdist_packages or SDIST_PACKAGES) if sdists else ():
                report.sdists.append(measure_sdist(package, root, say))
    finally:
        if not keep_images:
            remove_bench_images()
    return report.model_dump(mode="json")


def _verdict(value: float, target: float, at_most: bool = True) -> str:
    met = value <= target if at_most else value >= target
    return "[green]met[/green]" if met else "[red]MISSED[/red]"


def _instance_table(report: CodeBenchReport) -> Table:
    size = report.size
    table = Table(
        title=f"envsynth bench code: per instance ({report.runs} runs × 3 states; "
        f"{report.machine['cpus']} CPUs, {report.date})",
        caption=(
            f"suites of {size['modules']}×{size['tests_per_module']} tests, {size['work']} "
            "loop iterations each; cold = setup agent + instance layer, nothing cached; "
            "raw = TestRun.duration_s of one run"
        ),
    )
    cols = (
        "instance",
        "tests",
        "env cold s",
        "inst layer s",
        "env cached s",
        "raw suite s",
        "validation s",
        "val/(raw×runs) ≤3",
        "val/(raw×runs×3)",
        "per-run overhead s",
        "disk MB ≤100",
        "volume MB",
        "F2P / P2P",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "instance" else "right")
    for inst in (InstanceResult.model_validate(i) for i in report.instances):
        if not inst.setup_ok:
            table.add_row(
                inst.instance_id,
                "",
                f"{inst.env_cold_s:.1f}",
                f"[red]setup failed: {inst.setup_reason}[/red]",
                *[""] * 9,
            )
            continue
        outcome = f"{len(inst.fail_to_pass)} / {inst.pass_to_pass}"
        table.add_row(
            inst.instance_id,
            str(inst.tests),
            f"{inst.env_cold_s:.1f}",
            f"{inst.instance_layer_s:.2f}",
            f"{inst.env_cached_s:.2f}",
            f"{inst.raw_suite_s:.2f}",
            f"{inst.validation_s:.1f}",
            f"{inst.ratio_issue:.2f}× {_verdict(inst.ratio_issue, TARGET_VALIDATION_RATIO)}",
            f"{inst.ratio_per_run:.2f}×",
            f"{inst.overhead_per_run_s:.2f}",
            f"{inst.disk_mb:.2f} {_verdict(inst.disk_mb, TARGET_DISK_MB)}",
            f"{inst.volume_mb:.1f}",
            outcome if inst.accepted else f"[red]{outcome} refused[/red]",
        )
    return table


def _summary_table(report: CodeBenchReport) -> Table:
    table = Table(title="envsynth bench code: targets")
    for col in ("measure", "value", "target", "verdict"):
        table.add_column(col)
    insts = [InstanceResult.model_validate(i) for i in report.instances]
    done = [i for i in insts if i.setup_ok]
    if insts:
        rate = len(done) / len(insts)
        table.add_row(
            "setup success (generated repositories)",
            f"{len(done)}/{len(insts)}",
            f"≥ {TARGET_SETUP_RATE:.0%}",
            _verdict(rate, TARGET_SETUP_RATE, False),
        )
    if done:
        worst = max(done, key=lambda i: i.ratio_issue)
        table.add_row(
            "validation / (raw suite × runs), worst",
            f"{worst.ratio_issue:.2f}× ({worst.instance_id})",
            f"≤ {TARGET_VALIDATION_RATIO:g}×",
            _verdict(worst.ratio_issue, TARGET_VALIDATION_RATIO),
        )
        table.add_row(
            "validation / (raw suite × runs × 3), worst", f"{worst.ratio_per_run:.2f}×", "", ""
        )
        disk = max(done, key=lambda i: i.disk_mb)
        table.add_row(
            "disk above the environment image, worst",
            f"{disk.disk_mb:.2f} MB ({disk.instance_id})",
            f"≤ {TARGET_DISK_MB:g} MB",
            _verdict(disk.disk_mb, TARGET_DISK_MB),
        )
    sdists = [SdistResult.model_validate(s) for s in report.sdists]
    if sdists:
        ok = sum(s.ok for s in sdists)
        table.add_row(
            "setup success (package sdists)",
            f"{ok}/{len(sdists)}",
            f"≥ {TARGET_SETUP_RATE:.0%}",
            _verdict(ok / len(sdists), TARGET_SETUP_RATE, False),
        )
    return table


def _sdist_table(report: CodeBenchReport) -> Table:
    table = Table(title="envsynth bench code: setup agent on package source distributions")
    for col in ("sdist", "build / tests", "set up", "tests (passed)", "seconds"):
        table.add_column(col)
    for s in (SdistResult.model_validate(s) for s in report.sdists):
        profile = f"{s.profile.get('build_system', '?')} / {s.profile.get('test_framework', '?')}"
        status = "[green]yes[/green]" if s.ok else f"[red]{s.reason}[/red]"
        table.add_row(
            s.archive or s.package, profile, status, f"{s.tests} ({s.passed})", f"{s.seconds:.0f}"
        )
    return table


def code_table(report: dict[str, Any]) -> Group:
    """The per-instance table, the sdist table (when measured) and the targets."""
    parsed = CodeBenchReport.model_validate(report)
    tables = [_instance_table(parsed)] if parsed.instances else []
    if parsed.sdists:
        tables.append(_sdist_table(parsed))
    tables.append(_summary_table(parsed))
    return Group(*tables)
