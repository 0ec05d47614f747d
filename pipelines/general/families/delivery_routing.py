"""Delivery routing: one van, a handful of stops with time windows, the shortest feasible tour.

The state is a depot with opening hours, up to eight stops (time window, service time and,
in capacity variants, units to deliver or collect) and a travel-time matrix. A task names
the stops of today's run; the agent submits a visiting order (or builds the route with
dispatch tools). The verifier simulates the route (service must start inside each window,
the van returns before the depot closes, the load never exceeds the capacity) and checks
that its total travel time equals the optimum an exact label-setting search found when the
task was generated.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
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
from pipelines.general.tools import State, tool

DEPOT = "DEPOT"
_NAMES = ["Bakery Lind", "Clinic Oak", "Dock 4", "Florist Vey", "Garage Mohr", "Hotel Ards",
          "Kiosk Pell", "Library", "Market Hall", "Pharmacy Roe"]


class RoutingConfig(FamilyConfig):
    stops: int = Field(7, ge=4, le=8)
    window_slack: int = Field(60, ge=5, le=240)
    """How far (minutes) a window may extend each side of a feasible arrival time."""
    capacity: bool = False
    """Stops deliver or collect units and the van's load is limited."""
    details_in_list: bool = True
    """`list_stops` shows windows and service times; otherwise only `get_stop` does."""


class RouteAnswer(Answer):
    route: list[str] | None = Field(
        None, description="stop ids in visiting order, depot excluded (omit for dispatch tasks)")


# ---- the route model, shared by tools, solver and verifier ------------------------------------


def _stops(state: State) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in state["stops"]}


def _simulate(state: State, route: Sequence[str], capacity: int | None
              ) -> tuple[list[dict[str, Any]], int, str | None]:
    """Timeline, total travel minutes and the first broken rule (None if feasible)."""
    stops, travel = _stops(state), state["travel"]
    depot = state["depot"]
    load = sum(stops[s].get("deliver", 0) for s in route)
    problem = (f"the van starts with {load} units but holds {capacity}"
               if capacity is not None and load > capacity else None)
    t, prev, total, timeline = depot["open"], DEPOT, 0, []
    for sid in route:
        stop = stops[sid]
        leg = travel[prev][sid]
        total += leg
        arrive = t + leg
        start = max(arrive, stop["window"][0])
        if start > stop["window"][1] and problem is None:
            problem = f"arrives at {sid} at {arrive}, after its window ends at {stop['window'][1]}"
        load += stop.get("collect", 0) - stop.get("deliver", 0)
        if capacity is not None and load > capacity and problem is None:
            problem = f"carries {load} units after {sid}, over the capacity {capacity}"
        t = start + stop["service"]
        timeline.append({"stop": sid, "arrive": arrive, "start": start, "depart": t, "load": load})
        prev = sid
    total += travel[prev][DEPOT]
    back = t + travel[prev][DEPOT]
    if back > depot["close"] and problem is None:
        problem = f"returns to the depot at {back}, after it closes at {depot['close']}"
    timeline.append({"stop": DEPOT, "arrive": back})
    return timeline, total, problem


def _optimum(state: State, ids: Sequence[str], capacity: int | None
             ) -> tuple[int, list[str]] | None:
    """Exact shortest feasible tour by label setting over (visited set, last stop).

    A label is (travel, ready time, path); one label dominates another at the same node when
    it is no longer and no later, which keeps the search exact while windows prune it.
    """
    n, stops, tr = len(ids), _stops(state), state["travel"]
    win = [stops[s]["window"] for s in ids]
    serv = [stops[s]["service"] for s in ids]
    dist = [[tr[a][b] for b in ids] for a in ids]
    load0 = sum(stops[s].get("deliver", 0) for s in ids)
    delta = [stops[s].get("collect", 0) - stops[s].get("deliver", 0) for s in ids]
    if capacity is not None and load0 > capacity:
        return None
    labels: dict[int, list[tuple[int, int, tuple[int, ...]]]] = {}
    open_ = state["depot"]["open"]
    for i, s in enumerate(ids):
        start = max(open_ + tr[DEPOT][s], win[i][0])
        if start <= win[i][1] and (capacity is None or load0 + delta[i] <= capacity):
            labels[(1 << i) * n + i] = [(tr[DEPOT][s], start + serv[i], (i,))]
    full, best = (1 << n) - 1, None
    for mask in range(1, full + 1):
        load = load0 + sum(delta[i] for i in range(n) if mask >> i & 1)
        for last in range(n):
            for travel, ready, path in labels.get(mask * n + last, ()):
                if mask == full:
                    back = travel + tr[ids[last]][DEPOT]
                    if ready + tr[ids[last]][DEPOT] <= state["depot"]["close"] and (
                            best is None or back < best[0]):
                        best = (back, [ids[i] for i in path])
                    continue
                for j in range(n):
                    if mask >> j & 1 or (capacity is not None and load + delta[j] > capacity):
                        continue
                    start = max(ready + dist[last][j], win[j][0])
                    if start > win[j][1]:
                        continue
                    _add_label(labels, (mask | 1 << j) * n + j,
                               (travel + dist[last][j], start + serv[j], (*path, j)))
    return best


