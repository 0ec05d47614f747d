"""Multi-day sightseeing itinerary: places with opening hours, visit lengths, travel times, tickets.

The agent reads the city's places through tools and submits one ordered list of place ids
per day. The verifier replays the plan on the clock (leave the hotel at the day's start,
travel, wait for opening, visit, finish before closing, be back by the day's end) and checks
the task's constraints: must-visit and must-not-visit places, a ticket budget, a cap on
places per day and weekly closures. At higher levels the plan must also be optimal (most
places, or highest total rating); the optimum is found at generation time by an exhaustive
search over every feasible day sequence and stored in the goal.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from envsynth.errors import ToolError
from envsynth.schema import Verdict
from pipelines.general.family import (
    Answer,
    Call,
    Family,
    FamilyConfig,
    TaskDraft,
    Variant,
    register_family,
)
from pipelines.general.tools import State, find_record, tool

_CITIES = ["Lyon", "Porto", "Graz", "Turku", "Ghent", "Split", "Brno", "Cork", "Bergen", "Pecs"]
_KINDS = {
    "museum": ["Art Museum", "History Museum", "Science Hall", "Design Museum"],
    "landmark": ["Old Tower", "Cathedral", "Castle Hill", "City Gate"],
    "park": ["Botanical Garden", "River Park", "Rose Garden", "Zoo"],
    "market": ["Food Market", "Flea Market", "Covered Market", "Book Market"],
}
_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
HOTEL = "H"


class ItineraryConfig(FamilyConfig):
    pois: int = Field(7, ge=4, le=8)
    """Number of places; the exact optimum enumerates every day sequence, so keep it ≤ 8."""
    days: int = Field(2, ge=1, le=2)
    max_per_day: int = Field(3, ge=1, le=4)
    closures: bool = False
    """Whether places are closed on some weekdays (a schema option: `closed_on`)."""


class ItineraryAnswer(Answer):
    days: list[list[str]] = Field(
        description="One list per trip day, in day order; each lists place ids in visiting order."
    )


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _day_problem(state: State, day: int, stops: list[str]) -> str | None:
    """Why one day's plan is infeasible on the clock, or None if it works."""
    pois = {p["id"]: p for p in state["pois"]}
    weekday = state["days"][day]
    t, here = _minutes(state["day_start"]), HOTEL
    for pid in stops:
        p = pois[pid]
        if weekday in p.get("closed_on", []):
            return f"{pid} is closed on {weekday}"
        t = max(t + state["travel"][here][pid], _minutes(p["opens"]))
        t += p["visit_min"]
        if t > _minutes(p["closes"]):
            return f"day {day + 1}: visit of {pid} would end at {_hhmm(t)}, after closing"
        here = pid
    t += state["travel"][here][HOTEL]
    if t > _minutes(state["day_end"]):
        return f"day {day + 1}: back at the hotel at {_hhmm(t)}, after {state['day_end']}"
    return None


# ---- tools ------------------------------------------------------------------------------


def _poi(state: State, poi_id: str) -> dict[str, Any]:
    return find_record(state["pois"], poi_id, f"no place {poi_id!r}; list_pois gives the ids")


@tool()
def list_pois(state: State, category: str | None = None) -> list[dict[str, Any]]:
    """List the city's places of interest (id, name, category, rating).

    Args:
        category: only places of this category (museum, landmark, park, market); all if omitted.
    """
    return [{k: p[k] for k in ("id", "name", "category", "rating")}
            for p in state["pois"] if category is None or p["category"] == category]


@tool()
def get_poi(state: State, poi_id: str) -> dict[str, Any]:
    """Full details of one place: opening hours, visit length (minutes), ticket price, closures.

    Args:
        poi_id: the place's id, e.g. "P3".
    """
    return _poi(state, poi_id)


@tool()
def travel_time(state: State, from_id: str, to_id: str) -> int:
    """Travel time in minutes between two places; the hotel's id is "H".

    Args:
        from_id: where you leave from (a place id or "H").
        to_id: where you go (a place id or "H").
    """
    for x in (from_id, to_id):
        if x not in state["travel"]:
            raise ToolError(f"unknown place {x!r}; use a place id or 'H' for the hotel")
    return state["travel"][from_id][to_id]


@tool()
def travel_matrix(state: State) -> dict[str, dict[str, int]]:
    """All travel times in minutes, as {from: {to: minutes}}; the hotel's id is "H"."""
    return state["travel"]


@tool()
def ticket_prices(state: State) -> dict[str, int]:
    """The ticket price (whole euros) of every place, by place id."""
    return {p["id"]: p["price"] for p in state["pois"]}


