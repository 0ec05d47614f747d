"""The arrows of DESIGN §3 go one way; this test reads every import to keep it so."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["envsynth", "sandbox", "pipelines", "gyms", "model", "kernels"]
# What each package may import at module level (besides itself).
ALLOWED = {
    "envsynth": set(),
    "sandbox": {"envsynth"},
    "pipelines": {"envsynth", "sandbox"},
    "gyms": {"envsynth", "sandbox", "pipelines"},
    "kernels": set(),
    "model": {"envsynth", "kernels"},
}


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES) | ({"tests"} & found)


@pytest.mark.parametrize("package", PACKAGES)
def test_module_level_imports_follow_the_arrows(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path, top_level_only=True) - ALLOWED[package] - {package}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)} at module level"


def test_pipelines_never_import_gyms_even_lazily() -> None:
    """The pass@k filter reaches the gyms through gymnasium.make, never by import."""
    for path in (ROOT / "pipelines").rglob("*.py"):
        assert "gyms" not in _imports(path, top_level_only=False), path
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            assert "tests" not in _imports(path, top_level_only=False), path
