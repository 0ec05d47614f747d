"""Language, build system and test framework detection, and the install plans it leads to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.code_agent.candidate import CodeAgentError
from pipelines.code_agent.detect import detect
from pipelines.code_agent.recipes import JUNIT_DIR, install_plan, suite_command

CASES = [
    (
        {"setup.py": "", "tox.ini": "[testenv]\ndeps =\n  pytest-mock\n  -rreq.txt\n"},
        ("python", "setuptools", "pytest"),
    ),
    ({"pyproject.toml": "[tool.poetry]\nname='x'\n"}, ("python", "poetry", "pytest")),
    ({"requirements.txt": "six\n"}, ("python", "pip", "pytest")),
    (
        {"package.json": json.dumps({"devDependencies": {"vitest": "1"}})},
        ("javascript", "npm", "vitest"),
    ),
    (
        {"package.json": json.dumps({"scripts": {"test": "mocha --recursive"}}), "yarn.lock": ""},
        ("javascript", "yarn", "mocha"),
    ),
    ({"package.json": "{}", "pnpm-lock.yaml": ""}, ("javascript", "pnpm", "jest")),
    ({"go.mod": "module x\n"}, ("go", "go", "go")),
    ({"pom.xml": "<project/>"}, ("java", "maven", "surefire")),
    ({"build.gradle.kts": ""}, ("java", "gradle", "gradle")),
    ({"CMakeLists.txt": ""}, ("cpp", "cmake", "ctest")),
    ({"composer.json": "{}"}, ("php", "composer", "phpunit")),
    # A Python package with a package.json for its docs is still Python.
    ({"setup.cfg": "", "package.json": "{}"}, ("python", "setuptools", "pytest")),
]


@pytest.mark.parametrize(("files", "expected"), CASES)
def test_detects(tmp_path: Path, files: dict[str, str], expected: tuple[str, str, str]) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    profile = detect(tmp_path)
    assert (profile.language, profile.build_system, profile.test_framework) == expected
    assert set(profile.evidence) <= set(files)
    # Every supported profile has a plan and a test command that reports under JUNIT_DIR.
    assert install_plan(profile, tmp_path)
    assert JUNIT_DIR in suite_command(profile)


def test_python_plan_tries_test_extras_first_and_keeps_tox_deps(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "requirements-dev.txt").write_text("pytest\n")
    (tmp_path / "tox.ini").write_text("[testenv]\ndeps =\n  pytest-mock  # c\n  {env:X}\n")
    steps = install_plan(detect(tmp_path), tmp_path)
    names = [s.name for s in steps]
    assert names == ["package", "requirements:requirements-dev.txt", "tox-deps", "pytest"]
    assert "[test,tests,testing]" in steps[0].alternatives[0]
    assert steps[2].alternatives[0].endswith("pytest-mock") and not steps[2].required


def test_npm_plan_uses_ci_with_a_lock_and_installs_the_reporter(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"devDependencies": {"jest": "29"}}))
    (tmp_path / "package-lock.json").write_text("{}")
    steps = install_plan(detect(tmp_path), tmp_path)
    assert steps[0].alternatives[0].startswith("npm ci")
    assert any("jest-junit" in a for s in steps for a in s.alternatives)


def test_unknown_repository_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("hi")
    with pytest.raises(CodeAgentError, match="no known build manifest.*README"):
        detect(tmp_path)


def test_broken_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{not json")
    with pytest.raises(CodeAgentError, match="package.json is not valid JSON"):
        detect(tmp_path)


def test_pep735_test_groups_are_installed_with_their_includes(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[project]\nname='x'\n[dependency-groups]\n"
        "lint = ['ruff']\ncov = ['coverage[toml]>=7']\n"
        "tests = ['hypothesis', {include-group = 'cov'}, 'pytest>=8']\n"
    )
    steps = {s.name: s for s in install_plan(detect(tmp_path), tmp_path)}
    command = steps["dependency-groups"].alternatives[0]
    assert command.endswith("hypothesis 'coverage[toml]>=7' 'pytest>=8'")
    assert "ruff" not in command and not steps["dependency-groups"].required
