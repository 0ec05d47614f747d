"""Course timetabling: repair a week's timetable after careless edits broke it.

The state is a department's week: time slots, rooms with seats, teachers with slots they
cannot teach, student groups with sizes, and sessions (course, teacher, group) placed in a
slot and room. A few recent edits left clashes: two sessions in one room, a teacher or a
group in two places at once, a group in too small a room, a teacher booked in a slot they
cannot teach. The agent moves sessions until every hard rule holds; harder tasks pin some
sessions in place or ask for the fewest moves. The verifier re-checks every rule on the
final timetable. The fewest moves is exact by construction: the clashes are disjoint, so
each needs a move of its own, and undoing each edit is one move.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import Field

from envsynth.errors import ToolError
from envsynth.schema import Verdict
from pipelines.general.family import Call, Family, FamilyConfig, TaskDraft, Variant, register_family
from pipelines.general.tools import State, find_record, tool

DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]
_COURSES = ["Algebra", "Botany", "Chemistry", "Databases", "Ethics", "Finance", "Geology",
            "History", "Italian", "Journalism", "Kinetics", "Logic", "Marketing", "Networks",
            "Optics", "Physics", "Robotics", "Statistics"]
_TEACHERS = ["Dr. Ames", "Dr. Brandt", "Dr. Costa", "Dr. Duval", "Dr. Engel", "Dr. Fonseca"]

Placement = dict[str, tuple[str, str]]
"""Session id -> (slot, room)."""


class TimetableConfig(FamilyConfig):
    days: int = Field(3, ge=2, le=5)
    periods: int = Field(4, ge=3, le=6)
    rooms: int = Field(3, ge=2, le=5)
    teachers: int = Field(4, ge=3, le=6)
    groups: int = Field(4, ge=2, le=6)
    sessions: int = Field(12, ge=6, le=18)
    edits: int = Field(3, ge=1, le=4)
    """Careless edits, each leaving one clash."""
    availability: bool = False
    """Teachers have slots they cannot teach."""
    capacity: bool = False
    """Rooms and groups differ in size, so a group may not fit a room."""
    max_per_day: int | None = Field(None, ge=1, le=4)
    """Most sessions a group may have in one day (no limit when None)."""


# ---- the rules, shared by tools, generator and verifier ------------------------------------------


def _placement(state: State) -> Placement:
    return {s["id"]: (s["slot"], s["room"]) for s in state["sessions"]}


class _Rules:
    """The state's fixed facts, indexed once so that a search can test many placements."""

    def __init__(self, state: State):
        self.sessions = {s["id"]: s for s in state["sessions"]}
        self.seats = {r["id"]: r["seats"] for r in state["rooms"]}
        self.size = {g["id"]: g["size"] for g in state["groups"]}
        self.off = {t["id"]: set(t["unavailable"]) for t in state["teachers"]}
        self.limit = state["rules"]["max_per_day"]
        self.spots = [(slot, r["id"]) for slot in state["slots"] for r in state["rooms"]]

    def unary(self, a: str, where: Mapping[str, tuple[str, str]]) -> list[tuple[str, list[str]]]:
        sa, (slot, room) = self.sessions[a], where[a]
        out = []
        if self.size[sa["group"]] > self.seats[room]:
            out.append((f"group {sa['group']} ({self.size[sa['group']]}) does not fit {room}", [a]))
        if slot in self.off[sa["teacher"]]:
            out.append((f"{sa['teacher']} cannot teach in {slot}", [a]))
        return out

    def pair(self, a: str, b: str, where: Mapping[str, tuple[str, str]]
             ) -> list[tuple[str, list[str]]]:
        if where[a][0] != where[b][0]:
            return []
        sa, sb, slot = self.sessions[a], self.sessions[b], where[a][0]
        a, b = sorted((a, b), key=lambda i: int(i[1:]))
        return [(f"{a} and {b} share a {what} in {slot}", [a, b])
                for what, same in (("room", where[a][1] == where[b][1]),
                                   ("teacher", sa["teacher"] == sb["teacher"]),
                                   ("group", sa["group"] == sb["group"])) if same]

    def per_day(self, where: Mapping[str, tuple[str, str]], only: str | None = None
                ) -> list[tuple[str, list[str]]]:
        if not self.limit:
            return []
        days: dict[tuple[str, str], list[str]] = {}
        for a in sorted(where, key=lambda i: int(i[1:])):
            days.setdefault((self.sessions[a]["group"], where[a][0][:3]), []).append(a)
        return [(f"group {g} has {len(held)} sessions on {d}", held)
                for (g, d), held in days.items()
                if len(held) > self.limit and (only is None or only in held)]

    def involving(self, a: str, where: Mapping[str, tuple[str, str]]
                  ) -> list[tuple[str, list[str]]]:
        """The broken rules that involve session `a`."""
        out = self.unary(a, where)
        for b in where:
            if b != a:
                out += self.pair(a, b, where)
        return out + self.per_day(where, only=a)


