"""access_control: the verifier against hand-worked cases and a tool-driven brute force."""

from __future__ import annotations

import copy
import itertools
import random

import pytest

from envsynth.errors import ToolError
from envsynth.ids import content_hash
from pipelines.general.families import access_control as ac
from pipelines.general.family import load_families

FAMILY = load_families().get("access_control")


def _state() -> dict:
    return {
        "roles": [
            {"id": "r0", "name": "fin-viewer", "allow": ["read:fin/*"], "deny": []},
            {"id": "r1", "name": "ledger-editor", "allow": ["write:fin/ledger"], "deny": []},
            {"id": "r2", "name": "global-viewer", "allow": ["read:*"], "deny": []},
            {"id": "r3", "name": "fin-editor", "allow": ["read:fin/ledger", "write:fin/*"],
             "deny": ["write:fin/payroll"]},
            {"id": "r4", "name": "payroll-editor", "allow": ["write:fin/payroll"], "deny": []},
        ],
        "groups": [{"id": "g0", "name": "fin-team", "roles": ["r0"]},
                   {"id": "g1", "name": "all-team", "roles": ["r2"]}],
        "users": [
            {"id": "u0", "name": "Ada Moss", "email": "ada@corp.test", "groups": [],
             "roles": ["r2"]},
            {"id": "u1", "name": "Bo Park", "email": "bo@corp.test", "groups": ["g0"],
             "roles": []},
        ],
    }


def _goal(state: dict) -> dict:
    # Worked by hand: r2 reads hr/records, so it must go; r3 alone reads and writes the
    # ledger (its payroll deny does not matter), so one role is the least privilege.
    return {"user": "u0", "unit": "roles",
            "required": [["read", "fin/ledger"], ["write", "fin/ledger"]],
            "forbidden": [["read", "hr/records"]], "min_count": 1, "fixed": [],
            "others": content_hash([state["users"][1]])}


def _with_roles(roles: list[str], groups: list[str] | None = None) -> dict:
    state = _state()
    state["users"][0]["roles"] = roles
    if groups is not None:
        state["users"][0]["groups"] = groups
    return state


def test_hand_worked_minimal_grant_passes() -> None:
    verdict = FAMILY.verify(_with_roles(["r3"]), {}, _goal(_state()))
    assert verdict.reward == 1.0, verdict.reason


@pytest.mark.parametrize(("roles", "groups", "failing"), [
    (["r2"], None, "required"),           # untouched: cannot write the ledger
    (["r0", "r1"], None, "minimal"),      # valid, but two roles where one does
    (["r2", "r3"], None, "forbidden"),    # the global viewer still reads hr/records
    (["r1"], None, "required"),           # writes but cannot read the ledger
    (["r1"], ["g0"], "scope"),            # fixes it through a group the task said to keep
])
def test_near_misses_fail(roles: list[str], groups: list[str] | None, failing: str) -> None:
    verdict = FAMILY.verify(_with_roles(roles, groups), {}, _goal(_state()))
    assert verdict.reward == 0.0
    assert verdict.components[failing] == 0.0


def test_touching_another_user_fails() -> None:
    state = _with_roles(["r3"])
    state["users"][1]["roles"] = ["r4"]
    verdict = FAMILY.verify(state, {}, _goal(_state()))
    assert verdict.reward == 0.0 and verdict.components["scope"] == 0.0


def test_explicit_deny_overrides_allow() -> None:
    state = _with_roles(["r3", "r4"])
    args = {"user_id": "u0", "action": "write", "resource": "fin/payroll"}
    out = ac.check_access.call(state, args)
    assert out == {"allowed": False, "allowed_by": ["r3", "r4"], "denied_by": ["r3"]}
    bo = ac.check_access.call(state, {"user_id": "u1", "action": "read", "resource": "fin/budget"})
    assert bo["allowed"] is True and bo["allowed_by"] == ["r0"]  # through group g0


@pytest.mark.parametrize(("name", "args"), [
    ("grant_role", {"user_id": "u0", "role_id": "r2"}),       # already held
    ("grant_role", {"user_id": "u0", "role_id": "r9"}),       # no such role
    ("revoke_role", {"user_id": "u0", "role_id": "r1"}),      # not held
    ("grant_role", {"user_id": "u7", "role_id": "r1"}),       # no such user
    ("remove_from_group", {"user_id": "u0", "group_id": "g0"}),
    ("check_access", {"user_id": "u0", "action": "admin", "resource": "fin/ledger"}),
    ("check_access", {"user_id": "u0", "action": "read", "resource": "fin/taxes"}),
    ("get_role", {"role_id": 3}),                             # wrong type
])
def test_bad_calls_raise_and_leave_state(name: str, args: dict) -> None:
    state = _state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        FAMILY.tool_index[name].call(state, args)
    assert state == before


def _apply(state: dict, user_id: str, unit: str, selection: tuple[str, ...]) -> dict:
    trial = copy.deepcopy(state)
    user = next(u for u in trial["users"] if u["id"] == user_id)
    user[unit] = []
    add = ac.grant_role if unit == "roles" else ac.add_to_group
    key = "role_id" if unit == "roles" else "group_id"
    for k in selection:
        add.call(trial, {"user_id": user_id, key: k})
    return trial


def _meets(state: dict, goal: dict) -> bool:
    def can(action: str, resource: str) -> bool:
        args = {"user_id": goal["user"], "action": action, "resource": resource}
        return ac.check_access.call(state, args)["allowed"]

    return (all(can(a, r) for a, r in goal["required"])
            and not any(can(a, r) for a, r in goal["forbidden"]))


@pytest.mark.parametrize("variant", ["least-privilege", "groups", "explicit-deny"])
def test_min_count_matches_tool_driven_brute_force(variant: str) -> None:
    """Grant every subset through the tools and ask check_access: nothing smaller works."""
    v = FAMILY.variant(variant)
    config = FAMILY.config_for(v)
    checked = 0
    for seed in range(6):
        rng = random.Random(seed)
        state = FAMILY.generate_state(rng, config)
        for level in range(3):
            draft = FAMILY.generate_task(rng, state, config, v, level)
            if draft is None:
                continue
            goal = draft.goal
            keys = [x["id"] for x in state[goal["unit"]]]
            sizes = {
                size: any(_meets(_apply(state, goal["user"], goal["unit"], combo), goal)
                          for combo in itertools.combinations(keys, size))
                for size in range(goal["min_count"] + 1)
            }
            assert sizes[goal["min_count"]], "the recorded optimum is not achievable"
            assert not any(sizes[s] for s in range(goal["min_count"])), "a smaller grant works"
            checked += 1
    assert checked >= 12