def _add_label(labels: dict[int, list[tuple[int, int, tuple[int, ...]]]], key: int,
               new: tuple[int, int, tuple[int, ...]]) -> None:
    bucket = labels.setdefault(key, [])
    for old in bucket:
        if old[0] <= new[0] and old[1] <= new[1]:
            return
    bucket[:] = [o for o in bucket if not (new[0] <= o[0] and new[1] <= o[1])]
    bucket.append(new)


# ---- tools ------------------------------------------------------------------------------------


def _known(state: State, stop_id: str) -> dict[str, Any]:
    stop = _stops(state).get(stop_id)
    if stop is None:
        raise ToolError(f"no stop {stop_id!r}; stop ids are single letters like 'A'")
    return stop


@tool()
def list_stops(state: State) -> dict[str, Any]:
    """The depot's hours and the stops. Times are minutes after midnight (480 = 08:00). A
    stop's window [earliest, latest] bounds when service may start; service takes `service`
    minutes; `deliver`/`collect` are units dropped off or picked up there, where given.
    """
    if state["details_in_list"]:
        stops = state["stops"]
    else:
        stops = [{"id": s["id"], "name": s["name"]} for s in state["stops"]]
    return {"depot": state["depot"], "stops": stops}


@tool()
def get_stop(state: State, stop_id: str) -> dict[str, Any]:
    """One stop's details: time window, service minutes and units to deliver or collect.

    Args:
        stop_id: the stop's id, e.g. "C".
    """
    return _known(state, stop_id)


@tool()
def get_travel_matrix(state: State) -> dict[str, dict[str, int]]:
    """Driving minutes between every pair of places: matrix[from][to], depot id "DEPOT"
    (the same in both directions)."""
    return state["travel"]


@tool()
def travel_time(state: State, origin: str, destination: str) -> int:
    """Driving minutes from one place to another (use "DEPOT" for the depot); the time is
    the same in both directions.

    Args:
        origin: a stop id or "DEPOT".
        destination: a stop id or "DEPOT".
    """
    for place in (origin, destination):
        if place != DEPOT:
            _known(state, place)
    return state["travel"][origin][destination]


def _checked_route(state: State, route: Sequence[str]) -> None:
    for sid in route:
        _known(state, sid)
    if len(set(route)) != len(route):
        raise ToolError("a route may visit each stop only once")


@tool()
def simulate_route(state: State, route: list[str], capacity: int | None = None) -> dict[str, Any]:
    """Drive a candidate order on paper: arrival, service start and departure at each stop,
    the total travel minutes, and the first rule it breaks (windows, depot hours, capacity).

    Args:
        route: stop ids in visiting order, depot excluded.
        capacity: the van's capacity in units, if the task gives one.
    """
    _checked_route(state, route)
    timeline, travel, problem = _simulate(state, route, capacity)
    return {"timeline": timeline, "travel_minutes": travel, "problem": problem}


@tool(writes=True)
def append_stop(state: State, stop_id: str) -> str:
    """Append a stop to the end of today's dispatched route.

    Args:
        stop_id: the stop to visit next.
    """
    _known(state, stop_id)
    if stop_id in state["route"]:
        raise ToolError(f"{stop_id} is already on the route")
    state["route"].append(stop_id)
    return f"route: {' -> '.join([DEPOT, *state['route'], DEPOT])}"


@tool(writes=True)
def remove_last_stop(state: State) -> str:
    """Take the last stop off today's dispatched route."""
    if not state["route"]:
        raise ToolError("the route is empty")
    return f"removed {state['route'].pop()}"