def _conflicts(state: State, where: Mapping[str, tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Every broken rule as (what, sessions involved)."""
    rules = _Rules(state)
    ids = sorted(where, key=lambda i: int(i[1:]))
    out = []
    for n, a in enumerate(ids):
        out += rules.unary(a, where)
        for b in ids[n + 1:]:
            out += rules.pair(a, b, where)
    return out + rules.per_day(where)


def _free_spots(state: State, where: Placement, session: str) -> Iterator[tuple[str, str]]:
    """The (slot, room) places other than its own where `session` breaks no rule."""
    rules = _Rules(state)
    return (spot for spot in rules.spots if spot != where[session]
            and not rules.involving(session, {**where, session: spot}))


# ---- tools ------------------------------------------------------------------------------------


def _session(state: State, session_id: str) -> dict[str, Any]:
    return find_record(
        state["sessions"], session_id, f"no session {session_id!r}; session ids look like 'S4'"
    )


@tool()
def list_sessions(state: State, day: str | None = None) -> list[dict[str, Any]]:
    """The week's sessions: id, course, teacher, group, slot and room. Slots are a day and a
    period, e.g. "Tue3" is Tuesday's third period.

    Args:
        day: only sessions on this day (Mon..Fri); all sessions when omitted.
    """
    return [s for s in state["sessions"] if day is None or s["slot"].startswith(day)]


@tool()
def get_session(state: State, session_id: str) -> dict[str, Any]:
    """One session: course, teacher, group, slot and room.

    Args:
        session_id: the session's id, e.g. "S4".
    """
    return _session(state, session_id)


@tool()
def view_day(state: State, day: str) -> dict[str, Any]:
    """A day's grid: for each slot of the day, the session placed in each room.

    Args:
        day: Mon, Tue, Wed, Thu or Fri.
    """
    slots = [s for s in state["slots"] if s.startswith(day)]
    if not slots:
        days = sorted({s[:3] for s in state["slots"]}, key=DAYS.index)
        raise ToolError(f"no slots on {day!r}; the days are {days}")
    grid: dict[str, dict[str, list[str]]] = {s: {} for s in slots}
    for sess in state["sessions"]:
        if sess["slot"] in grid:
            grid[sess["slot"]].setdefault(sess["room"], []).append(sess["id"])
    return grid


@tool()
def list_rooms(state: State) -> list[dict[str, Any]]:
    """The rooms with their number of seats."""
    return state["rooms"]


@tool()
def list_groups(state: State) -> list[dict[str, Any]]:
    """The student groups with their sizes (a group needs a room with at least that many
    seats)."""
    return state["groups"]


@tool()
def list_teachers(state: State) -> list[dict[str, Any]]:
    """The teachers with the slots they cannot teach."""
    return state["teachers"]


@tool()
def get_teacher(state: State, teacher_id: str) -> dict[str, Any]:
    """One teacher with the slots they cannot teach.

    Args:
        teacher_id: the teacher's id, e.g. "T2".
    """
    return find_record(
        state["teachers"], teacher_id, f"no teacher {teacher_id!r}; teacher ids look like 'T2'"
    )


@tool()
def find_free_rooms(state: State, slot: str) -> list[dict[str, Any]]:
    """Rooms with no session in a slot, with their seats.

    Args:
        slot: a slot such as "Wed2".
    """
    if slot not in state["slots"]:
        raise ToolError(f"no slot {slot!r}; slots look like 'Mon1'")
    used = {s["room"] for s in state["sessions"] if s["slot"] == slot}
    return [r for r in state["rooms"] if r["id"] not in used]


@tool()
def check_timetable(state: State) -> list[str]:
    """Every hard rule the timetable breaks now (empty when it is clash-free)."""
    return [what for what, _ in _conflicts(state, _placement(state))]


@tool(writes=True)
def move_session(state: State, session_id: str, slot: str, room: str) -> str:
    """Move a session to another slot and room. The tool does not check the rules.

    Args:
        session_id: the session, e.g. "S4".
        slot: the new slot, e.g. "Wed2".
        room: the new room, e.g. "R1".
    """
    sess = _session(state, session_id)
    if slot not in state["slots"]:
        raise ToolError(f"no slot {slot!r}; slots look like 'Mon1'")
    if room not in {r["id"] for r in state["rooms"]}:
        raise ToolError(f"no room {room!r}; see list_rooms")
    sess["slot"], sess["room"] = slot, room
    return f"{session_id} is now in {slot}, {room}"


# ---- the family -------------------------------------------------------------------------------


@register_family
class CourseTimetabling(Family[TimetableConfig]):
    name = "course_timetabling"
    summary = "Repair a clashing university timetable by moving sessions, in as few moves."
    config_model = TimetableConfig
    tools = (list_sessions, get_session, view_day, list_rooms, list_groups, list_teachers,
             get_teacher, find_free_rooms, check_timetable, move_session)
    variants = (
        Variant("clashes", ("list_sessions", "list_rooms", "move_session"),
                ("room", "teacher", "group")),
        Variant("availability", ("list_sessions", "list_rooms", "list_teachers", "move_session"),
                ("room", "teacher", "group", "unavailable"), {"availability": True}),
        Variant("capacity", ("list_sessions", "get_session", "list_groups", "find_free_rooms",
                             "move_session"),
                ("room", "teacher", "group", "seats"), {"capacity": True, "rooms": 4}),
        Variant("audit", ("view_day", "get_session", "list_rooms", "check_timetable",
                          "move_session"),
                ("room", "teacher", "group", "unavailable", "seats"),
                {"availability": True, "capacity": True}),
        Variant("daily-limit", ("list_sessions", "list_groups", "list_rooms", "get_teacher",
                                "move_session"),
                ("room", "teacher", "group", "unavailable", "seats", "per_day"),
                {"availability": True, "capacity": True, "max_per_day": 2, "days": 4}),
        Variant("big-week", ("list_sessions", "list_rooms", "list_teachers", "list_groups",
                             "check_timetable", "move_session"),
                ("room", "teacher", "group", "unavailable", "seats"),
                {"availability": True, "capacity": True, "days": 5, "sessions": 18,
                 "teachers": 6, "edits": 4}),
    )

    def generate_state(self, rng: random.Random, config: TimetableConfig) -> State:
        slots = [f"{d}{p}" for d in DAYS[:config.days] for p in range(1, config.periods + 1)]
        rooms = [{"id": f"R{i + 1}", "name": f"Room {100 + 10 * i}",
                  "seats": rng.choice([25, 40, 60, 90]) if config.capacity else 120}
                 for i in range(config.rooms)]
        if config.capacity:
            rooms[0]["seats"] = 90  # every group fits somewhere
        teachers = [{"id": f"T{i + 1}", "name": name,
                     "unavailable": sorted(rng.sample(slots, 2), key=slots.index)
                     if config.availability else []}
                    for i, name in enumerate(rng.sample(_TEACHERS, config.teachers))]
        groups = [{"id": f"G{i + 1}", "name": f"Cohort {chr(65 + i)}",
                   "size": rng.randint(20, 85) if config.capacity else 30}
                  for i in range(config.groups)]
        state: State = {"slots": slots, "rooms": rooms, "teachers": teachers, "groups": groups,
                        "sessions": [], "baseline": {},
                        "rules": {"max_per_day": config.max_per_day}}
        for n, course in enumerate(rng.sample(_COURSES, config.sessions)):
            state["sessions"].append({
                "id": f"S{n + 1}", "course": course, "teacher": rng.choice(teachers)["id"],
                "group": rng.choice(groups)["id"], "slot": "", "room": ""})
        _place(rng, state)
        _edit(rng, state, config.edits)
        return state

    def generate_task(self, rng: random.Random, state: State, config: TimetableConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        clashes = _conflicts(state, _placement(state))
        if not clashes:
            return None
        edited = set(state["baseline"])
        pinned: list[str] = []
        if level == 1:
            # Pin the other side of each clash, so the edited session is the one to move,
            # and one session far from any clash, which a reshuffle might otherwise use.
            involved = {s for _, ss in clashes for s in ss}
            calm = [s["id"] for s in state["sessions"] if s["id"] not in involved]
            pinned = sorted(involved - edited | set(rng.sample(calm, min(1, len(calm)))),
                            key=lambda i: int(i[1:]))
        max_moves = len(edited) if level == 2 else None
        text = ["The timetable has clashes. Move sessions until no room holds two sessions at "
                "once, no teacher and no group is in two sessions at once"]
        if any(t["unavailable"] for t in state["teachers"]):
            text.append(", no teacher teaches in a slot they cannot teach")
        if len({r["seats"] for r in state["rooms"]}) > 1:
            text.append(", and every group fits its room")
        if state["rules"]["max_per_day"]:
            text.append(f"; a group may have at most {state['rules']['max_per_day']} sessions a "
                        "day")
        text.append(".")
        if pinned:
            text.append(f" Session{'s' * (len(pinned) > 1)} {', '.join(pinned)} "
                        f"{'are' if len(pinned) > 1 else 'is'} fixed and must not move.")
        if max_moves:
            text.append(" Move as few sessions as possible.")
        text.append(" Submit when the timetable is clash-free.")
        return TaskDraft(
            instruction="".join(text),
            goal={"initial": {s: list(p) for s, p in _placement(state).items()},
                  "pinned": pinned, "max_moves": max_moves},
            knobs={"clashes": len(clashes), "sessions": len(state["sessions"]),
                   "pinned": len(pinned), "optimize": int(max_moves is not None),
                   "steps": 2 + len(edited)},
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        moves = {s: tuple(p) for s, p in state["baseline"].items()}
        return self._calls(state, moves, variant)

    @staticmethod
    def _calls(state: State, moves: Mapping[str, Sequence[str]], variant: Variant) -> list[Call]:
        tools = variant.tools
        if "list_sessions" in tools:
            calls = [Call("list_sessions")]
        else:
            days = sorted({s[:3] for s in state["slots"]}, key=DAYS.index)
            calls = [Call("view_day", {"day": d}) for d in days]
        for name in ("list_rooms", "list_teachers", "list_groups", "check_timetable"):
            if name in tools:
                calls.append(Call(name))
        if "get_teacher" in tools:
            calls += [Call("get_teacher", {"teacher_id": t["id"]}) for t in state["teachers"]]
        for sid, (slot, room) in moves.items():
            if "get_session" in tools:
                calls.append(Call("get_session", {"session_id": sid}))
            if "find_free_rooms" in tools:
                calls.append(Call("find_free_rooms", {"slot": slot}))
            calls.append(Call("move_session", {"session_id": sid, "slot": slot, "room": room}))
        if "check_timetable" in tools:
            calls.append(Call("check_timetable"))
        return [*calls, Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        where = _placement(final_state)
        if sorted(where) != sorted(goal["initial"]):
            return Verdict(reward=0.0, reason="sessions were added or removed")
        moved = sorted(s for s, p in where.items() if list(p) != goal["initial"][s])
        shifted_pins = [s for s in goal["pinned"] if s in moved]
        if shifted_pins:
            return Verdict(reward=0.0, components={"valid": 0.0},
                           reason=f"fixed sessions were moved: {shifted_pins}")
        broken = _conflicts(final_state, where)
        if broken:
            return Verdict(reward=0.0, components={"valid": 0.0},
                           reason="; ".join(what for what, _ in broken[:3]))
        if goal["max_moves"] is not None and len(moved) > goal["max_moves"]:
            return Verdict(reward=0.0, components={"valid": 1.0, "fewest": 0.0},
                           reason=f"clash-free, but {len(moved)} sessions moved; "
                                  f"{goal['max_moves']} suffice")
        return Verdict(reward=1.0, components={"valid": 1.0},
                       reason=f"clash-free with {len(moved)} moves")

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft, reference: list[Call],
                variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        fixed = {s: tuple(p) for s, p in state["baseline"].items()}
        repaired: Placement = {**_placement(state), **fixed}  # type: ignore[dict-item]
        edited = list(fixed)
        first = edited[0]
        broken = None
        partner = next((s for _, ss in _conflicts(state, _placement(state)) if first in ss
                        for s in ss if s != first), None)
        if g["pinned"] and partner is not None and partner in g["pinned"]:
            # Move the pinned partner out of the way instead of the edited session.
            spot = next(_free_spots(state, {**repaired, first: _placement(state)[first]},
                                    partner), None)
            if spot:
                broken = {**fixed, first: _placement(state)[first], partner: spot}
                broken.pop(first)
        if broken is None:
            # Undo the other edits, but put the first one somewhere that still clashes.
            rules = _Rules(state)
            bad = next((sp for sp in rules.spots if sp != tuple(state["baseline"][first])
                        and rules.involving(first, {**repaired, first: sp})), None)
            broken = {**fixed, first: bad} if bad else dict(list(fixed.items())[1:])
        # A session in no clash: moving it is either one move too many or the wrong record.
        involved = {s for _, ss in _conflicts(state, _placement(state)) for s in ss}
        others = [s for s in repaired if s not in involved and s not in g["pinned"]]
        extra = next(((s, spot) for s in others for spot in _free_spots(state, repaired, s)),
                     None)
        if g["max_moves"] is not None and extra:
            wrong = {**fixed, extra[0]: extra[1]}  # valid, but one move too many
        elif extra:
            wrong = {**dict(list(fixed.items())[1:]), extra[0]: extra[1]}  # the wrong session
        else:
            wrong = dict(list(fixed.items())[1:])
        return {"constraint_broken": self._calls(state, broken, variant),
                "wrong_value": self._calls(state, wrong, variant)}


def _place(rng: random.Random, state: State) -> None:
    """A clash-free first timetable; a session that finds no free spot is dropped."""
    rules = _Rules(state)
    where: Placement = {}
    for sess in list(state["sessions"]):
        spot = next((sp for sp in rng.sample(rules.spots, len(rules.spots))
                     if not rules.involving(sess["id"], {**where, sess["id"]: sp})), None)
        if spot is None:
            state["sessions"].remove(sess)
            continue
        where[sess["id"]] = spot
        sess["slot"], sess["room"] = spot


def _edit(rng: random.Random, state: State, edits: int) -> None:
    """Move `edits` sessions so that each leaves exactly one clash, all clashes disjoint.

    The original places go to `baseline` (never shown by a tool): they are the reference
    repair, and the disjoint clashes prove that no repair needs fewer moves.
    """
    rules = _Rules(state)
    involved: set[str] = set()
    ids = [s["id"] for s in state["sessions"]]
    for _ in range(edits):
        where = _placement(state)
        options = []
        for sid in rng.sample(ids, len(ids)):
            if sid in involved:
                continue
            for spot in rules.spots:
                if spot == where[sid]:
                    continue
                clash = rules.involving(sid, {**where, sid: spot})
                touched = {s for _, ss in clash for s in ss}
                # One clash (possibly broken several ways) with sessions not yet involved.
                if clash and len({tuple(ss) for _, ss in clash}) == 1 and len(touched) <= 2 \
                        and not touched & involved:
                    options.append((sid, spot, touched))
            if options:  # sessions come in random order: the first that can clash will do
                break
        if not options:
            return
        sid, spot, touched = rng.choice(options)
        sess = _session(state, sid)
        state["baseline"][sid] = [sess["slot"], sess["room"]]
        sess["slot"], sess["room"] = spot
        involved |= touched
