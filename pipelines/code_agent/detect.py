"""What a repository is built and tested with, read from the files at its root.

The environment-setup agent starts from this guess; no repository needs a hand-written spec.
Detection only reads files (manifests, lock files, test configs); it never runs anything.
The first manifest found in `LANGUAGE_ORDER` decides the language, so a Python package with
a `package.json` for its docs is still Python.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipelines.code_agent.candidate import CodeAgentError

Language = Literal["python", "javascript", "go", "java", "cpp", "php"]

# language → the sandbox toolchain image (sandbox.images.RECIPES) its environments build on
TOOLCHAIN: dict[Language, str] = {
    "python": "python",
    "javascript": "node",
    "go": "go",
    "java": "java",
    "cpp": "cpp",
    "php": "php",
}


@dataclass(frozen=True)
class RepoProfile:
    """The detected language, build system and test framework, with the evidence.

    Attributes:
        language: the repository's main language.
        build_system: pip | setuptools | poetry | npm | yarn | pnpm | go | maven | gradle |
            cmake | make | composer.
        test_framework: pytest | jest | vitest | mocha | go | surefire | gradle | ctest |
            phpunit.
        tox: a tox.ini / [tool.tox] is present (its test deps are installed directly: tox
            itself would build virtualenvs from the network when the tests run offline).
        evidence: the files that decided it.
    """

    language: Language
    build_system: str
    test_framework: str
    tox: bool = False
    evidence: tuple[str, ...] = ()

    @property
    def toolchain(self) -> str:
        return TOOLCHAIN[self.language]


def detect(root: Path) -> RepoProfile:
    """Profile the repository checked out at `root`; `CodeAgentError` if nothing is known."""
    for probe in (_python, _javascript, _go, _java, _cpp, _php):
        profile = probe(root)
        if profile is not None:
            return profile
    present = sorted(p.name for p in root.iterdir())[:20] if root.is_dir() else []
    raise CodeAgentError(
        f"no known build manifest at the root of {root} (saw {present}); supported: Python "
        "(pyproject.toml, setup.py, setup.cfg, requirements.txt), JavaScript (package.json), "
        "Go (go.mod), Java (pom.xml, build.gradle), C/C++ (CMakeLists.txt, Makefile), "
        "PHP (composer.json)"
    )


def _python(root: Path) -> RepoProfile | None:
    manifests = [
        n
        for n in ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "tox.ini")
        if (root / n).is_file()
    ]
    if not manifests:
        return None
    pyproject = _toml(root / "pyproject.toml")
    tool = pyproject.get("tool", {})
    if "poetry" in tool:
        build = "poetry"
    elif (root / "setup.py").is_file() or (root / "setup.cfg").is_file() or pyproject:
        build = "setuptools"
    else:
        build = "pip"
    tox = (root / "tox.ini").is_file() or "tox" in tool
    return RepoProfile("python", build, "pytest", tox=tox, evidence=tuple(manifests))


def _javascript(root: Path) -> RepoProfile | None:
    manifest = root / "package.json"
    if not manifest.is_file():
        return None
    try:
        package = json.loads(manifest.read_text(errors="replace"))
    except json.JSONDecodeError as e:
        raise CodeAgentError(f"{manifest} is not valid JSON: {e}") from None
    if (root / "pnpm-lock.yaml").is_file():
        build = "pnpm"
    elif (root / "yarn.lock").is_file():
        build = "yarn"
    else:
        build = "npm"
    deps = {
        **(package.get("dependencies") or {}),
        **(package.get("devDependencies") or {}),
    }
    script = str((package.get("scripts") or {}).get("test", ""))
    framework = "jest"  # the most common default when nothing says otherwise
    for name in ("vitest", "jest", "mocha"):
        if name in deps or re.search(rf"\b{name}\b", script):
            framework = name
            break
    return RepoProfile("javascript", build, framework, evidence=("package.json",))


def _go(root: Path) -> RepoProfile | None:
    if not (root / "go.mod").is_file():
        return None
    return RepoProfile("go", "go", "go", evidence=("go.mod",))


def _java(root: Path) -> RepoProfile | None:
    if (root / "pom.xml").is_file():
        return RepoProfile("java", "maven", "surefire", evidence=("pom.xml",))
    for name in ("build.gradle", "build.gradle.kts"):
        if (root / name).is_file():
            return RepoProfile("java", "gradle", "gradle", evidence=(name,))
    return None


def _cpp(root: Path) -> RepoProfile | None:
    if (root / "CMakeLists.txt").is_file():
        return RepoProfile("cpp", "cmake", "ctest", evidence=("CMakeLists.txt",))
    if (root / "Makefile").is_file() and any(root.glob("**/*.c*")):
        return RepoProfile("cpp", "make", "ctest", evidence=("Makefile",))
    return None


def _php(root: Path) -> RepoProfile | None:
    if not (root / "composer.json").is_file():
        return None
    return RepoProfile("php", "composer", "phpunit", evidence=("composer.json",))


def _toml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(errors="replace"))
    except tomllib.TOMLDecodeError as e:
        raise CodeAgentError(f"{path} is not valid TOML: {e}") from None
