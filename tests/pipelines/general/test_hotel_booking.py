"""hotel_booking: prices, fees and the generator's choices against a hand-built hotel."""

from __future__ import annotations

import copy
import random

import pytest

from envsynth.errors import ToolError
from pipelines.general.families import hotel_booking as hotel
from pipelines.general.family import load_families, state_digest

FAMILY = load_families().get("hotel_booking")
TOOLS = FAMILY.tool_index
NIGHTS = ["2026-07-01", "2026-07-02", "2026-07-03", "2026-07-04"]


def _res(rid: str, guest: str, room: str, ci: str, co: str, guests: int, total: int) -> dict:
    return {"id": rid, "guest_id": guest, "room_id": room, "check_in": ci, "check_out": co,
            "guests": guests, "total": total, "status": "confirmed"}


def _hotel() -> dict:
    """Today is 2026-06-30 and cancellation is free from 2 days ahead, so stays from 07-01
    pay a fee and stays from 07-03 do not. g1 is gold (10% off), g2 has no tier."""
    rates = {"STD": [100, 100, 120, 120], "DLX": [110, 130, 140, 140], "TRP": [200] * 4,
             "FAM": [150, 150, 160, 160], "STE": [300] * 4}
    return {
        "today": "2026-06-30", "next_id": 105, "charges": [],
        "room_types": [{"code": c, "name": n, "capacity": cap} for c, n, cap, _ in hotel._TYPES],
        "rooms": [{"id": "101", "type": "STD", "view": "city", "accessible": False},
                  {"id": "102", "type": "STD", "view": "sea", "accessible": False},
                  {"id": "201", "type": "DLX", "view": "sea", "accessible": True},
                  {"id": "301", "type": "FAM", "view": "garden", "accessible": False}],
        "rates": {code: dict(zip(NIGHTS, values, strict=True)) for code, values in rates.items()},
        "guests": [{"id": "g1", "name": "Ann Lee", "email": "ann@inn.test", "loyalty": "gold"},
                   {"id": "g2", "name": "Bob Ray", "email": "bob@inn.test", "loyalty": "none"}],
        "reservations": [_res("RS101", "g2", "101", "2026-07-01", "2026-07-03", 2, 200),
                         _res("RS102", "g1", "102", "2026-07-03", "2026-07-04", 2, 108),
                         _res("RS103", "g1", "201", "2026-07-03", "2026-07-04", 1, 126),
                         _res("RS104", "g1", "301", "2026-07-01", "2026-07-02", 2, 135)],
        "policy": {"loyalty_discount_pct": {"none": 0, "silver": 5, "gold": 10, "platinum": 15},
                   "free_cancellation_days": 2, "late_cancellation_fee": "first night"},
    }


def _call(state: dict, name: str, **args: object) -> object:
    return TOOLS[name].call(state, args)


@pytest.mark.parametrize(("room", "ci", "co", "guest", "price"), [
    ("102", "2026-07-01", "2026-07-03", "g1", 180),   # (100 + 100) less 10%
    ("201", "2026-07-01", "2026-07-03", "g1", 216),   # (110 + 130) less 10%
    ("201", "2026-07-01", "2026-07-03", "g2", 240),
    ("301", "2026-07-02", "2026-07-05", "g2", 470),   # 150 + 160 + 160
])
def test_quotes_by_hand(room: str, ci: str, co: str, guest: str, price: int) -> None:
    assert _call(_hotel(), "quote", room_id=room, check_in=ci, check_out=co,
                 guest_id=guest) == price


def test_booking_and_changes_are_repriced() -> None:
    state = _hotel()
    _call(state, "book_room", guest_id="g1", room_id="102", check_in="2026-07-01",
          check_out="2026-07-03", guests=2)
    assert state["reservations"][-1]["total"] == 180
    _call(state, "change_reservation", reservation_id="RS102", room_id="301", guests=3)
    assert next(r for r in state["reservations"] if r["id"] == "RS102")["total"] == 144


@pytest.mark.parametrize(("rid", "fee"), [("RS104", 135), ("RS102", 0), ("RS101", 100)])
def test_cancellation_fees_by_hand(rid: str, fee: int) -> None:
    state = _hotel()
    _call(state, "cancel_reservation", reservation_id=rid)
    assert sum(c["amount"] for c in state["charges"]) == fee


@pytest.mark.parametrize(("name", "args"), [
    ("book_room", {"guest_id": "g1", "room_id": "101", "check_in": "2026-07-02",
                   "check_out": "2026-07-04", "guests": 1}),            # overlaps RS101
    ("book_room", {"guest_id": "g1", "room_id": "102", "check_in": "2026-07-01",
                   "check_out": "2026-07-02", "guests": 3}),            # STD holds 2
    ("book_room", {"guest_id": "g1", "room_id": "102", "check_in": "2026-07-02",
                   "check_out": "2026-07-02", "guests": 1}),            # no nights
    ("book_room", {"guest_id": "g1", "room_id": "102", "check_in": "2026-07-04",
                   "check_out": "2026-07-09", "guests": 1}),            # no rates then
    ("book_room", {"guest_id": "g1", "room_id": "102", "check_in": "July 1",
                   "check_out": "2026-07-02", "guests": 1}),
    ("change_reservation", {"reservation_id": "RS103", "room_id": "102"}),  # RS102 there
    ("quote", {"room_id": "999", "check_in": "2026-07-01", "check_out": "2026-07-02",
               "guest_id": "g1"}),
    ("get_rates", {"room_type": "XXL", "check_in": "2026-07-01", "check_out": "2026-07-02"}),
])
def test_refused_calls_change_nothing(name: str, args: dict) -> None:
    state = _hotel()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        TOOLS[name].call(state, args)
    assert state == before


def test_generator_choices_match_hand_answers() -> None:
    state = _hotel()
    ann = state["guests"][0]
    ids = lambda job: [a["arguments"]["reservation_id"] for a in job.actions]  # noqa: E731
    # RS102 (108) and RS103 (126) overlap: the dearer RS103 goes.
    assert ids(hotel._task_cancel(random.Random(0), state, ann, 2)) == ["RS103"]
    # RS102 and RS103 start in 3 days (free); RS104 starts tomorrow (fee): keep it.
    assert sorted(ids(hotel._task_cancel(random.Random(0), state, ann, 1))) == ["RS102", "RS103"]
    # A third guest on RS102 (STD, 2 people): only the family room 301 is free and fits.
    for seed in range(10):
        job = hotel._task_modify(random.Random(seed), state, ann, 2)
        if job is not None:
            assert job.actions == [{"name": "change_reservation", "arguments": {
                "reservation_id": "RS102", "room_id": "301", "guests": 3}}]
            break
    else:
        pytest.fail("no add-a-guest task on the hand-built hotel")


def test_verifier_reads_graded_tables() -> None:
    state = _hotel()
    goal = {"hash_tables": list(hotel.TABLES), "state_hash": state_digest(state, hotel.TABLES)}
    assert FAMILY.verify(state, None, goal).reward == 1.0
    _call(state, "cancel_reservation", reservation_id="RS102")
    assert FAMILY.verify(state, None, goal).reward == 0.0
