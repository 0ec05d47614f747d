"""The itinerary verifier against a hand-solved city and an independent brute force."""

from __future__ import annotations

import copy
import itertools
import random

import pytest

from envsynth.errors import ToolError
from pipelines.general.family import load_families

FAMILY = load_families().get("itinerary")


def _city() -> dict:
    """Three places, 30 minutes apart from each other and from the hotel.

    By hand (day 09:00-17:00): A 09:30-10:30, C 11:00-15:00, B 15:30-16:30, hotel 17:00, so
    A, C, B all fit in that order; B then A fails (A closes 12:00). With a 20 EUR budget the
    best by rating is {B, C} (5.0 + 4.5 = 95 tenths) and the most places is 2.
    """
    places = ["A", "B", "C"]
    return {
        "city": "Testville", "days": ["Mon"], "day_start": "09:00", "day_end": "17:00",
        "pois": [
            {"id": "A", "name": "a", "category": "museum", "rating": 4.0, "price": 10,
             "opens": "09:00", "closes": "12:00", "visit_min": 60, "closed_on": []},
            {"id": "B", "name": "b", "category": "park", "rating": 5.0, "price": 20,
             "opens": "13:00", "closes": "17:00", "visit_min": 60, "closed_on": []},
            {"id": "C", "name": "c", "category": "market", "rating": 4.5, "price": 0,
             "opens": "09:00", "closes": "17:00", "visit_min": 240, "closed_on": ["Tue"]},
        ],
        "travel": {a: {b: 0 if a == b else 30 for b in ["H", *places]} for a in ["H", *places]},
    }


def _goal(objective: str, optimum: int, budget: int | None = None) -> dict:
    return {"objective": objective, "optimum": optimum, "budget": budget, "max_per_day": 3,
            "must_not": [], "must_visit": ["C"], "plan": []}


def _reward(state: dict, days: list[list[str]], goal: dict) -> float:
    return FAMILY.verify(state, {"days": days}, goal).reward


def test_hand_solved_count_objective() -> None:
    city, goal = _city(), _goal("count", 3)
    assert _reward(city, [["A", "C", "B"]], goal) == 1.0
    assert _reward(city, [["C", "B"]], goal) == 0.0  # feasible, one place short
    assert _reward(city, [["C", "A", "B"]], goal) == 0.0  # A would end at 16:30, after 12:00
    assert _reward(city, [["A", "B"]], goal) == 0.0  # misses the must-visit C


def test_hand_solved_budget_and_rating() -> None:
    city, goal = _city(), _goal("rating", 95, budget=20)
    assert _reward(city, [["C", "B"]], goal) == 1.0
    assert _reward(city, [["A", "C"]], goal) == 0.0  # 85 < 95
    assert _reward(city, [["A", "C", "B"]], goal) == 0.0  # 30 EUR of tickets
    assert _reward(city, [["B", "C"]], goal) == 0.0  # C would end at 18:30


def test_closures_day_count_and_no_answer() -> None:
    city = _city()
    city["days"] = ["Tue"]
    goal = _goal("none", 0)
    goal["must_visit"] = ["A"]
    assert _reward(city, [["A", "B"]], goal) == 1.0
    assert _reward(city, [["A", "C"]], goal) == 0.0  # C is closed on Tuesdays
    assert _reward(city, [["A"], []], goal) == 0.0  # two days for a one-day trip
    assert FAMILY.verify(city, None, goal).reward == 0.0


def test_solver_matches_the_hand_optimum() -> None:
    from pipelines.general.families.itinerary import _best_plan

    value, plan = _best_plan(_city(), _goal("rating", 0, budget=20))
    assert (value, plan) == (95, [["C", "B"]])


def _feasible(state: dict, days: list[list[str]], goal: dict) -> bool:
    """A plain re-implementation of the trip rules, without the family's helpers."""
    def mins(s: str) -> int:
        return int(s[:2]) * 60 + int(s[3:])

    pois = {p["id"]: p for p in state["pois"]}
    stops = [s for d in days for s in d]
    if sum(pois[s]["price"] for s in stops) > (goal["budget"] or 10**9):
        return False
    if set(goal["must_visit"]) - set(stops) or set(goal["must_not"]) & set(stops):
        return False
    for weekday, day in zip(state["days"], days, strict=True):
        clock, at = mins(state["day_start"]), "H"
        for s in day:
            p = pois[s]
            clock += state["travel"][at][s]
            clock = max(clock, mins(p["opens"])) + p["visit_min"]
            if weekday in p["closed_on"] or clock > mins(p["closes"]):
                return False
            at = s
        if clock + state["travel"][at]["H"] > mins(state["day_end"]):
            return False
    return True


def _brute_force(state: dict, goal: dict) -> int:
    ids, best = [p["id"] for p in state["pois"]], None
    rating = {p["id"]: round(p["rating"] * 10) for p in state["pois"]}
    n_days = len(state["days"])
    for where in itertools.product(range(n_days + 1), repeat=len(ids)):
        groups = [[i for i, w in zip(ids, where, strict=True) if w == d + 1] for d in range(n_days)]
        if any(len(g) > goal["max_per_day"] for g in groups):
            continue
        for orders in itertools.product(*(itertools.permutations(g) for g in groups)):
            days = [list(o) for o in orders]
            if _feasible(state, days, goal):
                stops = [s for d in days for s in d]
                by_rating = sum(rating[s] for s in stops)
                value = len(stops) if goal["objective"] == "count" else by_rating
                best = value if best is None else max(best, value)
                break
    return best


@pytest.mark.parametrize("seed", range(6))
def test_stored_optimum_equals_brute_force(seed: int) -> None:
    variant = FAMILY.variant("closures")
    config = FAMILY.config_for(variant, {"pois": 5, "max_per_day": 2})
    rng = random.Random(seed)
    state = FAMILY.generate_state(rng, config)
    checked = 0
    for level in (1, 2):
        draft = FAMILY.generate_task(rng, state, config, variant, level)
        if draft is None:
            continue
        checked += 1
        assert draft.goal["optimum"] == _brute_force(state, draft.goal)
        assert _feasible(state, draft.goal["plan"], draft.goal)
    assert checked


def test_tools_reject_bad_input_and_leave_state_alone() -> None:
    city = _city()
    before = copy.deepcopy(city)
    tools = FAMILY.tool_index
    with pytest.raises(ToolError):
        tools["get_poi"].call(city, {"poi_id": "Z"})
    with pytest.raises(ToolError):
        tools["travel_time"].call(city, {"from_id": "H", "to_id": "nowhere"})
    with pytest.raises(ToolError):
        tools["check_day"].call(city, {"day": 2, "stops": ["A"]})
    with pytest.raises(ToolError):
        tools["check_day"].call(city, {"day": "1", "stops": ["A"]})
    assert city == before
    report = tools["check_day"].call(city, {"day": 1, "stops": ["C", "A"]})
    assert report["problem"] != "none" and report["timeline"][0]["leave"] == "13:30"
