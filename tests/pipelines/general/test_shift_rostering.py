"""shift_rostering: the verifier on a hand-solved week and against an exhaustive search."""

from __future__ import annotations

import copy
import itertools

import pytest

from envsynth.errors import ToolError
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

FAMILY = load_families().get("shift_rostering")


def _state(roster: dict[str, str | None] | None = None, rest: int = 11) -> dict:
    """Three staff, four shifts; hours are counted from Monday 00:00.

    SH3 needs forklift on Tuesday, when E1 is off, so only E2 can take it; SH2 overlaps SH3,
    so it goes to E3; SH1 is cheapest with E1. Optimum: 8*2000 + 8*1500 + 8*3000 = 52000.
    """
    roster = roster or {}
    def shift(sid: str, day: str, start: int, skill: str) -> dict:
        return {"id": sid, "day": day, "kind": "k", "start": start, "end": start + 8, "hours": 8,
                "skill": skill, "assignee": roster.get(sid)}
    return {
        "employees": [
            {"id": "E1", "name": "a", "skills": ["forklift"], "hourly_cents": 2000,
             "max_hours": 16, "unavailable": ["Tue"]},
            {"id": "E2", "name": "b", "skills": ["forklift", "picking"], "hourly_cents": 3000,
             "max_hours": 24, "unavailable": []},
            {"id": "E3", "name": "c", "skills": ["picking"], "hourly_cents": 1500,
             "max_hours": 8, "unavailable": []},
        ],
        "shifts": [shift("SH1", "Mon", 14, "forklift"), shift("SH2", "Tue", 30, "picking"),
                   shift("SH3", "Tue", 33, "forklift"), shift("SH4", "Wed", 54, "picking")],
        "rules": {"min_rest_hours": rest, "max_hours_rule": True},
    }


INITIAL = {"SH1": None, "SH2": None, "SH3": None, "SH4": None}
COST_GOAL = {"shifts": ["SH1", "SH2", "SH3"], "objective": "min_cost", "optimum": 52000,
             "initial": INITIAL}
BEST = {"SH1": "E1", "SH2": "E3", "SH3": "E2"}


def test_hand_solved_optimum_passes() -> None:
    assert FAMILY.verify(_state(BEST), None, COST_GOAL).reward == 1.0
    feasible = {**COST_GOAL, "objective": "feasible"}
    assert FAMILY.verify(_state({**BEST, "SH1": "E2"}), None, feasible).reward == 1.0


@pytest.mark.parametrize("roster, why", [
    ({**BEST, "SH1": "E2"}, "optimum 52000"),           # valid, 60000
    ({**BEST, "SH2": "E2"}, "without enough rest"),      # overlaps SH3
    ({**BEST, "SH1": "E3"}, "lacks forklift"),
    ({**BEST, "SH3": "E1"}, "off on Tue"),
    ({**BEST, "SH3": None}, "not staffed"),
    ({**BEST, "SH4": "E2"}, "outside the task"),
])
def test_hand_solved_failures(roster: dict[str, str | None], why: str) -> None:
    verdict = FAMILY.verify(_state(roster), None, COST_GOAL)
    assert verdict.reward == 0.0 and why in verdict.reason


def test_rest_and_hours_limits_by_hand() -> None:
    # E2 on SH1 (ends Mon 22:00) and SH3 (starts Tue 09:00): 11 h of rest.
    roster = {**BEST, "SH1": "E2"}
    feasible = {**COST_GOAL, "objective": "feasible"}
    assert FAMILY.verify(_state(roster, rest=11), None, feasible).reward == 1.0
    assert "rest" in FAMILY.verify(_state(roster, rest=12), None, feasible).reason
    state = _state(BEST)
    state["employees"][0]["max_hours"] = 4
    assert "over their 4 h" in FAMILY.verify(state, None, feasible).reason


