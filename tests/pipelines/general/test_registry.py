"""Registry-wide checks that every general-agent family must pass (STYLE.md §3)."""

from __future__ import annotations

import jsonschema
import pytest

from envsynth.errors import ToolError
from pipelines.general.episode import Episode
from pipelines.general.family import copy_state, load_families
from pipelines.general.synthesize import REQUIRED_PERTURBATIONS, EnvPlan, build_environment

FAMILIES = load_families()
NAMES = list(FAMILIES)
SEEDS = range(4)


def _plans(name: str) -> list[EnvPlan]:
    family = FAMILIES.get(name)
    return [EnvPlan(i, name, v.name, seed) for i, v in enumerate(family.variants) for seed in SEEDS]


@pytest.mark.parametrize("name", NAMES)
def test_definition(name: str) -> None:
    family = FAMILIES.get(name)
    assert family.summary and family.version >= 1
    assert len(family.variants) >= 4, "a family needs variants to give distinct environments"
    shapes = {
        (tuple(v.tools), tuple(sorted(v.overrides.items())), tuple(v.constraints))
        for v in family.variants
    }
    assert len(shapes) == len(family.variants), "two variants of the family are identical"
    for tool in family.tool_index.values():
        jsonschema.Draft202012Validator.check_schema(tool.spec.parameters)
        assert tool.spec.description, f"{tool.name} has no description"
        # The schema lists every field of the arguments model (a property named like a
        # schema keyword, "title", once went missing and left `required` unsatisfiable).
        fields = list(tool.arguments.model_fields)
        props = tool.spec.parameters["properties"]
        assert list(props) == fields, f"{tool.name}: schema {list(props)} vs fields {fields}"
        assert set(tool.spec.parameters.get("required", ())) <= set(props), tool.name


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_environment(name: str) -> None:
    for plan in _plans(name)[:3]:
        a, b = build_environment(plan, "d"), build_environment(plan, "d")
        assert a.env_id == b.env_id
        assert [c.task.id for c in a.candidates] == [c.task.id for c in b.candidates]


@pytest.mark.parametrize("name", NAMES)
def test_integrity_of_every_task(name: str) -> None:
    family = FAMILIES.get(name)
    accepted = total = 0
    for plan in _plans(name):
        built = build_environment(plan, "d")
        variant = family.variant(plan.variant)
        allowed = {*variant.tools, "submit"}
        for cand in built.candidates:
            total += 1
            payload = cand.task.payload
            assert {c.name for c in payload.reference} <= allowed
            assert payload.reference[-1].name == "submit"
            checks = {c.check: c for c in cand.checks}
            assert {
                "reference",
                "noop",
                *(f"perturbed:{p}" for p in REQUIRED_PERTURBATIONS),
            } <= set(checks)
            if cand.rejection is None:
                accepted += 1
                assert checks["reference"].reward == 1.0
                assert all(c.reward < 1.0 for k, c in checks.items() if k != "reference")
    assert total > 0
    assert accepted / total >= 0.6, f"{name}: only {accepted}/{total} tasks pass integrity"


@pytest.mark.parametrize("name", NAMES)
def test_invalid_calls_are_tool_errors(name: str) -> None:
    built = build_environment(_plans(name)[0], "d")
    episode = Episode(built.candidates[0].task.payload)
    before = copy_state(episode.state)
    for tool_name, args in [("no_such_tool", "{}"), ("submit", "{not json"), ("submit", "[1, 2]")]:
        with pytest.raises(ToolError):
            episode.call(tool_name, args)
    first = next(iter(episode.tools.values()))
    required = first.spec.parameters.get("required", [])
    if required:
        with pytest.raises(ToolError):
            episode.call(first.name, {required[0]: {"nested": ["wrong type"]}})
    assert episode.state == before and not episode.submitted


def _ids_in_subprocess(hash_seed: str) -> list[str]:
    """Environment and task ids of two plans per variant, computed in a fresh interpreter."""
    import os
    import subprocess
    import sys

    code = (
        "from pipelines.general.family import copy_state, load_families\n"
        "from pipelines.general.synthesize import EnvPlan, build_environment\n"
        "for name, fam in load_families().items():\n"
        "    for v in fam.variants:\n"
        "        for seed in (0, 1):\n"
        "            b = build_environment(EnvPlan(0, name, v.name, seed), 'd')\n"
        "            print(name, v.name, seed, b.env_id, *[c.task.id for c in b.candidates])\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def test_generation_is_deterministic_across_processes() -> None:
    """Same seed, same ids in another process: no set order or str hash leaks into a state."""
    a, b = _ids_in_subprocess("1"), _ids_in_subprocess("2")
    differing = sorted({" ".join(x.split()[:2]) for x, y in zip(a, b, strict=True) if x != y})
    assert not differing, f"non-deterministic generation in {differing}"
