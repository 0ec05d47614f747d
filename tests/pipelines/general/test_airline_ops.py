"""airline_ops: fare rules checked against hand-computed fees on a hand-built airline."""

from __future__ import annotations

import copy
import random
import re

import pytest

from envsynth.errors import ToolError
from pipelines.general.families import airline_ops as air
from pipelines.general.family import load_families, state_digest

FAMILY = load_families().get("airline_ops")
TOOLS = FAMILY.tool_index


def _flight(fid: str, origin: str, dest: str, date: str, dep: str, price: int, left: int,
            status: str = "scheduled") -> dict:
    return {"id": fid, "origin": origin, "dest": dest, "date": date, "dep": dep, "arr": "23:00",
            "status": status, "cabins": {"economy": {"price": price, "seats_left": left},
                                         "business": {"price": 3 * price, "seats_left": 0}}}


def _res(rid: str, pid: str, fid: str, fare: str, paid: int, booked: str = "2026-04-01",
         seat: str | None = None, bags: int = 0) -> dict:
    return {"id": rid, "passenger_id": pid, "flight_id": fid, "cabin": "economy", "fare": fare,
            "seat": seat, "bags": bags, "fare_paid": paid, "booked_on": booked,
            "status": "active"}


def _airline() -> dict:
    """px1 is silver, px2 gold; F4 was cancelled by the airline; F3 is sold out."""
    state = FAMILY.generate_state(random.Random(0), FAMILY.config_for(FAMILY.variant("full")))
    state.update(
        flights=[_flight("F1", "LIS", "OPO", "2026-05-11", "08:00", 100, 2),
                 _flight("F2", "LIS", "OPO", "2026-05-11", "12:00", 150, 1),
                 _flight("F3", "LIS", "OPO", "2026-05-12", "09:00", 90, 0),
                 _flight("F4", "OPO", "LIS", "2026-05-12", "10:00", 80, 3, "cancelled"),
                 _flight("F5", "OPO", "LIS", "2026-05-13", "10:00", 200, 1)],
        passengers=[{"id": "px1", "name": "A", "email": "a@x", "tier": "silver"},
                    {"id": "px2", "name": "B", "email": "b@x", "tier": "gold"}],
        reservations=[_res("R1", "px1", "F1", "standard", 120, seat="10A", bags=1),
                      _res("R2", "px1", "F4", "basic", 80),
                      _res("R3", "px1", "F2", "basic", 150, booked=air.TODAY),
                      _res("R4", "px2", "F1", "flex", 100),
                      _res("R5", "px1", "F1", "basic", 90)],
        seats={"F1": ["10A"], "F2": [], "F3": [], "F4": [], "F5": []},
        payments=[],
    )
    state["policy"]["bag_fee"] = 35
    for fare in state["fare_rules"].values():
        fare["change_fee"] = 50 if fare["changes"] and fare["refund_pct"] < 100 else 0
    return state


def _call(state: dict, name: str, **args: object) -> object:
    return TOOLS[name].call(state, args)


@pytest.mark.parametrize(("rid", "refund"), [
    ("R1", 60),    # standard: half of 120
    ("R2", 80),    # the airline cancelled F4: everything back
    ("R3", 150),   # basic, but booked today: everything back
    ("R4", 100),   # flex
    ("R5", 0),     # basic: nothing
])
def test_refunds_by_hand(rid: str, refund: int) -> None:
    state = _airline()
    _call(state, "cancel_reservation", reservation_id=rid)
    assert -sum(p["amount"] for p in state["payments"]) == refund
    assert next(r for r in state["reservations"] if r["id"] == rid)["status"] == "cancelled"


def test_cancel_frees_seat_and_capacity() -> None:
    state = _airline()
    _call(state, "cancel_reservation", reservation_id="R1")
    f1 = state["flights"][0]
    assert state["seats"]["F1"] == [] and f1["cabins"]["economy"]["seats_left"] == 3
    _call(state, "cancel_reservation", reservation_id="R2")  # F4 is not for sale any more
    assert state["flights"][3]["cabins"]["economy"]["seats_left"] == 3


