"""Registry-wide checks that every general-agent family must pass (STYLE.md §3)."""

from __future__ import annotations

import jsonschema
import pytest

from envsynth.errors import ToolError
from pipelines.general.episode import Episode
from pipelines.general.family import load_families
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
            assert {"reference", "noop", *(f"perturbed:{p}" for p in REQUIRED_PERTURBATIONS)} <= set(checks)
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
    before = dict(episode.state)
    for tool_name, args in [("no_such_tool", "{}"), ("submit", "{not json"), ("submit", "[1, 2]")]:
        with pytest.raises(ToolError):
            episode.call(tool_name, args)
    first = next(iter(episode.tools.values()))
    required = first.spec.parameters.get("required", [])
    if required:
        with pytest.raises(ToolError):
            episode.call(first.name, {required[0]: {"nested": ["wrong type"]}})
    assert episode.state == before and not episode.submitted
