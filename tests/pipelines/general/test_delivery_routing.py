"""delivery_routing: the verifier on a hand-timed instance and against a permutation search."""

from __future__ import annotations

import copy
import itertools

import pytest

from envsynth.errors import ToolError
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

FAMILY = load_families().get("delivery_routing")
D = "DEPOT"


def _state() -> dict:
    """Three stops timed by hand (service 10 minutes each, depot open 480..600).

    A-B-C (45 min) reaches C at 578, after its window; C-B-A (45 min) is back at 602, after
    closing; A-C-B (58 min) is the best feasible tour; C-A-B (67 min) is feasible but longer.
    """
    legs = {(D, "A"): 10, (D, "B"): 20, (D, "C"): 15, ("A", "B"): 12, ("A", "C"): 20,
            ("B", "C"): 8}
    places = [D, "A", "B", "C"]
    travel = {a: {b: 0 if a == b else legs.get((a, b), legs.get((b, a), 0)) for b in places}
              for a in places}
    return {
        "depot": {"id": D, "open": 480, "close": 600},
        "stops": [
            {"id": "A", "name": "a", "window": [480, 600], "service": 10, "deliver": 4},
            {"id": "B", "name": "b", "window": [560, 600], "service": 10, "collect": 5},
            {"id": "C", "name": "c", "window": [480, 570], "service": 10, "deliver": 2},
        ],
        "travel": travel, "route": [], "hidden_order": ["A", "C", "B"], "details_in_list": True,
    }


GOAL = {"mode": "answer", "stops": ["A", "B", "C"], "capacity": None, "optimum": 58}


@pytest.mark.parametrize("route, reward, why", [
    (["A", "C", "B"], 1.0, "shortest"),
    (["C", "A", "B"], 0.0, "67"),
    (["A", "B", "C"], 0.0, "window"),
    (["C", "B", "A"], 0.0, "depot"),
    (["A", "C"], 0.0, "exactly"),
    (["A", "C", "C"], 0.0, "exactly"),
])
def test_hand_timed_routes(route: list[str], reward: float, why: str) -> None:
    verdict = FAMILY.verify(_state(), {"route": route}, GOAL)
    assert verdict.reward == reward and why in verdict.reason


def test_capacity_by_hand() -> None:
    # A-C-B starts with 4 + 2 = 6 units on board and peaks at 6 (5 collected at the end).
    goal = {**GOAL, "capacity": 6}
    assert FAMILY.verify(_state(), {"route": ["A", "C", "B"]}, goal).reward == 1.0
    tight = FAMILY.verify(_state(), {"route": ["A", "C", "B"]}, {**goal, "capacity": 5})
    assert tight.reward == 0.0 and "starts with 6" in tight.reason


def test_dispatch_mode_reads_the_route_table() -> None:
    state = _state()
    goal = {**GOAL, "mode": "state"}
    assert FAMILY.verify(state, None, goal).reward == 0.0
    state["route"] = ["A", "C", "B"]
    assert FAMILY.verify(state, None, goal).reward == 1.0
    assert FAMILY.verify(_state(), None, GOAL).reward == 0.0  # answer mode, nothing submitted


def _permutation_optimum(state: dict, stops: list[str], capacity: int | None) -> int | None:
    """Try every order with a simulation written apart from the family's."""
    info = {s["id"]: s for s in state["stops"]}
    best = None
    for order in itertools.permutations(stops):
        clock, here, minutes, ok = state["depot"]["open"], D, 0, True
        onboard = sum(info[s].get("deliver", 0) for s in order)
        if capacity is not None and onboard > capacity:
            continue
        for s in order:
            minutes += state["travel"][here][s]
            clock = max(clock + state["travel"][here][s], info[s]["window"][0])
            onboard += info[s].get("collect", 0) - info[s].get("deliver", 0)
            if clock > info[s]["window"][1] or (capacity is not None and onboard > capacity):
                ok = False
                break
            clock, here = clock + info[s]["service"], s
        if ok and clock + state["travel"][here][D] <= state["depot"]["close"]:
            total = minutes + state["travel"][here][D]
            best = total if best is None else min(best, total)
    return best


@pytest.mark.parametrize("variant", ["windows", "tight", "capacity"])
def test_stored_optimum_matches_permutation_search(variant: str) -> None:
    for seed in range(5):
        built = build_environment(EnvPlan(0, "delivery_routing", variant, seed), "d")
        assert built.candidates
        for cand in built.candidates:
            g = cand.task.payload.goal
            assert g["optimum"] == _permutation_optimum(built.state, g["stops"], g["capacity"])


def test_tools_reject_bad_input_and_leave_state_alone() -> None:
    tools = FAMILY.tool_index
    state = _state()
    state["route"] = ["A"]
    before = copy.deepcopy(state)
    for name, args in [
        ("append_stop", {"stop_id": "A"}),
        ("append_stop", {"stop_id": "Z"}),
        ("travel_time", {"origin": "A", "destination": "Q"}),
        ("simulate_route", {"route": ["A", "A"]}),
        ("simulate_route", {"route": "A,B"}),
        ("get_stop", {"stop_id": 3}),
    ]:
        with pytest.raises(ToolError):
            tools[name].call(state, args)
    assert state == before
    tools["remove_last_stop"].call(state, {})
    with pytest.raises(ToolError):
        tools["remove_last_stop"].call(state, {})
    assert state["route"] == []


def test_simulate_route_reports_the_broken_window() -> None:
    out = FAMILY.tool_index["simulate_route"].call(_state(), {"route": ["A", "B", "C"]})
    assert out["travel_minutes"] == 45 and "C at 578" in out["problem"]
