"""The meeting_rooms verifier against a hand-solved office and an independent slot scan."""

from __future__ import annotations

import copy
import random

import pytest

from envsynth.errors import ToolError
from pipelines.general.family import load_families

FAMILY = load_families().get("meeting_rooms")
TOOLS = FAMILY.tool_index


def _office() -> dict:
    """Monday is hopeless for u1+u2+u3 (u1 busy till 12, u3 in B1 12-13, u2 busy from 13), so
    the earliest hour for the three is Tue 09:00, in R2 or R3 (R1 is too small)."""
    return {
        "days": ["Mon", "Tue"], "office_hours": ["09:00", "17:00"],
        "people": [{"id": f"u{i}", "name": f"P{i}", "team": "eng"} for i in (1, 2, 3)],
        "calendars": {"u1": [{"day": "Mon", "start": "09:00", "end": "12:00"}],
                      "u2": [{"day": "Mon", "start": "13:00", "end": "17:00"}], "u3": []},
        "rooms": [{"id": "R1", "name": "a", "capacity": 2, "equipment": ["projector"]},
                  {"id": "R2", "name": "b", "capacity": 6, "equipment": ["projector"]},
                  {"id": "R3", "name": "c", "capacity": 4, "equipment": ["projector", "video"]}],
        "bookings": [{"id": "B1", "room": "R2", "day": "Mon", "start": "12:00", "end": "13:00",
                      "title": "x", "attendees": ["u3"], "owner": "HR team"}],
        "next_booking": 1,
    }


MEETING = {"title": "sync", "attendees": ["u1", "u2", "u3"], "duration": 60, "seats": 3,
           "equipment": ["projector"], "window": None}
GOAL = {"meetings": [MEETING], "plan": [{"day": "Tue", "start": "09:00", "room": "R3"}],
        "others": 1}


def _book(state: dict, room: str, day: str, start: str, people: list[str] | None = None,
          minutes: int = 60) -> None:
    TOOLS["book_room"].call(state, {"room_id": room, "day": day, "start": start,
                                    "duration_min": minutes,
                                    "attendees": people or MEETING["attendees"], "title": "t"})


@pytest.mark.parametrize(("room", "day", "start", "ok"), [
    ("R3", "Tue", "09:00", True),
    ("R2", "Tue", "09:00", True),    # another fitting room is as good
    ("R1", "Tue", "09:00", False),   # two seats for three people
    ("R3", "Tue", "09:30", False),   # valid, not the earliest
    ("R3", "Mon", "12:00", False),   # u3 is in B1
    ("R3", "Mon", "16:00", False),   # u2 is busy
])
def test_hand_solved_single_meeting(room: str, day: str, start: str, ok: bool) -> None:
    state = _office()
    _book(state, room, day, start)
    assert (FAMILY.verify(state, None, GOAL).reward == 1.0) is ok


def test_wrong_people_length_or_extra_booking_fail() -> None:
    for people, minutes, extra in [(["u1", "u2"], 60, False), (None, 90, False), (None, 60, True)]:
        state = _office()
        _book(state, "R3", "Tue", "09:00", people, minutes)
        if extra:
            _book(state, "R1", "Tue", "15:00", ["u1"], 30)
        assert FAMILY.verify(state, None, GOAL).reward == 0.0
    assert FAMILY.verify(_office(), None, GOAL).reward == 0.0


def test_second_meeting_sees_the_first() -> None:
    """u3 is in both. The second meeting (u3 alone, Tuesday only, needs video: R3) cannot
    overlap the first (Tue 09:00-10:00), so by hand its earliest start is Tue 10:00."""
    second = {"title": "1:1", "attendees": ["u3"], "duration": 60, "seats": 1,
              "equipment": ["video"], "window": {"days": ["Tue"], "after": "09:00"}}
    goal = {"meetings": [MEETING, second], "others": 1,
            "plan": [{"day": "Tue", "start": "09:00", "room": "R2"},
                     {"day": "Tue", "start": "10:00", "room": "R3"}]}
    good = _office()
    _book(good, "R2", "Tue", "09:00")
    _book(good, "R3", "Tue", "10:00", ["u3"])
    assert FAMILY.verify(good, None, goal).reward == 1.0
    clash = _office()
    _book(clash, "R2", "Tue", "09:00")
    _book(clash, "R3", "Tue", "09:00", ["u3"])  # room is free, u3 is not
    assert FAMILY.verify(clash, None, goal).reward == 0.0


