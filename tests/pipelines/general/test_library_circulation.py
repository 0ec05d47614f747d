"""library_circulation: a desk visit and a fine question worked by hand."""

from __future__ import annotations

import copy

import pytest

from envsynth.errors import ToolError
from pipelines.general.families import library_circulation as lc
from pipelines.general.family import Call, load_families, state_digest

FAMILY = load_families().get("library_circulation")
TABLES = ["copies", "loans", "members", "holds"]


def _copy(cid: str, status: str, held_for: str | None = None) -> dict:
    return {"id": cid, "book_id": cid.split("-")[0], "status": status, "held_for": held_for}


def _state() -> dict:
    return {
        "today": "2026-03-15",
        "policy": {"loan_days": {"adult": 21, "child": 14, "staff": 28},
                   "limits": {"adult": 2, "child": 1, "staff": 6}, "fine_per_day_cents": 25,
                   "fine_cap_cents": 300, "block_threshold_cents": 300, "max_renewals": 1},
        "books": [{"id": "b0", "title": "Dune", "author": "Herbert"},
                  {"id": "b1", "title": "Emma", "author": "Austen"},
                  {"id": "b2", "title": "Ubik", "author": "Dick"},
                  {"id": "b3", "title": "Walden", "author": "Thoreau"}],
        "copies": [_copy("b0-c1", "on_loan"), _copy("b0-c2", "on_loan"),
                   _copy("b1-c1", "available"), _copy("b1-c2", "available"),
                   _copy("b2-c1", "on_hold_shelf", "m0"), _copy("b3-c1", "on_loan")],
        "members": [{"id": "m0", "name": "Ada Moss", "type": "adult", "fines_cents": 0},
                    {"id": "m1", "name": "Bo Nair", "type": "child", "fines_cents": 50},
                    {"id": "m2", "name": "Cy Ortiz", "type": "adult", "fines_cents": 0}],
        "loans": [{"copy_id": "b0-c1", "member_id": "m0", "due": "2026-03-05", "renewals": 0},
                  {"copy_id": "b0-c2", "member_id": "m1", "due": "2026-02-01", "renewals": 0},
                  {"copy_id": "b3-c1", "member_id": "m0", "due": "2026-03-20", "renewals": 1}],
        "holds": [{"book_id": "b0", "member_id": "m2", "placed": "2026-03-01"}],
    }


# Ada returns b0-c1, asks to renew b3-c1 and to borrow Ubik then Emma. Worked by hand:
# b0-c1 is 10 days late: 250 cents (under the 300 cap), and Cy is first in Dune's queue.
# Ada now owes 250 (not over 300, so not blocked) but b3-c1 was renewed once already (the
# maximum). Ubik waits for her on the hold shelf; after it she holds 2 loans, her limit,
# so Emma is refused.
GOAL = {"member": "m0", "returns": ["b0-c1"], "renews": ["b3-c1"], "borrows": ["b2", "b1"]}
HAND_CALLS = [
    Call("return_copy", {"copy_id": "b0-c1"}),
    Call("charge_fine", {"member_id": "m0", "amount_cents": 250}),
    Call("shelve_copy", {"copy_id": "b0-c1", "hold_for": "m2"}),
    Call("checkout_copy", {"member_id": "m0", "copy_id": "b2-c1"}),
]


def _served_by_hand() -> dict:
    state = _state()
    state["copies"][0].update(status="on_hold_shelf", held_for="m2")
    state["copies"][4].update(status="on_loan", held_for=None)
    state["loans"] = [state["loans"][1], state["loans"][2],
                      {"copy_id": "b2-c1", "member_id": "m0", "due": "2026-04-05",
                       "renewals": 0}]
    state["members"][0]["fines_cents"] = 250
    state["holds"] = []
    return state


def _goal() -> dict:
    return {**GOAL, "hash_tables": TABLES, "state_hash": state_digest(_served_by_hand(), TABLES)}


def _run(calls: list[Call]) -> dict:
    state = _state()
    for call in calls:
        try:
            FAMILY.tool_index[call.name].call(state, dict(call.arguments))
        except ToolError:
            continue
    return state


def test_desk_procedure_matches_the_hand_visit() -> None:
    assert FAMILY._desk(_state(), GOAL).calls == HAND_CALLS


def test_hand_visit_through_the_tools_passes() -> None:
    state = _run(HAND_CALLS)
    assert state == _served_by_hand()
    assert FAMILY.verify(state, None, _goal()).reward == 1.0


@pytest.mark.parametrize("calls", [
    [*HAND_CALLS, Call("renew_loan", {"copy_id": "b3-c1"})],                  # renewal cap
    [*HAND_CALLS, Call("checkout_copy", {"member_id": "m0", "copy_id": "b1-c1"})],  # limit
    [HAND_CALLS[0], HAND_CALLS[1], Call("shelve_copy", {"copy_id": "b0-c1"}),
     HAND_CALLS[3]],                                                           # queue ignored
    [HAND_CALLS[0], Call("charge_fine", {"member_id": "m0", "amount_cents": 275}),
     *HAND_CALLS[2:]],                                                         # a day off
    [HAND_CALLS[0], *HAND_CALLS[2:]],                                          # no fine
])
def test_near_misses_fail(calls: list[Call]) -> None:
    assert FAMILY.verify(_run(calls), None, _goal()).reward == 0.0


def test_fine_question_hand_worked() -> None:
    # Bo: 50 owed, plus b0-c2 42 days late = 1050, capped at 300: 350 in all.
    goal = {"member": "m1", "fine_cents": 350}
    assert FAMILY.verify(_state(), {"fine_cents": 350}, goal).reward == 1.0
    for wrong in (1100, 300, 375, None):
        assert FAMILY.verify(_state(), {"fine_cents": wrong}, goal).reward == 0.0
    assert FAMILY.verify(_state(), None, goal).reward == 0.0


def test_blocked_member_cannot_renew() -> None:
    state = _state()
    state["members"][0]["fines_cents"] = 301
    state["loans"][2]["renewals"] = 0
    assert not lc._renewable(state, state["loans"][2])
    state["members"][0]["fines_cents"] = 300
    assert lc._renewable(state, state["loans"][2])


@pytest.mark.parametrize(("name", "args"), [
    ("checkout_copy", {"member_id": "m1", "copy_id": "b2-c1"}),   # held for Ada
    ("checkout_copy", {"member_id": "m0", "copy_id": "b0-c2"}),   # on loan
    ("return_copy", {"copy_id": "b1-c1"}),                         # not on loan
    ("shelve_copy", {"copy_id": "b1-c1"}),                         # not in the cart
    ("place_hold", {"member_id": "m2", "book_id": "b0"}),          # already queued
    ("charge_fine", {"member_id": "m0", "amount_cents": 0}),
    ("renew_loan", {"copy_id": "b9-c1"}),
    ("find_member", {"name": "Zed Zed"}),
    ("list_copies", {"book_id": "b9"}),
])
def test_bad_calls_raise_and_leave_state(name: str, args: dict) -> None:
    state = _state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        FAMILY.tool_index[name].call(state, args)
    assert state == before


def test_shelving_for_someone_without_a_hold_is_refused() -> None:
    state = _state()
    lc.return_copy.call(state, {"copy_id": "b0-c1"})
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        lc.shelve_copy.call(state, {"copy_id": "b0-c1", "hold_for": "m1"})
    assert state == before
