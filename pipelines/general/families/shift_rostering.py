"""Shift rostering: staff a week's shifts under skill, availability, rest and hours rules.

The state is a small warehouse's employees (skills, hourly wage, weekly hour limit, days
off) and a week of shifts (start, end, required skill, assignee). A task names the shifts
to staff and the rules in force; in the repair variant a roster already exists and has
mistakes. The agent assigns and unassigns staff with state-changing tools. The verifier
re-checks every rule on the final roster and, where the task asks for it, that the wage
cost or the number of changed shifts equals the optimum that an exhaustive branch-and-bound
search found when the task was generated.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import Field

from envsynth.errors import ToolError
from envsynth.schema import Verdict
from pipelines.general.family import Call, Family, FamilyConfig, TaskDraft, Variant, register_family
from pipelines.general.tools import State, find_record, tool

DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]
SKILLS = ["forklift", "picking", "first_aid", "supervisor"]
_TEMPLATES = [("early", 6, 8), ("day", 9, 8), ("short", 10, 4), ("late", 14, 8), ("night", 22, 8)]
_NAMES = ["Aino", "Bram", "Chen", "Dana", "Emre", "Fola", "Gita", "Hugo", "Ines", "Jory", "Kemal"]

Roster = dict[str, str | None]
"""Shift id -> employee id (None when unstaffed)."""


class RosterConfig(FamilyConfig):
    employees: int = Field(7, ge=4, le=10)
    days: int = Field(4, ge=3, le=5)
    shifts_per_day: int = Field(3, ge=2, le=4)
    min_rest_hours: int = Field(0, ge=0, le=12)
    """Rest needed between two shifts of one employee (0: they only may not overlap)."""
    max_hours_rule: bool = False
    """Whether an employee's weekly hours may not exceed their `max_hours`."""
    prefilled: bool = False
    """The week starts with a (flawed) roster instead of an empty one."""


# ---- the rules: one checker shared by tools, solver and verifier ------------------------------


def _clock(hour: int) -> str:
    return f"{DAYS[hour // 24 % len(DAYS)]} {hour % 24:02d}:00"