def _earliest(state: dict, meeting: dict) -> tuple[str, str] | None:
    """Independent scan: busy time as sets of minutes, every room tried at every half hour."""
    def minute(s: str) -> int:
        return int(s[:2]) * 60 + int(s[3:])

    def taken(day: str, who: str | None = None, room: str | None = None) -> set[int]:
        out: set[int] = set()
        events = list(state["bookings"])
        if who:
            events = [b for b in events if who in b["attendees"]]
            events += [e for e in state["calendars"][who]]
        if room:
            events = [b for b in events if b.get("room") == room]
        for e in events:
            if e["day"] == day:
                out |= set(range(minute(e["start"]), minute(e["end"])))
        return out

    for day in state["days"]:
        for start in range(9 * 60, 17 * 60 - meeting["duration"] + 1, 30):
            span = set(range(start, start + meeting["duration"]))
            win = meeting["window"]
            if win and (day not in win["days"] or start < minute(win["after"])):
                continue
            if any(span & taken(day, who=p) for p in meeting["attendees"]):
                continue
            for r in state["rooms"]:
                if (r["capacity"] >= meeting["seats"]
                        and set(meeting["equipment"]) <= set(r.get("equipment", []))
                        and not span & taken(day, room=r["id"])):
                    return day, f"{start // 60:02d}:{start % 60:02d}"
    return None


@pytest.mark.parametrize("variant", ["equipment", "window", "busy-office"])
def test_stored_earliest_equals_independent_scan(variant: str) -> None:
    v = FAMILY.variant(variant)
    config = FAMILY.config_for(v)
    checked = 0
    for seed in range(8):
        rng = random.Random(seed)
        state = FAMILY.generate_state(rng, config)
        for level in range(3):
            draft = FAMILY.generate_task(rng, state, config, v, level)
            if draft:
                checked += 1
                slot = draft.goal["plan"][0]
                assert _earliest(state, draft.goal["meetings"][0]) == (slot["day"], slot["start"])
    assert checked >= 12


def test_tools_reject_bad_input_and_leave_state_alone() -> None:
    state = _office()
    before = copy.deepcopy(state)
    bad = [
        ("book_room", {"room_id": "R2", "day": "Mon", "start": "12:30", "duration_min": 30,
                       "attendees": ["u1"], "title": "t"}),   # R2 holds B1 then
        ("book_room", {"room_id": "R9", "day": "Mon", "start": "09:00", "duration_min": 30,
                       "attendees": ["u1"], "title": "t"}),
        ("book_room", {"room_id": "R1", "day": "Mon", "start": "09:15", "duration_min": 30,
                       "attendees": ["u1"], "title": "t"}),
        ("book_room", {"room_id": "R1", "day": "Mon", "start": "16:30", "duration_min": 60,
                       "attendees": ["u1"], "title": "t"}),
        ("book_room", {"room_id": "R1", "day": "Sun", "start": "10:00", "duration_min": 60,
                       "attendees": ["u1"], "title": "t"}),
        ("cancel_booking", {"booking_id": "B1"}),              # another team's booking
        ("get_calendar", {"person_id": "u7"}),
        ("free_busy", {"person_ids": ["u1"], "day": "Fri"}),
    ]
    for name, args in bad:
        with pytest.raises(ToolError):
            TOOLS[name].call(state, args)
    assert state == before
    assert TOOLS["free_busy"].call(state, {"person_ids": ["u1", "u3"], "day": "Mon"}) == [
        {"start": "09:00", "end": "13:00"}]
