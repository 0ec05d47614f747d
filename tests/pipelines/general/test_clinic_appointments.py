"""clinic_appointments: the verifier on a hand-solved clinic and an independent slot scan."""

from __future__ import annotations

import copy
import random

import pytest

from envsynth.errors import ToolError
from envsynth.ids import content_hash
from pipelines.general.family import load_families

FAMILY = load_families().get("clinic_appointments")
TOOLS = FAMILY.tool_index
MON, TUE = "2026-03-02", "2026-03-03"


def _clinic() -> dict:
    """By hand: p1 (Acme PPO, seen by d1) can only see d1 among GPs, for a 30-minute follow-up;
    Monday 09:00 is blocked, so the earliest is Mon 09:30. p2 (Blue HMO, no referral) gets
    d2 on Mon 08:00 (a 40-minute new visit), then cardiology with d3 on a later day: Tue 13:00.
    """
    return {
        "days": [MON, TUE], "next_id": 2, "rules": {},
        "doctors": [
            {"id": "d1", "name": "Dr. A", "specialty": "general", "languages": ["en"],
             "networks": ["Acme PPO"], "slot_min": 30,
             "shifts": [{"date": MON, "start": "09:00", "end": "11:00"},
                        {"date": TUE, "start": "09:00", "end": "10:00"}],
             "busy": [{"date": MON, "start": "09:00", "end": "09:30"}]},
            {"id": "d2", "name": "Dr. B", "specialty": "general", "languages": ["en", "es"],
             "networks": ["Blue HMO"], "slot_min": 20,
             "shifts": [{"date": MON, "start": "08:00", "end": "09:00"}], "busy": []},
            {"id": "d3", "name": "Dr. C", "specialty": "cardiology", "languages": ["en"],
             "networks": ["Acme PPO", "Blue HMO"], "slot_min": 30,
             "shifts": [{"date": MON, "start": "13:00", "end": "15:00"},
                        {"date": TUE, "start": "13:00", "end": "15:00"}], "busy": []},
        ],
        "patients": [
            {"id": "p1", "name": "Ann", "email": "ann@x", "insurance": "Acme PPO",
             "language": "en", "referrals": [], "seen_by": ["d1"]},
            {"id": "p2", "name": "Bob", "email": "bob@x", "insurance": "Blue HMO",
             "language": "es", "referrals": [], "seen_by": []},
        ],
        "appointments": [{"id": "A1", "doctor_id": "d1", "patient_id": "p1", "date": TUE,
                          "start": "09:00", "end": "09:30", "kind": "follow_up",
                          "status": "booked"}],
    }


def _goal(state: dict, requests: list[dict], touched: list[str] = ()) -> dict:
    return {"requests": requests, "touched": list(touched),
            "base_ids": [a["id"] for a in state["appointments"]],
            "base_digest": content_hash([a for a in state["appointments"]
                                         if a["id"] not in touched])}


def _book(state: dict, doctor: str, patient: str, date: str, start: str, kind: str) -> None:
    TOOLS["book_appointment"].call(state, {"doctor_id": doctor, "patient_id": patient,
                                           "date": date, "start": start, "kind": kind})


GP_P1 = {"op": "book", "patient": "p1", "specialty": "general", "language": None,
         "window": None, "earliest": {"date": MON, "start": "09:30"}}


@pytest.mark.parametrize(("doctor", "date", "start", "kind", "ok"), [
    ("d1", MON, "09:30", "follow_up", True),
    ("d1", MON, "09:30", "new", False),         # d1 has seen p1: a follow-up
    ("d1", MON, "10:00", "follow_up", False),   # valid, not the earliest
    ("d2", MON, "08:00", "follow_up", False),   # d2 is outside Acme PPO
    ("d3", MON, "13:00", "new", False),         # a cardiologist
])
def test_hand_solved_single_visit(doctor: str, date: str, start: str, kind: str,
                                  ok: bool) -> None:
    state = _clinic()
    goal = _goal(state, [GP_P1])
    _book(state, doctor, "p1", date, start, kind)
    assert (FAMILY.verify(state, None, goal).reward == 1.0) is ok


def test_out_of_network_doctor_fails_even_at_the_earliest_time() -> None:
    state = _clinic()
    state["doctors"][1]["shifts"] = [{"date": MON, "start": "09:30", "end": "10:30"}]
    goal = _goal(state, [GP_P1])
    _book(state, "d2", "p1", MON, "09:30", "new")  # right time and type, wrong network
    verdict = FAMILY.verify(state, None, goal)
    assert verdict.reward == 0.0 and "network" in verdict.reason


def test_referral_chain_needs_a_later_day() -> None:
    requests = [
        {"op": "book", "patient": "p2", "specialty": "general", "language": "es",
         "window": None, "earliest": {"date": MON, "start": "08:00"}},
        {"op": "book", "patient": "p2", "specialty": "cardiology", "language": None,
         "window": None, "after_request": 0, "earliest": {"date": TUE, "start": "13:00"}},
    ]
    good, same_day = _clinic(), _clinic()
    goal = _goal(good, requests)
    for state, day in ((good, TUE), (same_day, MON)):
        _book(state, "d2", "p2", MON, "08:00", "new")
        _book(state, "d3", "p2", day, "13:00", "new")
    assert FAMILY.verify(good, None, goal).reward == 1.0
    assert FAMILY.verify(same_day, None, goal).reward == 0.0
    assert FAMILY.verify(_clinic(), None, goal).reward == 0.0


