"""Meeting and room scheduling: people's calendars, rooms with seats and equipment, bookings.

The agent books rooms for meeting requests through a state-changing tool that only guards
the room itself (no double booking); seats, equipment, the attendees' calendars, a time
window and the earliest-slot rule are the agent's to respect. The verifier reads the final
bookings and checks each requested meeting for validity and against its earliest feasible
start, found at generation time by scanning every (day, slot, room).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from envsynth.errors import ToolError
from envsynth.schema import Verdict
from pipelines.general.family import (
    Call,
    Family,
    FamilyConfig,
    TaskDraft,
    Variant,
    register_family,
)
from pipelines.general.names import FIRST_NAMES, LAST_NAMES
from pipelines.general.tools import State, find_record, tool

_FIRST = list(FIRST_NAMES[:16])
_LAST = list(LAST_NAMES[:10])
_ROOMS = ["Aurora", "Birch", "Cedar", "Delta", "Ember", "Fjord", "Grove", "Harbor", "Iris", "Jade"]
_KIT = ["projector", "video", "whiteboard"]
_TOPICS = ["budget review", "design sync", "hiring panel", "roadmap", "incident review",
           "vendor call", "retro", "kick-off"]
_WEEK = ["Mon", "Tue", "Wed", "Thu", "Fri"]
YOU = "you"


class MeetingConfig(FamilyConfig):
    people: int = Field(8, ge=4, le=16)
    rooms: int = Field(5, ge=2, le=10)
    days: int = Field(3, ge=1, le=5)
    busy_per_person: int = Field(6, ge=0, le=12)
    bookings: int = Field(8, ge=0, le=24)
    """Bookings other teams already hold; some of our people attend them."""
    equipment: bool = True
    """Whether rooms list equipment (a schema option: rooms without an `equipment` field)."""


@functools.lru_cache(maxsize=256)
def _min(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _busy(state: State, person: str, day: str) -> list[tuple[int, int]]:
    """A person's busy intervals on a day: calendar events plus booked meetings they attend."""
    out = [(_min(e["start"]), _min(e["end"])) for e in state["calendars"][person]
           if e["day"] == day]
    out += [(_min(b["start"]), _min(b["end"])) for b in state["bookings"]
            if b["day"] == day and person in b["attendees"]]
    return sorted(out)


def _overlaps(a: int, b: int, spans: list[tuple[int, int]]) -> bool:
    return any(s < b and a < e for s, e in spans)


def _room_busy(state: State, room: str, day: str, skip: str | None = None) -> list[tuple[int, int]]:
    return [(_min(b["start"]), _min(b["end"])) for b in state["bookings"]
            if b["room"] == room and b["day"] == day and b["id"] != skip]


def _fits(room: Mapping[str, Any], meeting: Mapping[str, Any]) -> bool:
    return room["capacity"] >= meeting["seats"] and set(meeting["equipment"]) <= set(
        room.get("equipment", []))


# ---- tools ------------------------------------------------------------------------------


def _check_person(state: State, person_id: str) -> None:
    if person_id not in state["calendars"]:
        raise ToolError(f"no person {person_id!r}; list_people gives the ids")


def _check_day(state: State, day: str) -> None:
    if day not in state["days"]:
        raise ToolError(f"day must be one of {state['days']}")


@tool()
def list_people(state: State) -> list[dict[str, Any]]:
    """Everyone in the organisation: id, name and team."""
    return state["people"]


@tool()
def get_calendar(state: State, person_id: str, day: str | None = None) -> list[dict[str, str]]:
    """A person's busy times (their own events and the booked meetings they attend).

    Args:
        person_id: the person's id, e.g. "u3".
        day: only this day (e.g. "Tue"); the whole schedule when omitted.
    """
    _check_person(state, person_id)
    if day is not None:
        _check_day(state, day)
    return [{"day": d, "start": _hhmm(s), "end": _hhmm(e)} for d in state["days"]
            if day in (None, d) for s, e in _busy(state, person_id, d)]