@tool()
def check_day(state: State, day: int, stops: list[str]) -> dict[str, Any]:
    """Simulate one trip day: arrival and departure times at each stop, and any problem found.

    Args:
        day: the trip day, 1 for the first day.
        stops: place ids in visiting order (the hotel is implied at both ends).
    """
    if not 1 <= day <= len(state["days"]):
        raise ToolError(f"day must be 1..{len(state['days'])}")
    for pid in stops:
        _poi(state, pid)
    pois = {p["id"]: p for p in state["pois"]}
    t, here, timeline = _minutes(state["day_start"]), HOTEL, []
    for pid in stops:
        arrive = t + state["travel"][here][pid]
        t = max(arrive, _minutes(pois[pid]["opens"])) + pois[pid]["visit_min"]
        timeline.append({"place": pid, "arrive": _hhmm(arrive), "leave": _hhmm(t)})
        here = pid
    back = t + state["travel"][here][HOTEL]
    return {"weekday": state["days"][day - 1], "timeline": timeline, "back_at_hotel": _hhmm(back),
            "problem": _day_problem(state, day - 1, stops) or "none"}


# ---- exact optimum ----------------------------------------------------------------------


def _feasible_days(state: State, day: int, allowed: list[str], cap: int) -> dict[int, list[str]]:
    """Every set of places (bitmask over `allowed`) one day can hold, with one working order.

    Depth-first over orders; a prefix that is late stays late (waiting only delays), so an
    infeasible prefix prunes its whole subtree.
    """
    pois = {p["id"]: p for p in state["pois"]}
    weekday, travel = state["days"][day], state["travel"]
    end = _minutes(state["day_end"])
    # (bit, id, opens, closes, visit) of the places open that weekday, parsed once.
    places = [(1 << i, pid, _minutes(pois[pid]["opens"]), _minutes(pois[pid]["closes"]),
               pois[pid]["visit_min"]) for i, pid in enumerate(allowed)
              if weekday not in pois[pid].get("closed_on", [])]
    found: dict[int, list[str]] = {}

    def dfs(mask: int, t: int, here: str, seq: list[str]) -> None:
        if mask not in found and t + travel[here][HOTEL] <= end:
            found[mask] = list(seq)
        if len(seq) == cap:
            return
        leg = travel[here]
        for bit, pid, opens, closes, visit in places:
            if mask & bit:
                continue
            done = max(t + leg[pid], opens) + visit
            if done <= closes:
                seq.append(pid)
                dfs(mask | bit, done, pid, seq)
                seq.pop()

    dfs(0, _minutes(state["day_start"]), HOTEL, [])
    return found


def _best_plan(state: State, goal: Mapping[str, Any]) -> tuple[int, list[list[str]]] | None:
    """The best value of the goal's objective and a plan reaching it; None if infeasible."""
    allowed = [p["id"] for p in state["pois"] if p["id"] not in goal["must_not"]]
    pois = {p["id"]: p for p in state["pois"]}
    must = sum(1 << allowed.index(m) for m in goal["must_visit"])
    per_day = [_feasible_days(state, d, allowed, goal["max_per_day"])
               for d in range(len(state["days"]))]
    plans: dict[int, list[list[str]]] = {0: []}
    for options in per_day:
        plans = {m | o: [*plan, seq] for m, plan in plans.items()
                 for o, seq in options.items() if not m & o}
    best: tuple[int, list[list[str]]] | None = None
    for mask, plan in plans.items():
        stops = [pid for day in plan for pid in day]
        if mask & must != must or (goal["budget"] is not None
                                   and sum(pois[s]["price"] for s in stops) > goal["budget"]):
            continue
        value = _value(pois, stops, goal["objective"])
        if best is None or value > best[0]:
            best = (value, plan)
    return best


def _value(pois: Mapping[str, Mapping[str, Any]], stops: list[str], objective: str) -> int:
    if objective == "rating":
        return sum(round(pois[s]["rating"] * 10) for s in stops)
    # "none" keeps the reference minimal: the must-visit places and nothing more if possible.
    return len(stops) if objective == "count" else -len(stops)


# ---- the family -------------------------------------------------------------------------

_READ = ("list_pois", "get_poi")
_OBJECTIVE_TEXT = {
    "none": "Any plan meeting these rules is fine.",
    "count": "Visit as many places as possible in total.",
    "rating": "Maximise the total rating of the places visited.",
}


