"""dependency_resolution: the verifier against a hand-worked index and an exhaustive search
whose version ranges are evaluated by `packaging`, not by the family's own parser."""

from __future__ import annotations

import copy
import itertools
import math
import random

import pytest
from packaging import specifiers  # a dev dependency: an independent range parser

from envsynth.errors import ToolError
from pipelines.general.families import dependency_resolution as dr
from pipelines.general.family import load_families

FAMILY = load_families().get("dependency_resolution")


def _row(version: str, deps: dict | None = None, conflicts: dict | None = None,
         yanked: bool = False) -> dict:
    return {"version": version, "deps": deps or {}, "conflicts": conflicts or {}, "yanked": yanked}


def _state() -> dict:
    return {"split_conflicts": False, "lockfile": None, "packages": [
        {"name": "app", "versions": [_row("1.0.0", {"lib": ">=1.0.0,<2.0.0"}),
                                     _row("2.0.0", {"lib": ">=2.0.0"})]},
        {"name": "cli", "versions": [_row("1.0.0", {"lib": "<1.5.0"}),
                                     _row("1.1.0", {"lib": ">=2.0.0"}, {"core": ">=1.2.0"})]},
        {"name": "core", "versions": [_row("1.0.0"), _row("1.1.0", yanked=True),
                                      _row("1.2.0")]},
        {"name": "extra", "versions": [_row("1.0.0")]},
        {"name": "lib", "versions": [_row("1.0.0"), _row("1.5.0", {"core": "<1.1.0"}),
                                     _row("2.0.0", {"core": ">=1.1.0"})]},
    ]}


# Worked by hand: app 2.0.0 needs lib 2.0.0, hence core >= 1.1.0; cli 1.1.0 then needs
# core 1.1.0 (1.2.0 conflicts), which is yanked, and cli 1.0.0 needs lib < 1.5.0. So app
# drops to 1.0.0, and cli 1.0.0 forces lib 1.0.0, which needs nothing.
GOAL = {"requested": ["app", "cli"], "locked": {}, "no_yanked": True,
        "newest": {"app": "1.0.0", "cli": "1.0.0"}}
ANSWER = ["app==1.0.0", "cli==1.0.0", "lib==1.0.0"]


def test_hand_worked_resolution_passes() -> None:
    verdict = FAMILY.verify(_state(), {"pins": ANSWER}, GOAL)
    assert verdict.reward == 1.0, verdict.reason


def test_search_finds_the_hand_worked_optimum() -> None:
    found = dr._Search(dr._index(_state()), ["app", "cli"], {}).run()
    assert found == {"app": "1.0.0", "cli": "1.0.0", "lib": "1.0.0"}


@pytest.mark.parametrize(("pins", "failing"), [
    ([*ANSWER, "extra==1.0.0"], "closure"),                       # installs something unasked
    (["app==1.0.0", "cli==1.0.0", "lib==1.5.0", "core==1.0.0"], "consistent"),  # cli: lib<1.5
    (["app==2.0.0", "cli==1.1.0", "lib==2.0.0", "core==1.1.0"], "not_yanked"),
    (["app==1.0.0", "lib==1.0.0"], "requested"),
    (["app==1.0.0", "cli==1.0.0"], "consistent"),                 # lib left out
])
def test_near_misses_fail(pins: list[str], failing: str) -> None:
    verdict = FAMILY.verify(_state(), {"pins": pins}, GOAL)
    assert verdict.reward == 0.0
    assert verdict.components[failing] == 0.0


def test_newest_is_enforced_only_when_asked() -> None:
    old = {"pins": ["lib==1.0.0"]}
    newest = {"requested": ["lib"], "locked": {}, "no_yanked": True,
              "newest": {"lib": "2.0.0"}}
    assert FAMILY.verify(_state(), old, newest).reward == 0.0
    assert FAMILY.verify(_state(), {"pins": ["lib==2.0.0", "core==1.2.0"]}, newest).reward == 1.0
    assert FAMILY.verify(_state(), old, {**newest, "newest": None}).reward == 1.0