def test_fewest_changes_by_hand() -> None:
    # Only SH1 is wrong (E3 lacks forklift): one change fixes the roster.
    initial = {"SH1": "E3", "SH2": "E3", "SH3": "E2", "SH4": None}
    goal = {"shifts": ["SH1", "SH2", "SH3"], "objective": "min_changes", "optimum": 1,
            "initial": initial}
    assert FAMILY.verify(_state(initial), None, goal).reward == 0.0
    assert FAMILY.verify(_state({**initial, "SH1": "E1"}), None, goal).reward == 1.0
    two = {**initial, "SH1": "E2", "SH2": "E3"}
    assert FAMILY.verify(_state(two), None, goal).reward == 1.0  # still one change: SH1
    extra = {**initial, "SH1": "E1", "SH3": "E2", "SH2": "E2"}
    assert FAMILY.verify(_state(extra), None, goal).reward == 0.0  # SH2 now overlaps SH3


def _exhaustive(state: dict, goal: dict) -> int:
    """Minimum cost by trying every skilled, on-duty combination; rules written afresh."""
    shifts = {s["id"]: s for s in state["shifts"]}
    staff = {e["id"]: e for e in state["employees"]}
    rest, cap = state["rules"]["min_rest_hours"], state["rules"]["max_hours_rule"]
    task = goal["shifts"]
    options = [[e for e, p in staff.items() if shifts[s]["skill"] in p["skills"]
                and shifts[s]["day"] not in p["unavailable"]] for s in task]
    best = None
    for combo in itertools.product(*options):
        roster = {**goal["initial"], **dict(zip(task, combo, strict=True))}
        ok = True
        for a, b in itertools.combinations(roster, 2):
            if roster[a] is None or roster[a] != roster[b] or (a not in task and b not in task):
                continue
            first, second = sorted((shifts[a], shifts[b]), key=lambda s: s["start"])
            ok = ok and second["start"] - first["end"] >= rest
        for e in set(combo):
            hours = sum(shifts[s]["hours"] for s, h in roster.items() if h == e)
            ok = ok and (not cap or hours <= staff[e]["max_hours"])
        if not ok:
            continue
        if goal["objective"] == "min_changes":
            value = sum(roster[s] != goal["initial"][s] for s in task)
        else:
            value = sum(shifts[s]["hours"] * staff[roster[s]]["hourly_cents"] for s in task)
        best = value if best is None else min(best, value)
    assert best is not None
    return best


@pytest.mark.parametrize("variant", ["cheapest", "repair"])
def test_stored_optimum_matches_exhaustive_search(variant: str) -> None:
    checked = 0
    for seed in range(3):
        built = build_environment(EnvPlan(0, "shift_rostering", variant, seed), "d")
        for cand in built.candidates:
            goal = cand.task.payload.goal
            if goal["objective"] != "feasible":
                assert goal["optimum"] == _exhaustive(built.state, goal)
                checked += 1
    assert checked


def test_tools_reject_bad_input_and_leave_state_alone() -> None:
    tools = FAMILY.tool_index
    state = _state({"SH1": "E1"})
    before = copy.deepcopy(state)
    for name, args in [
        ("assign_shift", {"shift_id": "SH1", "employee_id": "E2"}),   # already staffed
        ("assign_shift", {"shift_id": "SH2", "employee_id": "E9"}),
        ("assign_shift", {"shift_id": "SH9", "employee_id": "E2"}),
        ("unassign_shift", {"shift_id": "SH2"}),
        ("find_staff", {"skill": "welding", "day": "Mon"}),
        ("get_employee", {"employee_id": "E7"}),
        ("list_shifts", {"day": 1}),
    ]:
        with pytest.raises(ToolError):
            tools[name].call(state, args)
    assert state == before


def test_check_roster_and_cost_tools() -> None:
    tools = FAMILY.tool_index
    state = _state({**BEST, "SH2": "E2"})
    assert any("rest" in v for v in tools["check_roster"].call(state, {}))
    assert tools["roster_cost"].call(_state(BEST), {}) == 52000
    assert [e["id"] for e in tools["find_staff"].call(state, {"skill": "forklift", "day": "Tue"})
            ] == ["E2"]