@pytest.mark.parametrize(("rid", "to", "cost"), [
    ("R1", "F2", 80),  # silver standard: 50 fee + (150 - 120)
    ("R4", "F2", 50),  # gold flex: no fee, 50 difference
    ("R2", "F5", 0),   # off a cancelled flight: free even for a basic fare
])
def test_change_costs_by_hand(rid: str, to: str, cost: int) -> None:
    state = _airline()
    _call(state, "change_flight", reservation_id=rid, flight_id=to)
    assert sum(p["amount"] for p in state["payments"]) == cost
    moved = next(r for r in state["reservations"] if r["id"] == rid)
    assert moved["flight_id"] == to and moved["seat"] is None


def test_bags_and_seat_fees_by_hand() -> None:
    state = _airline()
    # R1: standard (1 free) + silver (1 more) = 2, one already checked: 1 free, 2 paid.
    _call(state, "add_bags", reservation_id="R1", count=3)
    assert state["payments"] == [{"reservation_id": "R1", "kind": "bags", "amount": 70}]
    _call(state, "change_seat", reservation_id="R5", seat="10B")  # basic pays for seats
    assert state["payments"][-1]["amount"] == 15 and "10B" in state["seats"]["F1"]


@pytest.mark.parametrize(("name", "args"), [
    ("change_flight", {"reservation_id": "R5", "flight_id": "F2"}),   # basic: no changes
    ("change_flight", {"reservation_id": "R1", "flight_id": "F3"}),   # sold out
    ("change_flight", {"reservation_id": "R1", "flight_id": "F5"}),   # another route
    ("change_seat", {"reservation_id": "R4", "seat": "10A"}),         # taken
    ("change_seat", {"reservation_id": "R4", "seat": "1A"}),          # business seat
    ("change_seat", {"reservation_id": "R2", "seat": "10C"}),         # flight cancelled
    ("add_bags", {"reservation_id": "R1", "count": 4}),
    ("cancel_reservation", {"reservation_id": "R9"}),
    ("find_passenger", {"email": "nobody@x"}),
])
def test_bad_calls_raise_and_change_nothing(name: str, args: dict) -> None:
    state = _airline()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        TOOLS[name].call(state, args)
    assert state == before


def test_cancelled_reservation_cannot_be_cancelled_twice() -> None:
    state = _airline()
    _call(state, "cancel_reservation", reservation_id="R1")
    after = copy.deepcopy(state)
    with pytest.raises(ToolError):
        _call(state, "cancel_reservation", reservation_id="R1")
    assert state == after


def test_refund_threshold_tasks_pick_the_hand_computed_set() -> None:
    state = _airline()
    mine = [r for r in state["reservations"] if r["id"] in ("R1", "R3", "R5")]
    refunds = {"R1": 60, "R3": 150, "R5": 0}  # by hand, see test_refunds_by_hand
    for seed in range(6):
        job = air._task_cancel(random.Random(seed), state, mine, 1)
        cut = int(re.search(r"at least (\d+) EUR", job.ask).group(1))
        chosen = {a["arguments"]["reservation_id"] for a in job.actions}
        assert chosen == {k for k, v in refunds.items() if v >= cut}
    # More than half of the price paid: only R3 (R1 gets exactly half).
    job = air._task_cancel(random.Random(0), state, mine, 2)
    assert [a["arguments"]["reservation_id"] for a in job.actions] == ["R3"]


def test_verifier_compares_graded_tables_only() -> None:
    state = _airline()
    goal = {"hash_tables": list(air.TABLES), "state_hash": state_digest(state, air.TABLES)}
    assert FAMILY.verify(state, None, goal).reward == 1.0
    state["passengers"][0]["tier"] = "gold"  # not graded
    assert FAMILY.verify(state, None, goal).reward == 1.0
    _call(state, "add_bags", reservation_id="R4", count=1)
    assert FAMILY.verify(state, None, goal).reward == 0.0
