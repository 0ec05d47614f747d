"""project_scheduling: hand-computed network answers and a path-enumeration oracle."""

from __future__ import annotations

import copy

import pytest

from envsynth.errors import ToolError
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

FAMILY = load_families().get("project_scheduling")


def _state(schedule: dict[str, int] | None = None, pool: int | None = None) -> dict:
    """A1(3) and A2(2) open the project; A3(4) waits for A1; A4(1) for A1 and A2; A5(2) for
    A3 and A4. By hand: earliest starts 0,0,3,3,7; project 9 days; critical path A1-A3-A5;
    total slack A2 = 4, A4 = 3, the rest 0."""
    spec = [("A1", 3, [], 2), ("A2", 2, [], 2), ("A3", 4, ["A1"], 1), ("A4", 1, ["A1", "A2"], 1),
            ("A5", 2, ["A3", "A4"], 1)]
    return {"tasks": [{"id": i, "name": i, "duration": d, "depends_on": deps, "crew": c}
                      for i, d, deps, c in spec],
            "schedule": dict(schedule or {}), "crew_pool": pool}


def _goal(question: str, expected: object, **kw: object) -> dict:
    kind = "chain" if question.startswith("chain") else "set" if question.startswith("slip") \
        else "value"
    return {"question": question, "extra": {}, "k": None, "target": None, "deadline": 9,
            "kind": kind, "expected": expected, **kw}


@pytest.mark.parametrize("goal, right, wrong", [
    (_goal("makespan", 9), 9, 8),
    (_goal("finish", 4, target="A4"), 4, 3),
    (_goal("earliest_start", 3, target="A4"), 3, 2),
    (_goal("total_slack", 4, target="A2"), 4, 0),
    (_goal("latest_start", 7, target="A2", deadline=12), 7, 4),
    (_goal("makespan_if", 10, extra={"A4": 4}), 10, 9),
])
def test_hand_computed_values(goal: dict, right: int, wrong: int) -> None:
    assert FAMILY.verify(_state(), {"value": right, "tasks": None}, goal).reward == 1.0
    assert FAMILY.verify(_state(), {"value": wrong, "tasks": None}, goal).reward == 0.0
    assert FAMILY.verify(_state(), None, goal).reward == 0.0


@pytest.mark.parametrize("chain, ok", [
    (["A1", "A3", "A5"], True),
    (["A2", "A4", "A5"], False),   # valid chain, 5 days
    (["A1", "A5"], False),         # A5 does not wait for A1
    (["A3", "A5"], False),         # does not start the project
    (["A1", "A3"], False),         # 7 days
])
def test_hand_computed_critical_path(chain: list[str], ok: bool) -> None:
    verdict = FAMILY.verify(_state(), {"value": None, "tasks": chain}, _goal("chain", 9))
    assert verdict.reward == float(ok)


def test_what_if_moves_the_critical_path() -> None:
    # With A4 at 5 days, A1-A4-A5 takes 10 days and becomes the critical path.
    goal = _goal("chain_if", 10, extra={"A4": 4})
    assert FAMILY.verify(_state(), {"tasks": ["A1", "A4", "A5"]}, goal).reward == 1.0
    assert FAMILY.verify(_state(), {"tasks": ["A1", "A3", "A5"]}, goal).reward == 0.0
    to_a4 = _goal("chain_to", 4, target="A4")
    assert FAMILY.verify(_state(), {"tasks": ["A1", "A4"]}, to_a4).reward == 1.0
    assert FAMILY.verify(_state(), {"tasks": ["A2", "A4"]}, to_a4).reward == 0.0


def test_slip_sets_by_hand() -> None:
    goal = _goal("slip", ["A2", "A4"], k=3)
    assert FAMILY.verify(_state(), {"tasks": ["A4", "A2"]}, goal).reward == 1.0
    for bad in (["A2"], ["A2", "A4", "A5"], ["A2", "A4", "A4"]):
        assert FAMILY.verify(_state(), {"tasks": bad}, goal).reward == 0.0


