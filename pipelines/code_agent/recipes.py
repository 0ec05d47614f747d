"""Install plans and test commands per build system, and the stored `EnvRecipe`.

An install plan is a list of steps; each step lists alternative commands that the setup agent
tries in order, keeping the first that succeeds (DESIGN §9). What it keeps, plus the test
command, is the `EnvRecipe`: stored with every accepted task and hashed into the name of the
environment image, so a repository's instances share one image and a rebuild is exact.

Every test command leaves machine-readable results under `JUNIT_DIR` (JUnit XML, or
`go test -json` output that `pipelines.code_agent.junit` converts), because a test's verdict
is read from a report the framework wrote, never from the exit code or the console.
"""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from envsynth.ids import content_hash
from pipelines.code_agent.detect import RepoProfile

JUNIT_DIR = "/tmp/junit"
REPO_DIR = "/work/repo"
PIP = "python -m pip install --no-input --disable-pip-version-check"
NPM_FLAGS = "--no-audit --no-fund --loglevel=error"
REQUIREMENT_FILES = (
    "requirements.txt",
    "requirements-dev.txt",
    "requirements_dev.txt",
    "dev-requirements.txt",
    "requirements-test.txt",
    "requirements_test.txt",
    "test-requirements.txt",
    "requirements/test.txt",
    "requirements/dev.txt",
    "requirements/testing.txt",
)


@dataclass(frozen=True)
class Step:
    """One install step: alternatives tried in order; the first that succeeds is kept.

    A required step with no alternative succeeding fails the set-up; an optional one is
    dropped (a repository may list a requirements file it does not need).
    """

    name: str
    alternatives: tuple[str, ...]
    required: bool = True