def test_move_to_earliest_with_same_doctor() -> None:
    move = {"op": "move", "appointment": "A1", "patient": "p1", "doctor": "d1", "window": None,
            "earliest": {"date": MON, "start": "09:30"}}
    for start, ok in (("09:30", True), ("10:30", False)):
        state = _clinic()
        goal = _goal(state, [move], ["A1"])
        TOOLS["reschedule_appointment"].call(state, {"appointment_id": "A1", "date": MON,
                                                     "start": start})
        assert (FAMILY.verify(state, None, goal).reward == 1.0) is ok
    # Cancelling and rebooking the same time is a new appointment, not a move.
    state = _clinic()
    goal = _goal(state, [move], ["A1"])
    TOOLS["cancel_appointment"].call(state, {"appointment_id": "A1"})
    _book(state, "d1", "p1", MON, "09:30", "follow_up")
    assert FAMILY.verify(state, None, goal).reward == 0.0


@pytest.mark.parametrize(("name", "args"), [
    ("book_appointment", {"doctor_id": "d1", "patient_id": "p1", "date": MON,
                          "start": "09:15", "kind": "follow_up"}),    # off the grid
    ("book_appointment", {"doctor_id": "d1", "patient_id": "p1", "date": MON,
                          "start": "09:00", "kind": "follow_up"}),    # blocked time
    ("book_appointment", {"doctor_id": "d1", "patient_id": "p1", "date": MON,
                          "start": "10:30", "kind": "new"}),          # runs past the shift
    ("book_appointment", {"doctor_id": "d1", "patient_id": "p9", "date": MON,
                          "start": "09:30", "kind": "new"}),
    ("book_appointment", {"doctor_id": "d1", "patient_id": "p1", "date": MON,
                          "start": "9:30", "kind": "new"}),
    ("reschedule_appointment", {"appointment_id": "A1", "date": MON, "start": "09:00"}),
    ("open_slots", {"doctor_id": "d1", "date": MON, "kind": "urgent"}),
    ("cancel_appointment", {"appointment_id": "A7"}),
])
def test_refused_calls_change_nothing(name: str, args: dict) -> None:
    state = _clinic()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        TOOLS[name].call(state, args)
    assert state == before


def _scan(state: dict, req: dict, after: str | None, moving: str | None) -> tuple[str, str]:
    """Independent earliest search: busy time as sets of minutes, every shift minute tried."""
    def m(s: str) -> int:
        return int(s[:2]) * 60 + int(s[3:])

    patient = next(p for p in state["patients"] if p["id"] == req["patient"])
    moved = next((a for a in state["appointments"] if a["id"] == moving), None)
    best = None
    for d in state["doctors"]:
        if req.get("doctor", d["id"]) != d["id"]:
            continue
        if req.get("specialty") and d["specialty"] != req["specialty"]:
            continue
        if patient["insurance"] != "self-pay" and patient["insurance"] not in d["networks"]:
            continue
        if req.get("language") and req["language"] not in d["languages"]:
            continue
        length = d["slot_min"] * (1 if d["id"] in patient["seen_by"] else 2)
        for shift in d["shifts"]:
            day = shift["date"]
            taken = set()
            for a in d["busy"] + state["appointments"]:
                mine = a.get("patient_id") == patient["id"]
                ours = a.get("doctor_id", d["id"]) == d["id"]
                if a["date"] == day and a.get("status", "booked") == "booked" and a is not moved \
                        and (ours or mine):
                    taken |= set(range(m(a["start"]), m(a["end"])))
            for t in range(m(shift["start"]), m(shift["end"]) - length + 1):
                if (t - m(shift["start"])) % d["slot_min"] or taken & set(range(t, t + length)):
                    continue
                w = req.get("window")
                if w and (day not in w["dates"] or t < m(w["from"]) or t + length > m(w["to"])):
                    continue
                if after and day <= after:
                    continue
                key = (day, f"{t // 60:02d}:{t % 60:02d}")
                best = key if best is None else min(best, key)
    return best


@pytest.mark.parametrize("variant", ["open-slots", "referrals", "reschedule"])
def test_stored_earliest_equals_independent_scan(variant: str) -> None:
    v = FAMILY.variant(variant)
    config = FAMILY.config_for(v)
    checked = 0
    for seed in range(8):
        rng = random.Random(seed)
        state = FAMILY.generate_state(rng, config)
        for level in range(3):
            draft = FAMILY.generate_task(rng, state, config, v, level)
            if draft is None:
                continue
            dates: list[str | None] = []
            cancelled = next((r["appointment"] for r in draft.goal["requests"]
                              if r["op"] == "cancel"), None)
            for req in draft.goal["requests"]:
                if req["op"] == "cancel":
                    dates.append(None)
                    continue
                after = dates[req["after_request"]] if "after_request" in req else None
                found = _scan(state, req, after, req.get("appointment") or cancelled)
                assert found == (req["earliest"]["date"], req["earliest"]["start"])
                dates.append(found[0])
                checked += 1
    assert checked >= 15
