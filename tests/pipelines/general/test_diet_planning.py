"""diet_planning: the verifier against a hand-enumerated catalog and a plain-Python brute
force over every serving vector (the family enumerates with numpy)."""

from __future__ import annotations

import copy
import itertools
import random

import pytest

from envsynth.errors import ToolError
from pipelines.general.families import diet_planning as dp
from pipelines.general.family import load_families

FAMILY = load_families().get("diet_planning")


def _food(fid: str, cat: str, kcal: int, protein: int, sodium: int, cost: int,
          allergens: list[str], veg: bool) -> dict:
    return {"id": fid, "name": fid, "category": cat, "kcal": kcal, "protein_g": protein,
            "sodium_mg": sodium, "cost_cents": cost, "allergens": allergens, "vegetarian": veg}


def _state() -> dict:
    return {"max_servings": 2, "prices_separate": False,
            "profiles": [{"name": "Ada", "allergies": ["gluten"], "vegetarian": False,
                          "kcal_min": 600, "kcal_max": 800, "protein_min": 45,
                          "sodium_max": 1000}],
            "foods": [_food("f0", "breakfast", 200, 10, 100, 50, ["gluten"], True),
                      _food("f1", "breakfast", 150, 12, 300, 80, ["egg"], True),
                      _food("f2", "main", 250, 40, 200, 300, [], False),
                      _food("f3", "main", 220, 15, 500, 120, [], True)]}


def _constraints(**changes: object) -> dict:
    c = {"kcal": [600, 800], "protein_min": 45, "sodium_max": 1000, "allergens": ["gluten"],
         "vegetarian": False, "budget": None, "cover": ["breakfast", "main"], "min_cost": 500}
    return {**c, **changes}


# Enumerated by hand without f0 (gluten) and with a breakfast and a main: the feasible
# menus are (f1, f2, f3) = (1, 1, 1) at 500 cents, (1, 2, 0) at 680 and (2, 2, 0) at 760.
def _goal(**changes: object) -> dict:
    return {"constraints": _constraints(**changes), "max_servings": 2}


def test_hand_enumerated_optimum_passes() -> None:
    verdict = FAMILY.verify(_state(), {"menu": ["f1:1", "f2:1", "f3:1"]}, _goal())
    assert verdict.reward == 1.0, verdict.reason


def test_solver_finds_the_hand_enumerated_optimum() -> None:
    assert dp._cheapest(_state()["foods"], _constraints(), 2) == {"f1": 1, "f2": 1, "f3": 1}


@pytest.mark.parametrize("menu", [
    ["f1:1", "f2:2"],                   # feasible, 680 cents: not the cheapest
    ["f0:2", "f2:1"],                   # cheaper (400), but oats contain gluten
    ["f1:2", "f2:1", "f3:1"],           # 1300 mg of sodium: over the cap
    ["f1:1", "f2:2", "f3:1"],           # 870 kcal: over the range
    ["f2:2", "f3:1"],                   # meets the numbers, but no breakfast food
    ["f1:1", "f2:1", "f3:1", "f1:1"],   # a food listed twice
    ["f1:3", "f2:1"],                   # more than two servings
    ["f1:1", "f2:1", "f9:1"],           # unknown food
])
def test_near_misses_fail(menu: list[str]) -> None:
    assert FAMILY.verify(_state(), {"menu": menu}, _goal()).reward == 0.0


def test_feasible_menu_passes_without_optimum_and_budget_binds() -> None:
    menu = {"menu": ["f1:1", "f2:2"]}
    assert FAMILY.verify(_state(), menu, _goal(min_cost=None)).reward == 1.0
    assert FAMILY.verify(_state(), menu, _goal(min_cost=None, budget=650)).reward == 0.0
    assert FAMILY.verify(_state(), None, _goal()).reward == 0.0


def test_vegetarian_and_sodium_rules() -> None:
    veg = _goal(min_cost=None, vegetarian=True)
    assert FAMILY.verify(_state(), {"menu": ["f1:1", "f2:1", "f3:1"]}, veg).reward == 0.0
    salty = _goal(min_cost=None, sodium_max=900)
    assert FAMILY.verify(_state(), {"menu": ["f1:1", "f2:1", "f3:1"]}, salty).reward == 0.0


@pytest.mark.parametrize(("name", "args"), [
    ("get_food", {"food_id": "f9"}),
    ("get_price", {"food_id": "x"}),
    ("get_profile", {"name": "Zed"}),
    ("evaluate_menu", {"menu": ["f1"]}),
    ("evaluate_menu", {"menu": ["f1:0"]}),
    ("evaluate_menu", {"menu": ["f1:1", "f1:2"]}),
    ("evaluate_menu", {"menu": "f1:1"}),
])
def test_bad_calls_raise_and_leave_state(name: str, args: dict) -> None:
    state = _state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        FAMILY.tool_index[name].call(state, args)
    assert state == before


def test_prices_hidden_when_separate() -> None:
    state = {**_state(), "prices_separate": True}
    assert "cost_cents" not in dp.get_food.call(state, {"food_id": "f2"})
    assert dp.get_price.call(state, {"food_id": "f2"}) == 300


def _brute_min_cost(foods: list[dict], c: dict, top: int) -> int | None:
    best = None
    for counts in itertools.product(range(top + 1), repeat=len(foods)):
        chosen = [(f, n) for f, n in zip(foods, counts, strict=True) if n]
        kcal = sum(f["kcal"] * n for f, n in chosen)
        cost = sum(f["cost_cents"] * n for f, n in chosen)
        if not (c["kcal"][0] <= kcal <= c["kcal"][1]):
            continue
        if sum(f["protein_g"] * n for f, n in chosen) < c["protein_min"]:
            continue
        if c["sodium_max"] is not None and sum(f["sodium_mg"] * n for f, n in chosen) > c[
                "sodium_max"]:
            continue
        if any(a in c["allergens"] for f, _ in chosen for a in f["allergens"]):
            continue
        if c["vegetarian"] and not all(f["vegetarian"] for f, _ in chosen):
            continue
        if c["budget"] is not None and cost > c["budget"]:
            continue
        if not all(any(f["category"] == cat for f, _ in chosen) for cat in c["cover"]):
            continue
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("variant", ["targets", "cheapest", "full"])
def test_recorded_optimum_matches_brute_force(variant: str) -> None:
    v = FAMILY.variant(variant)
    config = FAMILY.config_for(v, {"foods": 8})
    for seed in range(3):
        rng = random.Random(seed)
        state = FAMILY.generate_state(rng, config)
        draft = FAMILY.generate_task(rng, state, config, v, 2)
        assert draft is not None
        c = draft.goal["constraints"]
        assert c["min_cost"] == _brute_min_cost(state["foods"], c, state["max_servings"])