@tool()
def view_route(state: State) -> dict[str, Any]:
    """Today's dispatched route with its timeline, travel minutes and first broken rule."""
    timeline, travel, problem = _simulate(state, state["route"], None)
    return {"route": state["route"], "timeline": timeline, "travel_minutes": travel,
            "problem": problem}


# ---- the family -------------------------------------------------------------------------------


@register_family
class DeliveryRouting(Family[RoutingConfig]):
    name = "delivery_routing"
    summary = "Order a van's stops to meet time windows (and capacity) with least travel time."
    config_model = RoutingConfig
    answer_model = RouteAnswer
    submit_description = ("End the task: pass `route` when asked for a visiting order, nothing "
                          "when the route was dispatched with the route tools.")
    tools = (list_stops, get_stop, get_travel_matrix, travel_time, simulate_route, append_stop,
             remove_last_stop, view_route)
    variants = (
        Variant("windows", ("list_stops", "get_travel_matrix"), ("time_windows",)),
        Variant("pairwise", ("list_stops", "travel_time"), ("time_windows",)),
        Variant("tight", ("list_stops", "get_stop", "get_travel_matrix", "simulate_route"),
                ("time_windows",), {"window_slack": 15, "details_in_list": False}),
        Variant("capacity", ("list_stops", "get_travel_matrix", "simulate_route"),
                ("time_windows", "capacity"), {"capacity": True}),
        Variant("dispatch", ("list_stops", "get_travel_matrix", "append_stop", "remove_last_stop",
                             "view_route"), ("time_windows",), {"window_slack": 30}),
        Variant("pairwise-capacity", ("list_stops", "get_stop", "travel_time"),
                ("time_windows", "capacity"), {"capacity": True, "details_in_list": False}),
    )

    def generate_state(self, rng: random.Random, config: RoutingConfig) -> State:
        ids = [chr(65 + i) for i in range(config.stops)]
        pos = {DEPOT: (0.0, 0.0)} | {s: (rng.uniform(-20, 20), rng.uniform(-20, 20)) for s in ids}
        # Ceil of Euclidean distance keeps the triangle inequality, so any subset of stops
        # taken in the hidden tour's order stays feasible (arrivals only get earlier).
        travel = {a: {b: math.ceil(math.dist(pa, pb)) + (2 if a != b else 0)
                      for b, pb in pos.items()} for a, pa in pos.items()}
        hidden = rng.sample(ids, len(ids))
        t, prev, stops = 480, DEPOT, {}
        for sid, name in zip(hidden, rng.sample(_NAMES, len(ids)), strict=True):
            t += travel[prev][sid]
            lo = max(480, t - rng.randint(0, config.window_slack))
            stop: dict[str, Any] = {"id": sid, "name": name,
                                    "window": [lo, t + rng.randint(0, config.window_slack)],
                                    "service": rng.choice([5, 10, 10, 15, 20])}
            if config.capacity:
                stop[rng.choice(["deliver", "collect"])] = rng.randint(1, 6)
            stops[sid] = stop
            t, prev = t + stop["service"], sid
        close = t + travel[prev][DEPOT] + rng.randint(0, 2 * config.window_slack)
        return {"depot": {"id": DEPOT, "open": 480, "close": close},
                "stops": [stops[s] for s in ids], "travel": travel, "route": [],
                "hidden_order": hidden, "details_in_list": config.details_in_list}

    def generate_task(self, rng: random.Random, state: State, config: RoutingConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        n = min(len(state["stops"]), (4, 5, 7)[level])
        chosen = set(rng.sample([s["id"] for s in state["stops"]], n))
        ids = sorted(chosen)
        capacity = None
        if config.capacity:
            # The hidden tour's order is feasible; its peak load is the tightest capacity
            # that keeps it so.
            order = [s for s in state["hidden_order"] if s in chosen]
            timeline, _, _ = _simulate(state, order, None)
            stops = _stops(state)
            capacity = max([sum(stops[s].get("deliver", 0) for s in order)]
                           + [p["load"] for p in timeline[:-1]])
        best = _optimum(state, ids, capacity)
        if best is None:
            return None
        dispatch = "append_stop" in variant.tools
        cap_text = (f" The van holds at most {capacity} units; everything to deliver is loaded "
                    "at the depot before leaving." if capacity is not None else "")
        how = ("Dispatch the route with the route tools (visit only these stops), then submit "
               "with no arguments." if dispatch else
               "Submit the visiting order as `route`, a list of stop ids without the depot.")
        instruction = (
            f"Plan today's van run from the depot through stops {', '.join(ids)}, each visited "
            "exactly once, and back. The van leaves when the depot opens; service at a stop must "
            "start within its time window (waiting is allowed when early) and the van must be "
            f"back before the depot closes.{cap_text} Choose the order with the least total "
            f"travel time (waiting does not count). {how}")
        return TaskDraft(
            instruction=instruction,
            goal={"mode": "state" if dispatch else "answer", "stops": ids,
                  "capacity": capacity, "optimum": best[0]},
            knobs={"stops": n, "steps": n + 2, "window_slack": config.window_slack,
                   "capacity": int(capacity is not None),
                   "distractors": len(state["stops"]) - n},
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        best = _optimum(state, g["stops"], g["capacity"])
        if best is None:
            raise ValueError("generate_task only emits tasks with a feasible tour")
        return self._calls(g, best[1], variant)

    @staticmethod
    def _calls(goal: Mapping[str, Any], route: Sequence[str], variant: Variant) -> list[Call]:
        calls = [Call("list_stops")]
        if "get_stop" in variant.tools:
            calls += [Call("get_stop", {"stop_id": s}) for s in goal["stops"]]
        if "get_travel_matrix" in variant.tools:
            calls.append(Call("get_travel_matrix"))
        else:
            places = [DEPOT, *goal["stops"]]
            calls += [Call("travel_time", {"origin": a, "destination": b})
                      for i, a in enumerate(places) for b in places[i + 1:]]
        if goal["mode"] == "state":
            calls += [Call("append_stop", {"stop_id": s}) for s in route]
            return [*calls, Call("view_route"), Call("submit")]
        if "simulate_route" in variant.tools:
            args: dict[str, Any] = {"route": list(route)}
            if goal["capacity"] is not None:
                args["capacity"] = goal["capacity"]
            calls.append(Call("simulate_route", args))
        return [*calls, Call("submit", {"route": list(route)})]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        if goal["mode"] == "state":
            route = final_state["route"]
        elif answer and answer.get("route") is not None:
            route = answer["route"]
        else:
            return Verdict(reward=0.0, reason="no route was submitted")
        if sorted(route) != sorted(goal["stops"]) or len(set(route)) != len(route):
            return Verdict(reward=0.0, components={"feasible": 0.0},
                           reason=f"the route must visit exactly {goal['stops']} once each")
        _, travel, problem = _simulate(final_state, route, goal["capacity"])
        if problem:
            return Verdict(reward=0.0, components={"feasible": 0.0}, reason=problem)
        ok = travel == goal["optimum"]
        return Verdict(reward=float(ok), components={"feasible": 1.0, "optimal": float(ok)},
                       reason="feasible and shortest" if ok else
                       f"feasible, but {travel} travel minutes; the optimum is {goal['optimum']}")

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft, reference: list[Call],
                variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        best = _optimum(state, g["stops"], g["capacity"])
        if best is None:
            raise ValueError("generate_task only emits tasks with a feasible tour")
        route = best[1]
        neighbours = _neighbours(route)
        rated = [(r, *_simulate(state, r, g["capacity"])[1:]) for r in neighbours]
        # A cheaper or equal neighbour can only be infeasible: a tempting shortcut.
        broken = next((r for r, _, p in rated if p), route[:-1])
        worse = next((r for r, t, p in rated if not p and t > g["optimum"]), None)
        if worse is None:  # no feasible detour nearby: visit a stop that is not on the list
            outside = [s["id"] for s in state["stops"] if s["id"] not in g["stops"]]
            worse = [*route[:-1], outside[0] if outside else route[0]]
        return {"constraint_broken": self._calls(g, broken, variant),
                "wrong_value": self._calls(g, worse, variant)}


def _neighbours(route: Sequence[str]) -> list[list[str]]:
    """Routes one move away: every segment reversal, then every exchange of two stops."""
    out = []
    for i in range(len(route)):
        for j in range(i + 1, len(route)):
            out.append([*route[:i], *reversed(route[i:j + 1]), *route[j + 1:]])
    for i in range(len(route)):
        for j in range(i + 2, len(route)):
            swapped = list(route)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            out.append(swapped)
    return out