class EnvRecipe(BaseModel):
    """How a repository's environment is built and its tests are run.

    Attributes:
        repo: `owner/name`.
        language / build_system / test_framework: what `detect` found.
        toolchain: the sandbox toolchain image it builds on.
        install: the commands that succeeded, in order (run as root in `REPO_DIR`, with
            network, at image build time only).
        test_command: run as the sandbox user in `REPO_DIR`, without network; writes
            results under `JUNIT_DIR`.
        timeout_s: limit of one test-suite run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str
    language: str
    build_system: str
    test_framework: str
    toolchain: str
    install: tuple[str, ...] = ()
    test_command: str
    timeout_s: float = Field(600.0, gt=0)

    def digest(self) -> str:
        return content_hash(self.model_dump(mode="json"))


def install_plan(profile: RepoProfile, root: Path) -> list[Step]:
    """The steps to try for a repository with this profile, checked out at `root`."""
    match profile.build_system:
        case "pip" | "setuptools" | "poetry":
            return _python_plan(profile, root)
        case "npm" | "yarn" | "pnpm":
            return _javascript_plan(profile, root)
        case "go":
            return [
                Step("modules", ("go mod download",)),
                Step("build", ("go build ./...", "go vet ./..."), required=False),
            ]
        case "maven":
            return [Step("build", ("mvn -B -q -DskipTests install", "mvn -B -q compile"))]
        case "gradle":
            return [Step("build", ("gradle -q assemble testClasses", "gradle -q build -x test"))]
        case "cmake":
            return [
                Step("configure", ("cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug",)),
                Step("build", ("cmake --build build -j2",)),
            ]
        case "composer":
            return [
                Step("dependencies", ("composer install --no-interaction --no-progress",)),
                Step("phpunit", ("vendor/bin/phpunit --version", "phpunit --version")),
            ]
    raise ValueError(f"no install plan for build system {profile.build_system!r}")


def suite_command(profile: RepoProfile) -> str:
    """The command that runs the whole suite and leaves its report under `JUNIT_DIR`."""
    out = JUNIT_DIR
    match profile.test_framework:
        case "pytest":
            # xunit1 adds a `file` attribute, which makes the test ids path::Class::name;
            # -rA prints the summary that the log fallback reads when no XML was written;
            # a test module that fails to import (usual before the fix) must not stop the rest.
            return (
                "python -m pytest -rA -p no:cacheprovider -o junit_family=xunit1 "
                f"--continue-on-collection-errors --junitxml={out}/pytest.xml"
            )
        case "jest":
            return (
                f"JEST_JUNIT_OUTPUT_DIR={out} JEST_JUNIT_OUTPUT_NAME=jest.xml "
                "JEST_JUNIT_CLASSNAME='{filepath}' "
                "npx --no-install jest --ci --cacheDirectory=/tmp/jest-cache "
                "--reporters=default --reporters=jest-junit"
            )
        case "mocha":
            return (
                "npx --no-install mocha --reporter mocha-junit-reporter "
                f"--reporter-options mochaFile={out}/mocha.xml"
            )
        case "vitest":
            return f"npx --no-install vitest run --reporter=junit --outputFile={out}/vitest.xml"
        case "go":
            return f"go test -json ./... > {out}/go.json"
        case "surefire":
            return (
                "mvn -B -o test -Dmaven.test.failure.ignore=true; "
                f"find . -path '*surefire-reports/TEST-*.xml' -exec cp {{}} {out}/ ';'"
            )
        case "gradle":
            return (
                "gradle --offline test --continue; "
                f"find . -path '*test-results*' -name 'TEST-*.xml' -exec cp {{}} {out}/ ';'"
            )
        case "ctest":
            return (
                f"cmake --build build -j2 && ctest --test-dir build --output-junit {out}/ctest.xml"
            )
        case "phpunit":
            return (
                "if [ -x vendor/bin/phpunit ]; then P=vendor/bin/phpunit; else P=phpunit; fi; "
                f"$P --log-junit {out}/phpunit.xml"
            )
    raise ValueError(f"no test command for framework {profile.test_framework!r}")


def _python_plan(profile: RepoProfile, root: Path) -> list[Step]:
    steps = []
    if any((root / n).is_file() for n in ("pyproject.toml", "setup.py", "setup.cfg")):
        steps.append(
            Step(
                "package",
                (
                    # Unknown extras only warn, so asking for the usual test extras is safe.
                    f"{PIP} -e '.[test,tests,testing]'",
                    f"{PIP} -e .",
                    f"{PIP} .",
                ),
            )
        )
    for name in REQUIREMENT_FILES:
        if (root / name).is_file():
            steps.append(Step(f"requirements:{name}", (f"{PIP} -r {name}",), required=False))
    groups = _dependency_groups(root)
    if groups:
        quoted = " ".join(shlex.quote(d) for d in groups)
        steps.append(Step("dependency-groups", (f"{PIP} {quoted}",), required=False))
    if profile.tox:
        deps = _tox_deps(root)
        if deps:
            quoted = " ".join(shlex.quote(d) for d in deps)
            steps.append(Step("tox-deps", (f"{PIP} {quoted}",), required=False))
    steps.append(Step("pytest", ("python -m pytest --version", f"{PIP} pytest")))
    return steps


def _javascript_plan(profile: RepoProfile, root: Path) -> list[Step]:
    deps: tuple[str, ...]
    match profile.build_system:
        case "yarn":
            deps = (
                f"npm install -g {NPM_FLAGS} yarn && yarn install --frozen-lockfile",
                "yarn install",
            )
        case "pnpm":
            deps = (
                f"npm install -g {NPM_FLAGS} pnpm && pnpm install --frozen-lockfile",
                "pnpm install",
            )
        case _:
            lock = (root / "package-lock.json").is_file()
            deps = ((f"npm ci {NPM_FLAGS}",) if lock else ()) + (f"npm install {NPM_FLAGS}",)
    framework = profile.test_framework
    steps = [
        Step("dependencies", deps),
        Step(
            framework,
            (
                f"npx --no-install {framework} --version",
                f"npm install --no-save {NPM_FLAGS} {framework}",
            ),
        ),
    ]
    reporter = {"jest": "jest-junit", "mocha": "mocha-junit-reporter"}.get(framework)
    if reporter:
        steps.append(Step("junit-reporter", (f"npm install --no-save {NPM_FLAGS} {reporter}",)))
    return steps


TEST_GROUPS = ("test", "tests", "testing", "dev")


def _dependency_groups(root: Path) -> list[str]:
    """Requirements of the test-ish PEP 735 `[dependency-groups]` of pyproject.toml.

    Read here rather than with `pip install --group`, which the toolchain's pip predates;
    `{include-group = …}` entries are followed, cycles ignored.
    """
    path = root / "pyproject.toml"
    if not path.is_file():
        return []
    try:
        groups = tomllib.loads(path.read_text(errors="replace")).get("dependency-groups", {})
    except tomllib.TOMLDecodeError:
        return []
    if not isinstance(groups, dict):
        return []
    seen: set[str] = set()
    out: list[str] = []

    def visit(name: str) -> None:
        if name in seen or not isinstance(groups.get(name), list):
            return
        seen.add(name)
        for item in groups[name]:
            if isinstance(item, str) and item not in out:
                out.append(item)
            elif isinstance(item, dict) and isinstance(item.get("include-group"), str):
                visit(item["include-group"])

    for name in TEST_GROUPS:
        visit(name)
    return out


def _tox_deps(root: Path) -> list[str]:
    """The `deps` of tox's [testenv], without references to files or tox substitutions."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(root / "tox.ini")
    except configparser.Error:
        return []
    raw = parser.get("testenv", "deps", fallback="")
    deps = []
    for line in raw.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-") and not re.search(r"[{}]", line):
            deps.append(line)
    return deps