def test_crew_schedule_by_hand() -> None:
    # A1 and A2 need 2 crew each, so with 3 crew A2 waits until A1 is done on day 3.
    good = {"A1": 0, "A2": 3, "A3": 3, "A4": 5, "A5": 7}
    goal = {"kind": "schedule", "deadline": 9}
    assert FAMILY.verify(_state(good, pool=3), None, goal).reward == 1.0
    assert FAMILY.verify(_state(good, pool=3), None, {**goal, "deadline": 8}).reward == 0.0
    crowded = {**good, "A2": 0, "A4": 3}
    assert "crew" in FAMILY.verify(_state(crowded, pool=3), None, goal).reason
    assert FAMILY.verify(_state(crowded, pool=None), None, goal).reward == 1.0
    early = {**good, "A5": 6}  # A3 finishes on day 7
    assert "before A3" in FAMILY.verify(_state(early, pool=3), None, goal).reason
    missing = {k: v for k, v in good.items() if k != "A4"}
    assert FAMILY.verify(_state(missing, pool=3), None, goal).reward == 0.0


def _paths(state: dict, extra: dict[str, int]) -> list[tuple[list[str], int]]:
    """Every dependency path with its length in days, by plain enumeration."""
    dur = {t["id"]: t["duration"] + extra.get(t["id"], 0) for t in state["tasks"]}
    preds = {t["id"]: t["depends_on"] for t in state["tasks"]}
    out = []

    def back(path: list[str]) -> None:
        out.append((path, sum(dur[p] for p in path)))
        for p in preds[path[0]]:
            back([p, *path])

    for t in state["tasks"]:
        back([t["id"]])
    return out


def _oracle(state: dict, goal: dict) -> object:
    paths = _paths(state, goal["extra"])
    span = max(n for _, n in paths)
    starts_project = {t["id"] for t in state["tasks"] if not t["depends_on"]}
    full = [(p, n) for p, n in paths if p[0] in starts_project]

    def through(x: str) -> int:  # longest complete path through x
        dur = next(t["duration"] for t in state["tasks"] if t["id"] == x) + goal["extra"].get(x, 0)
        before = max(n for p, n in full if p[-1] == x)
        after = max(n for p, n in paths if p[0] == x)
        return before + after - dur

    q, x = goal["question"], goal["target"]
    if q in ("makespan", "makespan_if"):
        return span
    if q == "finish":
        return max(n for p, n in full if p[-1] == x)
    if q == "earliest_start":
        return max(n for p, n in full if p[-1] == x) - (next(
            t["duration"] for t in state["tasks"] if t["id"] == x))
    if q == "total_slack":
        return span - through(x)
    if q == "latest_start":
        return goal["deadline"] - max(n for p, n in paths if p[0] == x)
    if q.startswith("slip"):
        return sorted(t["id"] for t in state["tasks"]
                      if goal["deadline"] - through(t["id"]) >= goal["k"])
    return max(n for p, n in full if x is None or p[-1] == x)


@pytest.mark.parametrize("variant", ["makespan", "slack", "critical", "can-slip"])
def test_stored_answers_match_path_enumeration(variant: str) -> None:
    for seed in range(5):
        built = build_environment(EnvPlan(0, "project_scheduling", variant, seed), "d")
        for cand in built.candidates:
            goal = cand.task.payload.goal
            want = sorted(goal["expected"]) if goal["kind"] == "set" else goal["expected"]
            assert want == _oracle(built.state, goal), goal


def test_tools_reject_bad_input_and_leave_state_alone() -> None:
    tools = FAMILY.tool_index
    state = _state({"A1": 0})
    before = copy.deepcopy(state)
    for name, args in [
        ("set_start", {"task_id": "A1", "day": -1}),
        ("set_start", {"task_id": "B7", "day": 2}),
        ("set_start", {"task_id": "A1", "day": 1.5}),
        ("clear_start", {"task_id": "A2"}),
        ("get_successors", {"task_id": "Z"}),
        ("get_task", {"task_id": "A9"}),
    ]:
        with pytest.raises(ToolError):
            tools[name].call(state, args)
    assert state == before
    assert tools["get_successors"].call(state, {"task_id": "A1"}) == ["A3", "A4"]
    view = tools["view_schedule"].call(_state({"A1": 0, "A3": 3}, pool=3), {})
    assert view["crew_by_day"] == {"0": 2, "1": 2, "2": 2, "3": 1, "4": 1, "5": 1, "6": 1}