@register_family
class Itinerary(Family[ItineraryConfig]):
    name = "itinerary"
    summary = "Plan a multi-day sightseeing itinerary under opening hours, travel times and budget."
    config_model = ItineraryConfig
    answer_model = ItineraryAnswer
    tools = (list_pois, get_poi, travel_time, travel_matrix, ticket_prices, check_day)
    submit_description = "Submit the itinerary: one ordered list of place ids per trip day."
    variants = (
        Variant("day-trip", (*_READ, "travel_time"), ("must_visit", "hours"), {"days": 1}),
        Variant("weekend", (*_READ, "travel_matrix"), ("must_visit", "hours", "max_per_day")),
        Variant("budget", (*_READ, "travel_matrix", "ticket_prices"),
                ("must_visit", "hours", "budget", "must_not")),
        Variant("closures", (*_READ, "travel_time", "travel_matrix"),
                ("must_visit", "hours", "closures", "must_not"), {"closures": True}),
        Variant("planner", (*_READ, "travel_matrix", "check_day"),
                ("must_visit", "hours", "budget", "max_per_day"), {"max_per_day": 4}),
        Variant("big-city", (*_READ, "travel_time", "ticket_prices", "check_day"),
                ("must_visit", "hours", "budget", "must_not", "closures"),
                {"pois": 8, "closures": True}),
    )

    def generate_state(self, rng: random.Random, config: ItineraryConfig) -> State:
        spots = rng.sample([(x, y) for x in range(6) for y in range(6) if (x, y) != (3, 3)],
                           config.pois)
        names = rng.sample([(k, n) for k, ns in _KINDS.items() for n in ns], config.pois)
        pois = []
        for i, (kind, name) in enumerate(names):
            opens = rng.choice([480, 540, 600, 660])
            pois.append({
                "id": f"P{i + 1}", "name": name, "category": kind,
                "rating": rng.randint(30, 50) / 10,
                "price": rng.choice([0, 5, 8, 10, 12, 15, 20]),
                "opens": _hhmm(opens),
                "closes": _hhmm(min(opens + rng.choice([240, 360, 480]), 1200)),
                "visit_min": rng.choice([45, 60, 75, 90, 120]),
                "closed_on": rng.sample(_WEEKDAYS, rng.randint(0, 2)) if config.closures else [],
            })
        where = {HOTEL: (3, 3), **{p["id"]: xy for p, xy in zip(pois, spots, strict=True)}}
        travel = {a: {b: 0 if a == b else 5 + 6 * (abs(xa - xb) + abs(ya - yb))
                      for b, (xb, yb) in where.items()} for a, (xa, ya) in where.items()}
        first = rng.randrange(7)
        return {
            "city": rng.choice(_CITIES),
            "days": [_WEEKDAYS[(first + d) % 7] for d in range(config.days)],
            "day_start": _hhmm(rng.choice([510, 540])), "day_end": _hhmm(rng.choice([1020, 1080])),
            "pois": pois, "travel": travel,
        }

    def generate_task(self, rng: random.Random, state: State, config: ItineraryConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        kinds = set(variant.constraints)
        ids = [p["id"] for p in state["pois"]]
        objective = ["none", "count", "rating"][level]
        for _ in range(4):
            goal: dict[str, Any] = {
                "objective": objective, "budget": None,
                "max_per_day": config.max_per_day if "max_per_day" in kinds or level else 4,
                "must_not": rng.sample(ids, 1 + (level == 2))
                if "must_not" in kinds and level else [],
            }
            rest = [i for i in ids if i not in goal["must_not"]]
            goal["must_visit"] = rng.sample(rest, 2 if level == 0 else 1)
            if "budget" in kinds and level:
                free = _best_plan(state, goal)
                if free is None:
                    continue
                # A budget just under the unconstrained best plan's cost, so that it binds.
                spent = sum(p["price"] for p in state["pois"] if any(p["id"] in d for d in free[1]))
                goal["budget"] = max(spent - rng.choice([5, 10, 15]), 5)
            best = _best_plan(state, goal)
            if best is not None:
                goal["optimum"], goal["plan"] = best
                return TaskDraft(
                    instruction=self._instruction(state, goal),
                    goal=goal,
                    knobs={"steps": 2 + len(ids), "constraints": sum(bool(goal[k]) for k in (
                        "must_visit", "must_not", "budget")) + 2, "distractors": len(ids),
                        "optimise": int(objective != "none")},
                )
        return None

    def _instruction(self, state: State, goal: Mapping[str, Any]) -> str:
        days = ", ".join(state["days"])
        rules = [
            f"Plan my {len(state['days'])}-day sightseeing trip in {state['city']} (days: {days}).",
            f"Each day I leave the hotel (id H) at {state['day_start']} at the earliest and must "
            f"be back by {state['day_end']}.",
            "A visit may start only once the place is open and must end by its closing time "
            "(waiting for opening is fine). Visit each place at most once.",
            f"At most {goal['max_per_day']} places per day.",
            f"I must visit: {', '.join(goal['must_visit'])}.",
        ]
        if goal["must_not"]:
            rules.append(f"Do not include: {', '.join(goal['must_not'])}.")
        if goal["budget"] is not None:
            rules.append(f"Total ticket cost at most {goal['budget']} EUR.")
        if any(p["closed_on"] for p in state["pois"]):
            rules.append("Some places are closed on some weekdays; check each place.")
        rules.append(_OBJECTIVE_TEXT[goal["objective"]])
        rules.append("Submit one ordered list of place ids per day.")
        return " ".join(rules)

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        calls = [Call("list_pois")] + [Call("get_poi", {"poi_id": p["id"]}) for p in state["pois"]]
        if "travel_matrix" in variant.tools:
            calls.append(Call("travel_matrix"))
        return [*calls, Call("submit", {"days": draft.goal["plan"]})]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        problem = _plan_problem(final_state, answer, goal)
        if problem:
            return Verdict(reward=0.0, components={"feasible": 0.0}, reason=problem)
        pois = {p["id"]: p for p in final_state["pois"]}
        stops = [s for day in answer["days"] for s in day]  # type: ignore[index]
        value = _value(pois, stops, goal["objective"])
        optimal = goal["objective"] == "none" or value >= goal["optimum"]
        return Verdict(
            reward=1.0 if optimal else 0.0,
            components={"feasible": 1.0, "optimal": float(optimal)},
            reason="feasible and optimal" if optimal
            else f"feasible but not optimal ({value} < {goal['optimum']} by {goal['objective']})",
        )

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        plan = [list(d) for d in g["plan"]]
        broken = [list(d) for d in plan]
        if g["must_not"]:
            min(broken, key=len).append(g["must_not"][0])
        else:
            drop = g["must_visit"][-1]
            broken = [[s for s in d if s != drop] for d in broken]
        return {"constraint_broken": [*reference[:-1], Call("submit", {"days": broken})],
                "wrong_value": [*reference[:-1], Call("submit", {"days": self._wrong(state, g)})]}

    def _wrong(self, state: State, goal: Mapping[str, Any]) -> list[list[str]]:
        """The reference with one stop changed, the first such edit that the verifier rejects.

        Swapping a free stop for another allowed place comes first (a wrong record), then
        moving a stop to another position or day (a wrong time), then swapping a must-visit.
        """
        plan = goal["plan"]
        used = {s for d in plan for s in d}
        spare = [p["id"] for p in state["pois"] if p["id"] not in used | set(goal["must_not"])]
        slots = [(d, i) for d, day in enumerate(plan) for i in range(len(day))]
        edits: list[list[list[str]]] = []
        for must_too in (False, True):
            for d, i in slots:
                if (plan[d][i] in goal["must_visit"]) == must_too:
                    edits += [_edited(plan, d, i, other) for other in spare]
            if not must_too:
                edits += [_moved(plan, d, i, e, j) for d, i in slots
                          for e in range(len(plan)) for j in range(len(plan[e]) + 1)]
        for edit in edits:
            if self.verify(state, {"days": edit}, goal).reward < 1.0:
                return edit
        # Every edit passes (rare): a place id in the wrong case is a wrong record too.
        edit = [list(x) for x in plan]
        day = next(d for d in edit if d)
        day[0] = day[0].lower()
        return edit


def _edited(plan: list[list[str]], d: int, i: int, other: str) -> list[list[str]]:
    edit = [list(x) for x in plan]
    edit[d][i] = other
    return edit


def _moved(plan: list[list[str]], d: int, i: int, e: int, j: int) -> list[list[str]]:
    edit = [list(x) for x in plan]
    edit[e].insert(j, edit[d].pop(i))
    return edit


def _plan_problem(state: State, answer: Mapping[str, Any] | None,
                  goal: Mapping[str, Any]) -> str | None:
    """The first rule a submitted plan breaks, or None."""
    if answer is None:
        return "no itinerary submitted"
    days = answer["days"]
    if len(days) != len(state["days"]):
        return f"the plan has {len(days)} days, the trip has {len(state['days'])}"
    pois = {p["id"]: p for p in state["pois"]}
    stops = [s for day in days for s in day]
    unknown = [s for s in stops if s not in pois]
    if unknown:
        return f"unknown places {unknown}"
    if len(set(stops)) != len(stops):
        return "a place is visited twice"
    if any(len(day) > goal["max_per_day"] for day in days):
        return f"more than {goal['max_per_day']} places on a day"
    if set(goal["must_not"]) & set(stops):
        return f"visits a forbidden place ({sorted(set(goal['must_not']) & set(stops))})"
    if set(goal["must_visit"]) - set(stops):
        return f"misses must-visit places {sorted(set(goal['must_visit']) - set(stops))}"
    cost = sum(pois[s]["price"] for s in stops)
    if goal["budget"] is not None and cost > goal["budget"]:
        return f"tickets cost {cost} EUR, over the budget of {goal['budget']}"
    for d, day in enumerate(days):
        problem = _day_problem(state, d, day)
        if problem:
            return problem
    return None

