"""`envsynth bench code` at a tiny size, in Docker, and the repositories it generates.

Oracles: the generated repositories are checked by running pytest on the host over their
commits (not through the pipeline's runner); the bench's image sizes against docker's own
inspection of the images; its clean-up against the image list (a look-alike image that is not
the bench's must survive). With CI=true a missing Docker daemon fails instead of skipping.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from needs import require
from rich.console import Console

from envsynth.bench.code import (
    BENCH_OWNER,
    TARGET_DISK_MB,
    bench_image_tags,
    code_table,
    remove_bench_images,
    run_code_bench,
)
from pipelines.code_agent.demo_repos import DemoSize, demo_repo, git
from sandbox.docker_sandbox import docker_client, unavailable_reason


def _pytest(repo: Path) -> dict[str, str]:
    """Outcome per test id of a host pytest run over the repository's working tree."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-q", "-p", "no:cacheprovider"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    outcomes = {}
    for line in proc.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR"):
            outcomes[rest.split(" - ")[0]] = word
    return outcomes


def _apply(repo: Path, diff: str, path: Path) -> None:
    path.write_text(diff)
    git(repo, "apply", str(path))


def test_python_demo_repo_has_one_fail_to_pass_test(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path, "python", 0, DemoSize(modules=2, tests_per_module=3, work=50))
    changed = git(repo.path, "diff", "--name-only", repo.base, repo.fix).split()
    assert sorted(changed) == ["demopy0/__init__.py", "tests/test_clamp.py"]
    assert "tests/" not in repo.patch and "demopy0/__init__.py" in repo.patch
    assert "tests/test_clamp.py" in repo.test_patch and "__init__.py" not in repo.test_patch

    git(repo.path, "checkout", "-q", repo.base)
    base = _pytest(repo.path)
    assert len(base) == 6 and set(base.values()) == {"PASSED"}
    _apply(repo.path, repo.test_patch, tmp_path / "test.diff")
    with_tests = _pytest(repo.path)
    failing = [t for t, o in with_tests.items() if o != "PASSED"]
    assert failing == ["tests/test_clamp.py::test_clamp_high"]
    _apply(repo.path, repo.patch, tmp_path / "gold.diff")
    gold = _pytest(repo.path)
    assert len(gold) == 8 and set(gold.values()) == {"PASSED"}


@pytest.mark.parametrize("language", ["javascript", "go"])
def test_other_demo_repos_split_source_from_tests(tmp_path: Path, language: str) -> None:
    repo = demo_repo(tmp_path, language, 1, DemoSize(modules=1, tests_per_module=2))
    patch_files = git(repo.path, "diff", "--name-only", repo.base, repo.fix).split()
    test_files = [f for f in patch_files if "test" in Path(f).name]
    assert len(patch_files) == 2 and len(test_files) == 1
    assert f"+++ b/{test_files[0]}" in repo.test_patch
    assert "+++ b/" + [f for f in patch_files if f not in test_files][0] in repo.patch
    assert test_files[0] not in repo.patch


def test_unknown_language_is_refused(tmp_path: Path) -> None:
    from pipelines.code_agent.candidate import CodeAgentError

    with pytest.raises(CodeAgentError, match="python"):
        demo_repo(tmp_path, "cobol")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_measures_one_python_instance_and_cleans_up_only_its_images() -> None:
    require("the code bench in Docker", unavailable_reason())
    client = docker_client()
    base = client.images.get("envsynth/base:bookworm")
    # A leftover of an earlier run (ours by its tag), and a look-alike env tag that lacks
    # our repository label: the bench removes the first and leaves the second.
    leftover, lookalike = (
        "envsynth/inst-envsynth-bench__leftover-1",
        "envsynth/env-envsynth-bench__x",
    )
    base.tag(leftover, "t")
    base.tag(lookalike, "t")
    lines: list[str] = []
    try:
        report = run_code_bench(
            python=1,
            javascript=0,
            go=0,
            runs=1,
            modules=1,
            tests_per_module=2,
            work=0,
            keep_images=True,
            log=lines.append,
        )
        assert report["removed_images"] >= 1  # the leftover
        [inst] = report["instances"]
        assert inst["setup_ok"] and inst["accepted"]
        assert inst["fail_to_pass"] == ["tests/test_clamp.py::test_clamp_high"]
        assert inst["pass_to_pass"] == 3 and inst["tests"] == 4
        assert not any("not cold" in line or "no cached" in line for line in lines)
        # cold installs packages; cached only finds two images
        assert inst["env_cold_s"] > 3 * inst["env_cached_s"] > 0
        assert 0 < inst["raw_suite_s"] < inst["validation_s"]
        # three runs' test commands, each inside a sandbox run that costs more than it
        assert 0 < inst["suite_in_validation_s"] < inst["validation_s"]
        assert inst["overhead_per_run_s"] > 0
        assert inst["ratio_issue"] == pytest.approx(inst["validation_s"] / inst["raw_suite_s"])

        inst_tags, env_tags = bench_image_tags()
        assert f"{leftover}:t" not in inst_tags and len(inst_tags) == 1 == len(env_tags)
        sizes = {t: client.images.get(t).attrs["Size"] / 1e6 for t in (*inst_tags, *env_tags)}
        assert inst["instance_image_mb"] == pytest.approx(sizes[inst_tags[0]])
        assert inst["env_image_mb"] == pytest.approx(sizes[env_tags[0]])
        assert 0 < inst["disk_mb"] < TARGET_DISK_MB
        assert 0 < inst["volume_mb"] < 50

        shown = io.StringIO()
        Console(width=300, file=shown).print(code_table(report))
        assert "envsynth-bench__python-0-1" in shown.getvalue()
        assert "val/(raw×runs)" in shown.getvalue() and "val/(raw×runs×3)" in shown.getvalue()
        assert remove_bench_images() == 2
        assert bench_image_tags() == ([], [])
        kept = client.images.get(base.id).tags
        assert f"{lookalike}:t" in kept
        assert not any(t.startswith(f"envsynth/inst-{BENCH_OWNER}__") for t in kept)
    finally:
        remove_bench_images()
        for tag in (f"{leftover}:t", f"{lookalike}:t"):
            try:
                client.images.remove(tag)
            except docker.errors.ImageNotFound:
                pass