@tool()
def free_busy(state: State, person_ids: list[str], day: str) -> list[dict[str, str]]:
    """The merged busy times of a group of people on one day (when any of them is busy).

    Args:
        person_ids: the people's ids.
        day: the day, e.g. "Mon".
    """
    _check_day(state, day)
    spans: list[tuple[int, int]] = []
    for p in person_ids:
        _check_person(state, p)
        spans += _busy(state, p, day)
    merged: list[list[int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [{"start": _hhmm(s), "end": _hhmm(e)} for s, e in merged]


@tool()
def list_rooms(state: State) -> list[dict[str, Any]]:
    """Every meeting room with its seats (capacity) and, where recorded, its equipment."""
    return state["rooms"]


@tool()
def find_rooms(state: State, min_capacity: int = 1, equipment: list[str] | None = None
               ) -> list[dict[str, Any]]:
    """Rooms with at least `min_capacity` seats and all of the listed equipment.

    Args:
        min_capacity: the fewest seats acceptable.
        equipment: equipment the room must have (projector, video, whiteboard).
    """
    need = {"seats": min_capacity, "equipment": equipment or []}
    return [r for r in state["rooms"] if _fits(r, need)]


@tool()
def room_schedule(state: State, room_id: str, day: str) -> list[dict[str, str]]:
    """The bookings of one room on one day (start, end, booking id).

    Args:
        room_id: the room's id, e.g. "R2".
        day: the day, e.g. "Wed".
    """
    if room_id not in {r["id"] for r in state["rooms"]}:
        raise ToolError(f"no room {room_id!r}")
    _check_day(state, day)
    return [{"id": b["id"], "start": b["start"], "end": b["end"]} for b in state["bookings"]
            if b["room"] == room_id and b["day"] == day]


@tool(writes=True)
def book_room(state: State, room_id: str, day: str, start: str, duration_min: int,
              attendees: list[str], title: str) -> str:
    """Book a room for a meeting. The system only refuses a room that is already taken.

    Args:
        room_id: the room to book.
        day: the day, e.g. "Tue".
        start: start time "HH:MM" on the half hour, within office hours.
        duration_min: length in minutes, a multiple of 30.
        attendees: ids of the people invited.
        title: the meeting's title.
    """
    if room_id not in {r["id"] for r in state["rooms"]}:
        raise ToolError(f"no room {room_id!r}")
    _check_day(state, day)
    for p in attendees:
        _check_person(state, p)
    if len(start) != 5 or start[2] != ":" or not (start[:2] + start[3:]).isdigit():
        raise ToolError("start must look like '13:30'")
    a = _min(start)
    if a % 30 or duration_min < 30 or duration_min % 30:
        raise ToolError("meetings start on the half hour and last a multiple of 30 minutes")
    if a < _min(state["office_hours"][0]) or a + duration_min > _min(state["office_hours"][1]):
        raise ToolError(f"meetings must fit in office hours {'-'.join(state['office_hours'])}")
    if _overlaps(a, a + duration_min, _room_busy(state, room_id, day)):
        raise ToolError(f"room {room_id} is already booked then on {day}")
    bid = f"N{state['next_booking']}"
    state["next_booking"] += 1
    state["bookings"].append({"id": bid, "room": room_id, "day": day, "start": start,
                              "end": _hhmm(a + duration_min), "title": title,
                              "attendees": sorted(set(attendees)), "owner": YOU})
    return f"booked {bid}: {room_id} on {day} {start}-{_hhmm(a + duration_min)}"


@tool(writes=True)
def cancel_booking(state: State, booking_id: str) -> str:
    """Cancel a booking you made (bookings held by other teams cannot be cancelled).

    Args:
        booking_id: the booking's id, e.g. "N1".
    """
    b = find_record(state["bookings"], booking_id, f"no booking {booking_id!r}")
    if b["owner"] != YOU:
        raise ToolError(f"booking {booking_id} belongs to {b['owner']}; you cannot cancel it")
    state["bookings"].remove(b)
    return f"cancelled {booking_id}"


# ---- earliest slot ----------------------------------------------------------------------


def _slot_problem(state: State, meeting: Mapping[str, Any], day: str, start: int, room: str,
                  skip: str | None = None) -> str | None:
    """Why `meeting` cannot be in `room` on `day` at `start` (minutes), or None if it can.

    `skip` is the booking being judged, so that it does not collide with itself.
    """
    end = start + meeting["duration"]
    window = meeting["window"]
    lo, hi = _min(state["office_hours"][0]), _min(state["office_hours"][1])
    if window and (day not in window["days"] or start < _min(window["after"])):
        return f"outside the requested window ({', '.join(window['days'])} from {window['after']})"
    if start < lo or end > hi or start % 30:
        return "outside office hours or off the half-hour grid"
    rooms = {r["id"]: r for r in state["rooms"]}
    if room not in rooms or not _fits(rooms[room], meeting):
        return f"room {room} lacks the seats or equipment"
    if _overlaps(start, end, _room_busy(state, room, day, skip)):
        return f"room {room} is double-booked"
    others = [b for b in state["bookings"] if b["id"] != skip]
    for p in meeting["attendees"]:
        spans = [(_min(e["start"]), _min(e["end"])) for e in state["calendars"][p]
                 if e["day"] == day]
        spans += [(_min(b["start"]), _min(b["end"])) for b in others
                  if b["day"] == day and p in b["attendees"]]
        if _overlaps(start, end, spans):
            return f"{p} is busy"
    return None


def _feasible_slots(state: State, meeting: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    """Every feasible (day, start, smallest fitting free room) in time order.

    The same rules as `_slot_problem`, with each day's busy spans gathered once: this scan
    runs for every task and perturbation, `_slot_problem` only once per booking judged.
    """
    rooms = sorted((r for r in state["rooms"] if _fits(r, meeting)),
                   key=lambda r: (r["capacity"], r["id"]))
    lo, hi = _min(state["office_hours"][0]), _min(state["office_hours"][1])
    window, length = meeting["window"], meeting["duration"]
    out = []
    for day in state["days"]:
        if window and day not in window["days"]:
            continue
        people = [span for p in meeting["attendees"] for span in _busy(state, p, day)]
        taken = [(r["id"], _room_busy(state, r["id"], day)) for r in rooms]
        for start in range(max(lo, _min(window["after"])) if window else lo, hi - length + 1, 30):
            if _overlaps(start, start + length, people):
                continue
            room = next((r for r, spans in taken if not _overlaps(start, start + length, spans)),
                        None)
            if room:
                out.append((day, start, room))
    return out


# ---- the family -------------------------------------------------------------------------

_BASE = ("list_people", "room_schedule", "book_room")


@register_family
class MeetingRooms(Family[MeetingConfig]):
    name = "meeting_rooms"
    summary = "Book meeting rooms at the earliest slot that suits every attendee, seats and kit."
    config_model = MeetingConfig
    tools = (list_people, get_calendar, free_busy, list_rooms, find_rooms, room_schedule,
             book_room, cancel_booking)
    variants = (
        Variant("basic", (*_BASE, "get_calendar", "list_rooms"),
                ("attendees_free", "capacity", "earliest"), {"equipment": False}),
        Variant("equipment", (*_BASE, "get_calendar", "find_rooms"),
                ("attendees_free", "capacity", "equipment", "earliest")),
        Variant("free-busy", (*_BASE, "free_busy", "list_rooms"),
                ("attendees_free", "capacity", "equipment", "earliest"), {"days": 4}),
        Variant("window", (*_BASE, "get_calendar", "list_rooms", "cancel_booking"),
                ("attendees_free", "capacity", "window", "earliest")),
        Variant("series", (*_BASE, "free_busy", "find_rooms", "cancel_booking"),
                ("attendees_free", "capacity", "equipment", "sequence", "earliest")),
        Variant("busy-office", (*_BASE, "get_calendar", "free_busy", "find_rooms"),
                ("attendees_free", "capacity", "equipment", "window", "earliest"),
                {"people": 12, "rooms": 7, "busy_per_person": 9, "bookings": 16}),
    )

    def generate_state(self, rng: random.Random, config: MeetingConfig) -> State:
        names = rng.sample([f"{f} {la}" for f in _FIRST for la in _LAST], config.people)
        people = [{"id": f"u{i + 1}", "name": n, "team": rng.choice(["ops", "eng", "sales"])}
                  for i, n in enumerate(names)]
        days = _WEEK[:config.days]
        calendars = {p["id"]: _events(rng, days, p["team"], config.busy_per_person)
                     for p in people}
        rooms = []
        for i, name in enumerate(rng.sample(_ROOMS, config.rooms)):
            room: dict[str, Any] = {"id": f"R{i + 1}", "name": name,
                                    "capacity": rng.choice([2, 4, 4, 6, 8, 10, 12])}
            if config.equipment:
                room["equipment"] = sorted(rng.sample(_KIT, rng.randint(0, 3)))
            rooms.append(room)
        state: State = {"days": days, "office_hours": ["09:00", "17:00"], "people": people,
                        "calendars": calendars, "rooms": rooms, "bookings": [], "next_booking": 1}
        for i in range(config.bookings):
            room_id, day = rng.choice(rooms)["id"], rng.choice(days)
            start = rng.randrange(540, 990, 30)
            end = min(start + rng.choice([30, 60, 90, 120]), 1020)
            if _overlaps(start, end, _room_busy(state, room_id, day)):
                continue
            state["bookings"].append({
                "id": f"B{i + 1}", "room": room_id, "day": day, "start": _hhmm(start),
                "end": _hhmm(end), "title": f"{rng.choice(_TOPICS)} ({rng.choice(['HR', 'QA'])})",
                "attendees": sorted(p["id"] for p in rng.sample(people, rng.randint(0, 2))),
                "owner": rng.choice(["HR team", "QA team", "Facilities"]),
            })
        return state

    def generate_task(self, rng: random.Random, state: State, config: MeetingConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        kinds = set(variant.constraints)
        count = 2 if level == 2 and "sequence" in kinds else 1
        for _ in range(6):
            meetings = [self._meeting(rng, state, kinds, level) for _ in range(count)]
            if count == 2:
                shared = rng.choice(meetings[0]["attendees"])
                meetings[1]["attendees"] = sorted({*meetings[1]["attendees"], shared})
                if meetings[1]["attendees"] == meetings[0]["attendees"]:
                    continue
                meetings[1]["seats"] = max(meetings[1]["seats"], len(meetings[1]["attendees"]))
            plan = self._plan(state, meetings)
            if plan is not None:
                goal = {"meetings": meetings, "plan": plan,
                        "others": sum(b["owner"] != YOU for b in state["bookings"])}
                return TaskDraft(
                    instruction=self._instruction(state, meetings),
                    goal=goal,
                    knobs={"steps": 3 + sum(len(m["attendees"]) + 1 for m in meetings),
                           "constraints": 2 + sum(bool(m["equipment"]) + bool(m["window"])
                                                  for m in meetings) + (count - 1),
                           "distractors": len(state["people"]) - len(meetings[0]["attendees"])},
                )
        return None

    def _meeting(self, rng: random.Random, state: State, kinds: set[str], level: int
                 ) -> dict[str, Any]:
        size = 2 + min(level, 1) + rng.randint(0, 1)
        people = sorted(rng.sample([p["id"] for p in state["people"]], size))
        window = None
        if "window" in kinds and level:
            days = sorted(rng.sample(state["days"], max(1, len(state["days"]) - 1)),
                          key=state["days"].index)
            window = {"days": days, "after": rng.choice(["10:00", "11:00", "13:00"])}
        # Seats and equipment are drawn from one real room, so that some room always fits.
        anchor = rng.choice([r for r in state["rooms"] if r["capacity"] >= size]
                            or state["rooms"])
        kit = anchor.get("equipment", []) if "equipment" in kinds and level else []
        return {
            "title": rng.choice(_TOPICS), "attendees": people,
            "duration": rng.choice([30, 60, 60, 90]),
            "seats": max(size, min(anchor["capacity"], size + (rng.randint(1, 3) if level else 0))),
            "equipment": sorted(rng.sample(kit, min(len(kit), 1 + (level == 2)))),
            "window": window,
        }

    def _plan(self, state: State, meetings: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Book the meetings in order, each at its earliest slot; None if one cannot fit, or if
        the room chosen for an earlier one could change a later one's earliest start."""
        from pipelines.general.family import copy_state

        work = copy_state(state)
        plan = []
        for i, m in enumerate(meetings):
            slots = _feasible_slots(work, m)
            if not slots:
                return None
            day, start, room = slots[0]
            if i + 1 < len(meetings) and len(self._next_starts(work, m, day, start,
                                                               meetings[i + 1])) != 1:
                return None
            work = _with(work, m, day, start, room)
            plan.append({"day": day, "start": _hhmm(start), "room": room})
        return plan

    def _next_starts(self, state: State, meeting: Mapping[str, Any], day: str, start: int,
                     after: Mapping[str, Any]) -> set[tuple[str, int] | None]:
        """The earliest (day, start) of `after` for each room `meeting` could take."""
        out: set[tuple[str, int] | None] = set()
        for r in state["rooms"]:
            if _slot_problem(state, meeting, day, start, r["id"]) is None:
                slots = _feasible_slots(_with(state, meeting, day, start, r["id"]), after)
                out.add(slots[0][:2] if slots else None)
        return out if None not in out else set()

    def _instruction(self, state: State, meetings: list[dict[str, Any]]) -> str:
        names = {p["id"]: p["name"] for p in state["people"]}
        parts = []
        for i, m in enumerate(meetings):
            who = ", ".join(names[p] for p in m["attendees"])
            text = (f"a {m['duration']}-minute '{m['title']}' meeting with {who}, "
                    f"in a room with at least {m['seats']} seats")
            if m["equipment"]:
                text += f" that has: {', '.join(m['equipment'])}"
            if m["window"]:
                text += (f"; it must be on {' or '.join(m['window']['days'])}, starting at "
                         f"{m['window']['after']} or later")
            parts.append(("First book " if i == 0 else "Then book ") + text + "." if len(meetings)
                         > 1 else "Book " + text + ".")
        return (" ".join(parts) + " Invite exactly those people. Every attendee must be free for "
                "the whole meeting, and each meeting must take the earliest possible start (day, "
                "then time) on the half-hour grid within office hours "
                f"{'-'.join(state['office_hours'])}"
                + (", given the meetings booked before it" if len(meetings) > 1 else "")
                + ". Submit when done.")

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        calls = [Call("list_people")]
        for m, slot in zip(draft.goal["meetings"], draft.goal["plan"], strict=True):
            if "free_busy" in variant.tools:
                calls += [Call("free_busy", {"person_ids": m["attendees"], "day": d})
                          for d in state["days"]]
            else:
                calls += [Call("get_calendar", {"person_id": p}) for p in m["attendees"]]
            if "find_rooms" in variant.tools:
                calls.append(Call("find_rooms", {"min_capacity": m["seats"],
                                                 "equipment": m["equipment"]}))
            else:
                calls.append(Call("list_rooms"))
            calls.append(Call("room_schedule", {"room_id": slot["room"], "day": slot["day"]}))
            calls.append(_book(m, slot))
        return [*calls, Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        mine = [b for b in final_state["bookings"] if b["owner"] == YOU]
        others = len(final_state["bookings"]) - len(mine)
        if others != goal["others"]:
            return _fail("other teams' bookings were changed")
        if len(mine) != len(goal["meetings"]):
            return _fail(f"{len(mine)} bookings made, {len(goal['meetings'])} requested")
        by_people = {tuple(b["attendees"]): b for b in mine}
        matched = [by_people.get(tuple(m["attendees"])) for m in goal["meetings"]]
        for i, (m, b, want) in enumerate(zip(goal["meetings"], matched, goal["plan"], strict=True)):
            if b is None:
                return _fail(f"no booking invites exactly {m['attendees']}")
            if _min(b["end"]) - _min(b["start"]) != m["duration"]:
                return _fail(f"booking {b['id']} does not last {m['duration']} minutes")
            # Judge each meeting against the bookings made for the ones before it only.
            later = {x["id"] for x in matched[i + 1:] if x}
            view = {**final_state, "bookings": [x for x in final_state["bookings"]
                                                if x["id"] not in later]}
            problem = _slot_problem(view, m, b["day"], _min(b["start"]), b["room"], skip=b["id"])
            if problem:
                return _fail(f"booking {b['id']}: {problem}")
            if (b["day"], b["start"]) != (want["day"], want["start"]):
                return Verdict(reward=0.0, components={"valid": 1.0, "earliest": 0.0},
                               reason=f"booking {b['id']} is valid but {want['day']} "
                               f"{want['start']} was earlier")
        return Verdict(reward=1.0, components={"valid": 1.0, "earliest": 1.0},
                       reason="every meeting valid and at its earliest slot")

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        # Grading reads only the bookings, so the near misses skip the reference's look-ups.
        head = [c for c in reference[:-2] if c.name == "book_room"]
        work = state
        for prev, s in zip(g["meetings"][:-1], g["plan"][:-1], strict=True):
            work = _with(work, prev, s["day"], _min(s["start"]), s["room"])
        m, slot = g["meetings"][-1], g["plan"][-1]
        broken = self._busy_slot(work, m)
        if broken is None and (room := self._bad_room(work, m, slot)) is not None:
            broken = {**slot, "room": room}  # the same slot in a room that does not fit
        if broken is None:  # nobody is ever busy and every room fits: leave someone out
            m = {**m, "attendees": m["attendees"][1:]}
            broken = slot
        valid = _feasible_slots(work, g["meetings"][-1])
        # Wrong: the next valid slot after the earliest (a real booking, just not the best).
        wrong = ({"day": valid[1][0], "start": _hhmm(valid[1][1]), "room": valid[1][2]}
                 if len(valid) > 1 else {**slot, "room": self._bad_room(work, m, slot) or "R0"})
        return {"constraint_broken": [*head, _book(m, broken), Call("submit")],
                "wrong_value": [*head, _book(g["meetings"][-1], wrong), Call("submit")]}

    def _busy_slot(self, state: State, meeting: Mapping[str, Any]) -> dict[str, Any] | None:
        """The earliest slot with a free fitting room at which some attendee is busy."""
        for day, start, room in _feasible_slots(state, {**meeting, "attendees": []}):
            if _slot_problem(state, meeting, day, start, room):
                return {"day": day, "start": _hhmm(start), "room": room}
        return None

    def _bad_room(self, state: State, meeting: Mapping[str, Any], slot: Mapping[str, Any]
                  ) -> str | None:
        """A room free at the slot that lacks the seats or equipment."""
        start = _min(slot["start"])
        return next((r["id"] for r in state["rooms"] if not _fits(r, meeting)
                     and not _overlaps(start, start + meeting["duration"],
                                       _room_busy(state, r["id"], slot["day"]))), None)


def _book(meeting: Mapping[str, Any], slot: Mapping[str, Any]) -> Call:
    return Call("book_room", {"room_id": slot["room"], "day": slot["day"], "start": slot["start"],
                              "duration_min": meeting["duration"],
                              "attendees": meeting["attendees"], "title": meeting["title"]})


def _with(state: State, meeting: Mapping[str, Any], day: str, start: int, room: str) -> State:
    """`state` with `meeting` booked (a shallow copy: only the bookings list is new)."""
    booking = {"id": f"N{state['next_booking']}", "room": room, "day": day,
               "start": _hhmm(start), "end": _hhmm(start + meeting["duration"]),
               "title": meeting["title"], "attendees": meeting["attendees"], "owner": YOU}
    return {**state, "bookings": [*state["bookings"], booking],
            "next_booking": state["next_booking"] + 1}


_ROUTINES = {  # team rituals: why mornings are rarely free for everyone
    "eng": [("*", 540, 570)],
    "ops": [("*", 570, 600)],
    "sales": [("Mon", 540, 660), ("Thu", 960, 1020)],
}


def _events(rng: random.Random, days: list[str], team: str, count: int) -> list[dict[str, str]]:
    spans = [(d, a, b) for when, a, b in _ROUTINES[team] for d in days if when in ("*", d)]
    for _ in range(count):
        start = rng.randrange(540, 990, 30)
        spans.append((rng.choice(days), start, min(start + rng.choice([30, 60, 90, 120]), 1020)))
    spans.sort(key=lambda x: (days.index(x[0]), x[1]))
    return [{"day": d, "start": _hhmm(a), "end": _hhmm(b)} for d, a, b in spans]


def _fail(reason: str) -> Verdict:
    return Verdict(reward=0.0, components={"valid": 0.0}, reason=reason)