def test_locked_pins_must_stay() -> None:
    goal = {"requested": ["cli"], "locked": {"core": "1.2.0"}, "no_yanked": True, "newest": None}
    assert FAMILY.verify(_state(), {"pins": ["cli==1.0.0", "lib==1.0.0", "core==1.2.0"]},
                         goal).reward == 1.0
    assert FAMILY.verify(_state(), {"pins": ["cli==1.0.0", "lib==1.0.0"]}, goal).reward == 0.0


@pytest.mark.parametrize("answer", [None, {"pins": ["app==9.9.9"]},
                                    {"pins": ["app==1.0.0", "app==1.0.0"]}, {"pins": ["app"]}])
def test_malformed_answers_fail(answer: dict | None) -> None:
    assert FAMILY.verify(_state(), answer, GOAL).reward == 0.0


@pytest.mark.parametrize(("name", "args"), [
    ("get_metadata", {"name": "app", "version": "3.0.0"}),
    ("get_metadata", {"name": "nope", "version": "1.0.0"}),
    ("list_versions", {"name": "nope"}),
    ("search_packages", {"query": "a"}),
    ("dry_run", {"pins": ["app==1.0.0", "app==2.0.0"]}),
    ("read_lockfile", {}),
    ("dry_run", {"pins": "app==1.0.0"}),
])
def test_bad_calls_raise_and_leave_state(name: str, args: dict) -> None:
    state = _state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        FAMILY.tool_index[name].call(state, args)
    assert state == before


def _valid(index: dict, pins: dict[str, str], goal: dict) -> bool:
    for name, version in pins.items():
        row = index[name][version]
        if goal["no_yanked"] and row["yanked"] or any(
                pins.get(n, v) != v for n, v in goal["locked"].items()):
            return False
        for dep, spec in row["deps"].items():
            if dep not in pins or pins[dep] not in specifiers.SpecifierSet(spec):
                return False
        for other, spec in row["conflicts"].items():
            if other in pins and pins[other] in specifiers.SpecifierSet(spec):
                return False
    return True


def _reachable(index: dict, roots: list[str]) -> list[str]:
    reach: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in reach:
            reach.add(name)
            todo += [d for r in index[name].values() for d in r["deps"]]
    return sorted(reach)


def _brute_newest(state: dict, goal: dict) -> dict[str, str] | None:
    """Every assignment of (absent or a version) to the reachable packages; the best wins."""
    index = {p["name"]: {r["version"]: r for r in p["versions"]} for p in state["packages"]}
    names = _reachable(index, [*goal["requested"], *goal["locked"]])
    choices = [list(index[n]) if n in goal["requested"] else [None, *index[n]] for n in names]
    best: tuple[list, dict] | None = None
    for combo in itertools.product(*choices):
        pins = {n: v for n, v in zip(names, combo, strict=True) if v is not None}
        if _valid(index, pins, goal):
            key = [tuple(map(int, pins[n].split("."))) for n in goal["requested"]]
            if best is None or key > best[0]:
                best = (key, {n: pins[n] for n in goal["requested"]})
    return None if best is None else best[1]


def _space(state: dict, goal: dict) -> int:
    index = {p["name"]: {r["version"]: r for r in p["versions"]} for p in state["packages"]}
    return math.prod(len(index[n]) + 1 for n in
                     _reachable(index, [*goal["requested"], *goal["locked"]]))


@pytest.mark.parametrize("variant", ["newest", "lockfile", "yanked"])
def test_newest_matches_exhaustive_search(variant: str) -> None:
    v = FAMILY.variant(variant)
    config = FAMILY.config_for(v)
    checked = 0
    for seed in range(30):
        rng = random.Random(seed)
        state = FAMILY.generate_state(rng, config)
        draft = FAMILY.generate_task(rng, state, config, v, 2)
        if draft is None:
            continue
        goal = dict(draft.goal)
        if _space(state, goal) > 7_000:
            continue
        brute = _brute_newest(state, goal)
        assert brute == goal["newest"], f"seed {seed}: {brute} != {goal['newest']}"
        assert FAMILY.verify(state, {"pins": goal["reference"]}, goal).reward == 1.0
        checked += 1
    assert checked >= 3
