"""course_timetabling: a hand-checked timetable and a brute-force proof of fewest moves."""

from __future__ import annotations

import copy
import itertools

import pytest

from envsynth.errors import ToolError
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

FAMILY = load_families().get("course_timetabling")
INITIAL = {"S1": ["Mon1", "R1"], "S2": ["Mon1", "R2"], "S3": ["Mon2", "R1"],
           "S4": ["Mon2", "R2"], "S5": ["Tue2", "R1"]}


def _state(moves: dict[str, tuple[str, str]] | None = None, per_day: int | None = None) -> dict:
    """S3 and S4 both need T2 on Mon2: the one clash. Tue1 is empty; R2 seats 20, so G1 (40)
    cannot use it; T1 cannot teach on Mon2."""
    spec = [("S1", "T1", "G1"), ("S2", "T2", "G2"), ("S3", "T2", "G1"), ("S4", "T2", "G2"),
            ("S5", "T1", "G2")]
    where = {**{k: tuple(v) for k, v in INITIAL.items()}, **(moves or {})}
    return {
        "slots": ["Mon1", "Mon2", "Tue1", "Tue2"],
        "rooms": [{"id": "R1", "name": "a", "seats": 50}, {"id": "R2", "name": "b", "seats": 20}],
        "teachers": [{"id": "T1", "name": "x", "unavailable": ["Mon2"]},
                     {"id": "T2", "name": "y", "unavailable": []}],
        "groups": [{"id": "G1", "name": "g", "size": 40}, {"id": "G2", "name": "h", "size": 15}],
        "sessions": [{"id": i, "course": i, "teacher": t, "group": g, "slot": where[i][0],
                      "room": where[i][1]} for i, t, g in spec],
        "baseline": {}, "rules": {"max_per_day": per_day},
    }


def _goal(pinned: list[str] = (), max_moves: int | None = None) -> dict:
    return {"initial": INITIAL, "pinned": list(pinned), "max_moves": max_moves}


@pytest.mark.parametrize("moves, goal, reward, why", [
    ({"S4": ("Tue1", "R2")}, _goal(), 1.0, "1 moves"),
    ({"S3": ("Tue1", "R1")}, _goal(), 1.0, "1 moves"),
    ({"S3": ("Tue1", "R1")}, _goal(["S3"]), 0.0, "fixed sessions"),
    ({"S4": ("Tue1", "R2")}, _goal(["S3"], 1), 1.0, "clash-free"),
    ({"S4": ("Tue1", "R2"), "S1": ("Tue1", "R1")}, _goal(), 1.0, "2 moves"),
    ({"S4": ("Tue1", "R2"), "S1": ("Tue1", "R1")}, _goal(max_moves=1), 0.0, "1 suffice"),
    ({}, _goal(), 0.0, "S3 and S4 share a teacher in Mon2"),
    ({"S3": ("Tue1", "R2")}, _goal(), 0.0, "does not fit R2"),
    ({"S4": ("Tue1", "R2"), "S1": ("Mon2", "R2")}, _goal(), 0.0, "T1 cannot teach in Mon2"),
    ({"S4": ("Mon1", "R2")}, _goal(), 0.0, "share a room in Mon1"),
])
def test_hand_checked_timetables(moves: dict, goal: dict, reward: float, why: str) -> None:
    verdict = FAMILY.verify(_state(moves), None, goal)
    assert verdict.reward == reward and why in verdict.reason


def test_sessions_per_day_limit_by_hand() -> None:
    # With one session a day per group, G1 (S1 and S3 on Monday) breaks the limit.
    verdict = FAMILY.verify(_state({"S4": ("Tue1", "R2")}, per_day=1), None, _goal())
    assert verdict.reward == 0.0 and "G1 has 2 sessions on Mon" in verdict.reason


def test_adding_or_dropping_sessions_fails() -> None:
    state = _state({"S4": ("Tue1", "R2")})
    state["sessions"].pop()
    assert FAMILY.verify(state, None, _goal()).reward == 0.0


def _clash_free(state: dict, where: dict[str, tuple[str, str]]) -> bool:
    """The hard rules, written apart from the family's checker."""
    info = {s["id"]: s for s in state["sessions"]}
    seats = {r["id"]: r["seats"] for r in state["rooms"]}
    size = {g["id"]: g["size"] for g in state["groups"]}
    off = {t["id"]: t["unavailable"] for t in state["teachers"]}
    for sid, (slot, room) in where.items():
        if size[info[sid]["group"]] > seats[room] or slot in off[info[sid]["teacher"]]:
            return False
    for a, b in itertools.combinations(where, 2):
        if where[a][0] == where[b][0] and (
                where[a][1] == where[b][1] or info[a]["teacher"] == info[b]["teacher"]
                or info[a]["group"] == info[b]["group"]):
            return False
    limit = state["rules"]["max_per_day"]
    if limit:
        for g in size:
            for day in {s[:3] for s in state["slots"]}:
                if sum(info[s]["group"] == g and where[s][0][:3] == day for s in where) > limit:
                    return False
    return True


@pytest.mark.parametrize("variant", ["clashes", "audit", "daily-limit"])
def test_fewest_moves_is_minimal_by_brute_force(variant: str) -> None:
    small = {"days": 2, "periods": 3, "rooms": 2, "sessions": 7, "edits": 2, "groups": 3}
    checked = 0
    for seed in range(4):
        plan = EnvPlan(0, "course_timetabling", variant, seed)
        built = build_environment(plan, "d", {"course_timetabling": small})
        state = built.state
        spots = [(s, r["id"]) for s in state["slots"] for r in state["rooms"]]
        start = {s["id"]: (s["slot"], s["room"]) for s in state["sessions"]}
        for cand in built.candidates:
            goal = cand.task.payload.goal
            if goal["max_moves"] is None:
                continue
            repaired = {**start, **{k: tuple(v) for k, v in state["baseline"].items()}}
            assert _clash_free(state, repaired) and len(state["baseline"]) == goal["max_moves"]
            for movers in itertools.combinations(start, goal["max_moves"] - 1):
                for places in itertools.product(spots, repeat=len(movers)):
                    trial = {**start, **dict(zip(movers, places, strict=True))}
                    assert not _clash_free(state, trial)
            checked += 1
    assert checked


def test_tools_reject_bad_input_and_leave_state_alone() -> None:
    tools = FAMILY.tool_index
    state = _state()
    before = copy.deepcopy(state)
    for name, args in [
        ("move_session", {"session_id": "S9", "slot": "Tue1", "room": "R1"}),
        ("move_session", {"session_id": "S1", "slot": "Sat1", "room": "R1"}),
        ("move_session", {"session_id": "S1", "slot": "Tue1", "room": "R7"}),
        ("move_session", {"session_id": "S1", "slot": "Tue1"}),
        ("get_teacher", {"teacher_id": "T9"}),
        ("view_day", {"day": "Fri"}),
        ("find_free_rooms", {"slot": "Mon9"}),
        ("get_session", {"session_id": "S0"}),
    ]:
        with pytest.raises(ToolError):
            tools[name].call(state, args)
    assert state == before
    assert tools["check_timetable"].call(state, {}) == ["S3 and S4 share a teacher in Mon2"]
    assert [r["id"] for r in tools["find_free_rooms"].call(state, {"slot": "Tue2"})] == ["R2"]
    tools["move_session"].call(state, {"session_id": "S4", "slot": "Tue1", "room": "R2"})
    assert tools["check_timetable"].call(state, {}) == []