def _gap(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """Hours between two shifts (negative when they overlap)."""
    return max(a["start"], b["start"]) - min(a["end"], b["end"])


def _violations(state: State, roster: Mapping[str, str | None], shift_ids: Sequence[str]
                ) -> list[str]:
    """Every rule that the roster breaks on the given shifts."""
    rules, shifts = state["rules"], {s["id"]: s for s in state["shifts"]}
    staff = {e["id"]: e for e in state["employees"]}
    out = []
    for sid in shift_ids:
        shift, emp_id = shifts[sid], roster.get(sid)
        emp = staff.get(emp_id) if emp_id else None
        if emp is None:
            out.append(f"{sid} is not staffed")
            continue
        if shift["skill"] not in emp["skills"]:
            out.append(f"{emp_id} lacks {shift['skill']} for {sid}")
        if shift["day"] in emp["unavailable"]:
            out.append(f"{emp_id} is off on {shift['day']} ({sid})")
        for other, holder in roster.items():
            # min_rest_hours >= 0, so overlapping shifts (negative gap) always fail.
            if other != sid and holder == emp_id and (
                    _gap(shift, shifts[other]) < rules["min_rest_hours"]):
                out.append(f"{emp_id} works {sid} and {other} without enough rest")
        if rules["max_hours_rule"]:
            hours = sum(shifts[o]["hours"] for o, h in roster.items() if h == emp_id)
            if hours > emp["max_hours"]:
                out.append(f"{emp_id} would work {hours} h, over their {emp['max_hours']} h")
    return out


def _roster(state: State) -> Roster:
    return {s["id"]: s["assignee"] for s in state["shifts"]}


def _wage(state: State, shift_id: str, emp_id: str) -> int:
    shift = next(s for s in state["shifts"] if s["id"] == shift_id)
    emp = next(e for e in state["employees"] if e["id"] == emp_id)
    return shift["hours"] * emp["hourly_cents"]


CostFn = Callable[[str, str], int]


def _best_roster(state: State, task: Sequence[str], fixed: Roster, cost: CostFn
                 ) -> tuple[int, dict[str, str]] | None:
    """Exact minimum-cost staffing of `task` around the `fixed` shifts (branch and bound).

    Candidates are filtered by skill and day off up front; rest and hours are checked as the
    search extends a partial roster; the bound adds each open shift's cheapest candidate.
    """
    shifts = {s["id"]: s for s in state["shifts"]}
    rules = state["rules"]
    cands = {sid: sorted((cost(sid, e["id"]), e["id"]) for e in state["employees"]
                         if shifts[sid]["skill"] in e["skills"]
                         and shifts[sid]["day"] not in e["unavailable"]) for sid in task}
    order = sorted(task, key=lambda s: len(cands[s]))
    floor = [0] * (len(order) + 1)
    for i in range(len(order) - 1, -1, -1):
        floor[i] = floor[i + 1] + (cands[order[i]][0][0] if cands[order[i]] else 10**9)
    held: dict[str, list[str]] = {}
    for sid, emp in fixed.items():
        if emp is not None and sid not in task:
            held.setdefault(emp, []).append(sid)
    max_hours = {e["id"]: e["max_hours"] for e in state["employees"]}
    best: list[Any] = [None, None]
    pick: dict[str, str] = {}

    def fits(sid: str, emp: str) -> bool:
        mine = held.get(emp, [])
        if any(_gap(shifts[sid], shifts[o]) < rules["min_rest_hours"] for o in mine):
            return False
        hours = shifts[sid]["hours"] + sum(shifts[o]["hours"] for o in mine)
        return not rules["max_hours_rule"] or hours <= max_hours[emp]

    def search(i: int, spent: int) -> None:
        if best[0] is not None and spent + floor[i] >= best[0]:
            return
        if i == len(order):
            best[0], best[1] = spent, dict(pick)
            return
        sid = order[i]
        for c, emp in cands[sid]:
            if fits(sid, emp):
                held.setdefault(emp, []).append(sid)
                pick[sid] = emp
                search(i + 1, spent + c)
                held[emp].pop()
                del pick[sid]

    search(0, 0)
    return None if best[0] is None else (best[0], best[1])


def _draft_roster(rng: random.Random, state: State, flaws: int) -> None:
    """A first roster built greedily by the rules (a few restarts), then `flaws` careless
    edits on top, so that the flaws are what a repair has to undo."""
    staff = [e["id"] for e in state["employees"]]
    for _ in range(8):
        for shift in state["shifts"]:
            shift["assignee"] = None
        stuck = False
        for shift in state["shifts"]:
            roster = _roster(state)
            fitting = [e for e in staff
                       if not _violations(state, {**roster, shift["id"]: e}, [shift["id"]])]
            stuck = stuck or not fitting
            shift["assignee"] = rng.choice(fitting or staff)
        if not stuck:
            break
    for shift in rng.sample(state["shifts"], flaws):
        roster = _roster(state)
        wrong = [e for e in staff if e != shift["assignee"]
                 and _violations(state, {**roster, shift["id"]: e}, [shift["id"]])]
        shift["assignee"] = rng.choice(wrong or staff)


# ---- tools ------------------------------------------------------------------------------------


def _shift(state: State, shift_id: str) -> dict[str, Any]:
    return find_record(
        state["shifts"], shift_id, f"no shift {shift_id!r}; shift ids look like 'SH4'"
    )


def _employee(state: State, employee_id: str) -> dict[str, Any]:
    return find_record(
        state["employees"], employee_id, f"no employee {employee_id!r}; employee ids look like 'E2'"
    )


def _public_shift(s: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": s["id"], "day": s["day"], "kind": s["kind"], "starts": _clock(s["start"]),
            "ends": _clock(s["end"]), "hours": s["hours"], "skill": s["skill"],
            "assignee": s["assignee"]}


@tool()
def list_employees(state: State) -> list[dict[str, Any]]:
    """All employees: id, name, skills, hourly_cents, max_hours (per week) and the days they
    are unavailable."""
    return state["employees"]


@tool()
def get_employee(state: State, employee_id: str) -> dict[str, Any]:
    """One employee's record and the shifts currently assigned to them.

    Args:
        employee_id: the employee's id, e.g. "E3".
    """
    emp = _employee(state, employee_id)
    return {**emp, "shifts": [s["id"] for s in state["shifts"] if s["assignee"] == employee_id]}


@tool()
def find_staff(state: State, skill: str, day: str) -> list[dict[str, Any]]:
    """Employees who have a skill and are not off on a day (rest and hours are not checked).

    Args:
        skill: one of forklift, picking, first_aid, supervisor.
        day: Mon, Tue, Wed, Thu or Fri.
    """
    if skill not in SKILLS or day not in DAYS:
        raise ToolError(f"skill must be one of {SKILLS} and day one of {DAYS}")
    return [{"id": e["id"], "name": e["name"], "hourly_cents": e["hourly_cents"]}
            for e in state["employees"] if skill in e["skills"] and day not in e["unavailable"]]


@tool()
def list_shifts(state: State, day: str | None = None) -> list[dict[str, Any]]:
    """The week's shifts: id, day, kind, start and end ("Tue 06:00"; a night shift ends the next
    day), hours, required skill and current assignee (null when unstaffed).

    Args:
        day: only shifts starting on this day (Mon..Fri); all shifts when omitted.
    """
    return [_public_shift(s) for s in state["shifts"] if day is None or s["day"] == day]


@tool(writes=True)
def assign_shift(state: State, shift_id: str, employee_id: str) -> str:
    """Put an employee on an unstaffed shift. The tool does not check the staffing rules.

    Args:
        shift_id: the shift, e.g. "SH4".
        employee_id: the employee, e.g. "E2".
    """
    shift = _shift(state, shift_id)
    _employee(state, employee_id)
    if shift["assignee"] is not None:
        raise ToolError(f"{shift_id} is already staffed by {shift['assignee']}; unassign it first")
    shift["assignee"] = employee_id
    return f"{employee_id} now works {shift_id}"


@tool(writes=True)
def unassign_shift(state: State, shift_id: str) -> str:
    """Take the current employee off a shift.

    Args:
        shift_id: the shift, e.g. "SH4".
    """
    shift = _shift(state, shift_id)
    if shift["assignee"] is None:
        raise ToolError(f"{shift_id} is not staffed")
    emp, shift["assignee"] = shift["assignee"], None
    return f"{emp} no longer works {shift_id}"


@tool()
def roster_cost(state: State) -> int:
    """Wage cost in cents of every staffed shift (hours x the employee's hourly_cents)."""
    return sum(_wage(state, s["id"], s["assignee"]) for s in state["shifts"] if s["assignee"])


@tool()
def check_roster(state: State) -> list[str]:
    """Every staffing rule the current roster breaks on its staffed shifts (empty if none)."""
    staffed = [s["id"] for s in state["shifts"] if s["assignee"]]
    return _violations(state, _roster(state), staffed)


# ---- the family -------------------------------------------------------------------------------


@register_family
class ShiftRostering(Family[RosterConfig]):
    name = "shift_rostering"
    summary = "Staff warehouse shifts under skill, day-off, rest and hour rules, at least cost."
    config_model = RosterConfig
    tools = (list_employees, get_employee, find_staff, list_shifts, assign_shift, unassign_shift,
             roster_cost, check_roster)
    variants = (
        Variant("cover", ("list_employees", "list_shifts", "assign_shift"),
                ("skill", "day_off", "no_overlap")),
        Variant("rest", ("list_employees", "get_employee", "list_shifts", "assign_shift",
                         "unassign_shift"), ("skill", "day_off", "rest", "max_hours"),
                {"min_rest_hours": 11, "max_hours_rule": True}),
        Variant("cheapest", ("list_employees", "list_shifts", "assign_shift", "unassign_shift",
                             "roster_cost"), ("skill", "day_off", "rest", "min_cost"),
                {"min_rest_hours": 11}),
        Variant("repair", ("list_employees", "list_shifts", "assign_shift", "unassign_shift",
                           "check_roster"), ("skill", "day_off", "rest", "max_hours",
                                             "min_changes"),
                {"min_rest_hours": 10, "max_hours_rule": True, "prefilled": True,
                 "employees": 10, "days": 5, "shifts_per_day": 2}),
        Variant("lookup", ("find_staff", "get_employee", "list_shifts", "assign_shift"),
                ("skill", "day_off", "rest", "max_hours", "min_cost"),
                {"min_rest_hours": 12, "max_hours_rule": True, "employees": 9, "days": 5}),
    )

    def generate_state(self, rng: random.Random, config: RosterConfig) -> State:
        employees: list[dict[str, Any]] = []
        for i, name in enumerate(rng.sample(_NAMES, config.employees)):
            employees.append({
                "id": f"E{i + 1}", "name": name,
                "skills": sorted(rng.sample(SKILLS, rng.randint(1, 3))),
                "hourly_cents": rng.randrange(1_600, 3_600, 50),
                "max_hours": rng.choice([12, 16, 20, 24]),
                "unavailable": sorted(rng.sample(DAYS[:config.days], rng.randint(0, 2)),
                                      key=DAYS.index)})
        shifts: list[dict[str, Any]] = []
        for d, day in enumerate(DAYS[:config.days]):
            # Only skills that two people on duty that day have, so no shift is hopeless.
            staffed = [k for k in SKILLS if sum(k in e["skills"] and day not in e["unavailable"]
                                                for e in employees) >= 2] or SKILLS
            for kind, hour, hours in sorted(rng.sample(_TEMPLATES, config.shifts_per_day),
                                            key=lambda t: t[1]):
                shifts.append({"id": f"SH{len(shifts) + 1}", "day": day, "kind": kind,
                               "start": 24 * d + hour, "end": 24 * d + hour + hours,
                               "hours": hours, "skill": rng.choice(staffed), "assignee": None})
        rules = {"min_rest_hours": config.min_rest_hours, "max_hours_rule": config.max_hours_rule}
        state = {"employees": employees, "shifts": shifts, "rules": rules}
        if config.prefilled:
            _draft_roster(rng, state, flaws=3)
        return state

    def generate_task(self, rng: random.Random, state: State, config: RosterConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        objective = self._objective(variant, level)
        initial = _roster(state)
        ids = [s["id"] for s in state["shifts"]]
        size = min((4, 6, 8)[level], len(ids) - 1)  # keep a shift outside the task
        # A repair task holds level + 1 flawed shifts; the rest of it are sound distractors.
        flawed = [s for s in ids if _violations(state, initial, [s])]
        for _ in range(6):
            if objective == "min_changes":
                must = rng.sample(flawed, min(len(flawed), level + 1))
                if not must:
                    return None
                pool = [s for s in ids if s not in must]
                task = sorted(must + rng.sample(pool, size - len(must)), key=ids.index)
            else:
                task = sorted(rng.sample(ids, size), key=ids.index)
            found = _best_roster(state, task, initial, self._cost_fn(state, objective, initial))
            if found is not None:
                break
        else:
            return None
        return TaskDraft(
            instruction=self._instruction(state, task, objective),
            goal={"shifts": task, "objective": objective, "optimum": found[0],
                  "initial": {s: initial[s] for s in ids}},
            knobs={"shifts": len(task), "steps": len(task) + 2,
                   "rules": 2 + int(config.min_rest_hours > 0) + int(config.max_hours_rule),
                   "optimize": int(objective != "feasible"),
                   "distractors": len(ids) - len(task)},
        )

    @staticmethod
    def _objective(variant: Variant, level: int) -> str:
        if "min_changes" in variant.constraints:
            return "min_changes"
        if "min_cost" in variant.constraints and level >= (1 if variant.name == "cheapest" else 2):
            return "min_cost"
        return "feasible"

    @staticmethod
    def _cost_fn(state: State, objective: str, initial: Roster) -> CostFn:
        if objective == "min_changes":
            return lambda sid, emp: int(initial[sid] != emp)
        return lambda sid, emp: _wage(state, sid, emp)

    @staticmethod
    def _instruction(state: State, task: Sequence[str], objective: str) -> str:
        rules = state["rules"]
        text = [
            ("Fix the current roster for" if objective == "min_changes" else "Staff")
            + f" shifts {', '.join(task)}: one employee each, who has the shift's skill and is "
            "not off that day. Nobody may work two overlapping shifts"
            + (f", and an employee needs at least {rules['min_rest_hours']} hours of rest between "
               "two shifts" if rules["min_rest_hours"] else "") + "."]
        if rules["max_hours_rule"]:
            text.append("An employee's assigned hours over the week may not exceed their "
                        "max_hours (count every shift they hold).")
        text.append("Leave all other shifts exactly as they are.")
        if objective == "min_cost":
            text.append("Among valid rosters, choose one with the lowest total wage cost "
                        "(shift hours x hourly_cents).")
        if objective == "min_changes":
            text.append("Change the assignee of as few of these shifts as possible.")
        return " ".join([*text, "Submit when the roster is done."])

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        found = _best_roster(state, g["shifts"], g["initial"],
                             self._cost_fn(state, g["objective"], g["initial"]))
        if found is None:
            raise ValueError("generate_task only emits tasks with a valid roster")
        return self._calls(state, g, found[1], variant)

    @staticmethod
    def _calls(state: State, goal: Mapping[str, Any], roster: Mapping[str, str | None],
               variant: Variant) -> list[Call]:
        tools = variant.tools
        if "list_employees" in tools:
            calls = [Call("list_employees"), Call("list_shifts")]
        else:
            shifts = {s["id"]: s for s in state["shifts"]}
            calls = [Call("list_shifts")] + [
                Call("find_staff", {"skill": shifts[s]["skill"], "day": shifts[s]["day"]})
                for s in goal["shifts"]]
        if "list_employees" not in tools and "get_employee" in tools:
            picked = sorted({e for s, e in roster.items() if e and s in goal["shifts"]})
            calls += [Call("get_employee", {"employee_id": e}) for e in picked]
        for sid, emp in roster.items():
            before = goal["initial"].get(sid)
            if emp == before:
                continue
            if before is not None:
                calls.append(Call("unassign_shift", {"shift_id": sid}))
            if emp is not None:
                calls.append(Call("assign_shift", {"shift_id": sid, "employee_id": emp}))
        if "check_roster" in tools:
            calls.append(Call("check_roster"))
        if "roster_cost" in tools:
            calls.append(Call("roster_cost"))
        return [*calls, Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        roster = _roster(final_state)
        touched = sorted(s for s, e in goal["initial"].items()
                         if s not in goal["shifts"] and roster.get(s) != e)
        if touched:
            return Verdict(reward=0.0, components={"valid": 0.0},
                           reason=f"shifts outside the task were changed: {touched}")
        broken = _violations(final_state, roster, goal["shifts"])
        if broken:
            return Verdict(reward=0.0, components={"valid": 0.0}, reason="; ".join(broken[:3]))
        if goal["objective"] == "feasible":
            return Verdict(reward=1.0, components={"valid": 1.0}, reason="every rule holds")
        if goal["objective"] == "min_cost":
            value = sum(_wage(final_state, s, roster[s] or "") for s in goal["shifts"])
            what = "wage cost"
        else:
            value = sum(roster[s] != goal["initial"][s] for s in goal["shifts"])
            what = "changed shifts"
        ok = value == goal["optimum"]
        return Verdict(reward=float(ok), components={"valid": 1.0, "optimal": float(ok)},
                       reason=f"valid; {what} {value}, optimum {goal['optimum']}")

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft, reference: list[Call],
                variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        cost = self._cost_fn(state, g["objective"], g["initial"])
        found = _best_roster(state, g["shifts"], g["initial"], cost)
        if found is None:
            raise ValueError("generate_task only emits tasks with a valid roster")
        pick = found[1]
        best: Roster = {**g["initial"], **pick}
        staff = [e["id"] for e in state["employees"]]
        shifts = {s["id"]: s for s in state["shifts"]}
        broken = worse = None
        wanted = 1 if g["objective"] == "feasible" else 2
        for sid, emp in ((s, e) for s in g["shifts"] for e in staff):
            if emp == best[sid]:
                continue
            if (broken is not None) + (worse is not None) == wanted:
                break
            trial = {**best, sid: emp}
            bad = _violations(state, trial, g["shifts"])
            # A rule break that still has the right skill is the tempting kind.
            skilled = shifts[sid]["skill"] in _employee(state, emp)["skills"]
            if bad and broken is None and skilled:
                broken = trial
            if not bad and worse is None and wanted == 2 and (
                    cost(sid, emp) > cost(sid, pick[sid])):
                worse = trial
        if broken is None:
            broken = {**best, g["shifts"][0]: None}
        if worse is None:
            # Staff a shift outside the task instead of the last task shift: a wrong record.
            other = next(s for s in g["initial"] if s not in g["shifts"])
            last = g["shifts"][-1]
            moved = best[last] if g["initial"][other] is None else None
            worse = {**best, last: g["initial"][last], other: moved}
        return {"constraint_broken": self._calls(state, g, broken, variant),
                "wrong_value": self._calls(state, g, worse, variant)}
