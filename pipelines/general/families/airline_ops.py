"""Airline back office: cancel, rebook, re-seat and add bags to reservations under fare rules.

Fares differ in refunds, whether and at what fee they may be changed, free bags and seat
fees; frequent-flyer tiers add bags and waive change fees; a reservation booked today or on
a flight the airline cancelled is refunded and changed for free. Tools apply the fees, the
agent decides what to do from the passenger's conditional wishes. Graded like tau-bench:
the final `reservations`, `flights`, `seats` and `payments` must hash to the state left by
replaying the reference.
"""

from __future__ import annotations

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
    check_state_hash,
    register_family,
)
from pipelines.general.names import FIRST_NAMES, LAST_NAMES
from pipelines.general.tools import State, find_record, tool

_AIRPORTS = ["LIS", "OPO", "MAD", "BCN", "DUB", "EDI", "OSL", "CPH", "VIE", "PRG"]
_FIRST = list(FIRST_NAMES[:12])
_LAST = list(LAST_NAMES[:10])
_ROWS = {"business": [1, 2], "economy": [10, 11, 12, 13, 14, 15]}
_LETTERS = "ABCD"
_WINDOW = "AD"
_DATES = ["2026-05-11", "2026-05-12", "2026-05-13"]
TODAY = "2026-05-10"
TABLES = ("reservations", "flights", "seats", "payments")


class AirlineConfig(FamilyConfig):
    passengers: int = Field(8, ge=4, le=16)
    routes: int = Field(2, ge=1, le=3)
    flights_per_day: int = Field(2, ge=1, le=3)
    disruptions: int = Field(0, ge=0, le=3)
    """Flights the airline has cancelled (their passengers rebook for free)."""
    bag_fee: int = Field(35, ge=10, le=100)
    change_fee: int = Field(50, ge=0, le=200)


# ---- the fare rules, shared by the tools and the task generator --------------------------


def _res(state: State, reservation_id: str) -> dict[str, Any]:
    return find_record(state["reservations"], reservation_id, f"no reservation {reservation_id!r}")


def _flight(state: State, flight_id: str) -> dict[str, Any]:
    return find_record(state["flights"], flight_id, f"no flight {flight_id!r}")


def _tier(state: State, r: Mapping[str, Any]) -> str:
    return next(p["tier"] for p in state["passengers"] if p["id"] == r["passenger_id"])


def _refund(state: State, r: Mapping[str, Any]) -> int:
    if _flight(state, r["flight_id"])["status"] == "cancelled" or r["booked_on"] == TODAY:
        return r["fare_paid"]
    return r["fare_paid"] * state["fare_rules"][r["fare"]]["refund_pct"] // 100


def _change_cost(state: State, r: Mapping[str, Any], new: Mapping[str, Any]) -> int | None:
    """Change fee plus fare difference of moving `r` to flight `new`; None if not allowed."""
    if _flight(state, r["flight_id"])["status"] == "cancelled":
        return 0
    rule = state["fare_rules"][r["fare"]]
    if not rule["changes"]:
        return None
    fee = 0 if _tier(state, r) == "gold" else rule["change_fee"]
    return fee + max(0, new["cabins"][r["cabin"]]["price"] - r["fare_paid"])


def _free_bags_left(state: State, r: Mapping[str, Any]) -> int:
    allowance = (state["fare_rules"][r["fare"]]["free_bags"]
                 + state["policy"]["extra_free_bags_by_tier"][_tier(state, r)])
    return max(0, allowance - r["bags"])


def _free_seats(state: State, flight_id: str, cabin: str) -> list[str]:
    taken = set(state["seats"][flight_id])
    return [f"{row}{x}" for row in _ROWS[cabin] for x in _LETTERS if f"{row}{x}" not in taken]


def _charge(state: State, r: Mapping[str, Any], kind: str, amount: int) -> None:
    if amount:
        state["payments"].append({"reservation_id": r["id"], "kind": kind, "amount": amount})


def _active(r: Mapping[str, Any]) -> None:
    if r["status"] != "active":
        raise ToolError(f"reservation {r['id']} is {r['status']}")


# ---- tools ------------------------------------------------------------------------------


@tool()
def find_passenger(state: State, email: str) -> dict[str, Any]:
    """Look up a passenger (id, name, frequent-flyer tier) by email.

    Args:
        email: the passenger's email, exactly as given.
    """
    return find_record(
        state["passengers"], email, f"no passenger with email {email!r}", key="email"
    )


@tool()
def list_reservations(state: State, passenger_id: str) -> list[dict[str, Any]]:
    """A passenger's reservations: id, flight, route, date and status.

    Args:
        passenger_id: the passenger's id, e.g. "px3".
    """
    out = []
    for r in state["reservations"]:
        if r["passenger_id"] == passenger_id:
            f = _flight(state, r["flight_id"])
            out.append({"id": r["id"], "flight_id": f["id"], "origin": f["origin"],
                        "dest": f["dest"], "date": f["date"], "status": r["status"]})
    return out


@tool()
def get_reservation(state: State, reservation_id: str) -> dict[str, Any]:
    """Full reservation: fare, cabin, seat, bags, price paid and booking date.

    Args:
        reservation_id: the reservation's id, e.g. "RK12".
    """
    return _res(state, reservation_id)


@tool()
def get_flight(state: State, flight_id: str) -> dict[str, Any]:
    """A flight's route, date, times, status and per-cabin price and seats left for sale.

    Args:
        flight_id: the flight's id, e.g. "EA104".
    """
    return _flight(state, flight_id)


@tool()
def search_flights(state: State, origin: str, dest: str, date: str | None = None
                   ) -> list[dict[str, Any]]:
    """Flights between two airports, on one date or on every date, by departure time.

    Args:
        origin: departure airport code, e.g. "LIS".
        dest: arrival airport code.
        date: "YYYY-MM-DD"; all dates when omitted.
    """
    found = [f for f in state["flights"] if f["origin"] == origin and f["dest"] == dest
             and date in (None, f["date"])]
    return sorted(found, key=lambda f: (f["date"], f["dep"]))


@tool()
def get_fare_rules(state: State) -> dict[str, Any]:
    """Fare rules (refund %, changes, change fee, free bags, seat fee) and the general policy."""
    return {"fares": state["fare_rules"], "policy": state["policy"]}


@tool()
def seat_map(state: State, flight_id: str, cabin: str) -> dict[str, Any]:
    """Free seats of one cabin of a flight. Seats are row + letter; A and D are windows.

    Args:
        flight_id: the flight.
        cabin: "economy" or "business".
    """
    _flight(state, flight_id)
    if cabin not in _ROWS:
        raise ToolError("cabin must be economy or business")
    return {"rows": _ROWS[cabin], "letters": _LETTERS, "free": _free_seats(state, flight_id, cabin)}


@tool(writes=True)
def cancel_reservation(state: State, reservation_id: str) -> str:
    """Cancel a reservation; the refund the fare rules allow is paid back automatically.

    Args:
        reservation_id: the reservation to cancel.
    """
    r = _res(state, reservation_id)
    _active(r)
    refund = _refund(state, r)
    f = _flight(state, r["flight_id"])
    if f["status"] != "cancelled":
        f["cabins"][r["cabin"]]["seats_left"] += 1
    if r["seat"]:
        state["seats"][f["id"]].remove(r["seat"])
    r.update(status="cancelled", seat=None)
    _charge(state, r, "refund", -refund)
    return f"reservation {reservation_id} cancelled, {refund} EUR refunded"


@tool(writes=True)
def change_flight(state: State, reservation_id: str, flight_id: str) -> str:
    """Move a reservation to another flight on the same route, in the same cabin.

    The change fee and any fare difference are charged automatically; the seat is released.

    Args:
        reservation_id: the reservation to change.
        flight_id: the new flight.
    """
    r = _res(state, reservation_id)
    _active(r)
    old, new = _flight(state, r["flight_id"]), _flight(state, flight_id)
    if (new["origin"], new["dest"]) != (old["origin"], old["dest"]) or new["id"] == old["id"]:
        raise ToolError(f"{flight_id} is not another flight {old['origin']}->{old['dest']}")
    if new["status"] != "scheduled" or new["cabins"][r["cabin"]]["seats_left"] < 1:
        raise ToolError(f"{flight_id} has no {r['cabin']} seat for sale")
    cost = _change_cost(state, r, new)
    if cost is None:
        raise ToolError(f"{r['fare']} fares cannot be changed")
    if old["status"] != "cancelled":
        old["cabins"][r["cabin"]]["seats_left"] += 1
        # A fare difference paid makes the new price the price paid.
        r["fare_paid"] = max(r["fare_paid"], new["cabins"][r["cabin"]]["price"])
    new["cabins"][r["cabin"]]["seats_left"] -= 1
    if r["seat"]:
        state["seats"][old["id"]].remove(r["seat"])
    r.update(flight_id=flight_id, seat=None)
    _charge(state, r, "change", cost)
    return f"reservation {reservation_id} moved to {flight_id}; charged {cost} EUR"


@tool(writes=True)
def change_seat(state: State, reservation_id: str, seat: str) -> str:
    """Assign a free seat in the reservation's cabin (basic fares pay the seat fee).

    Args:
        reservation_id: the reservation.
        seat: the seat, e.g. "12A".
    """
    r = _res(state, reservation_id)
    _active(r)
    f = _flight(state, r["flight_id"])
    if f["status"] == "cancelled":
        raise ToolError(f"flight {f['id']} was cancelled; rebook first")
    if seat not in _free_seats(state, f["id"], r["cabin"]):
        raise ToolError(f"seat {seat} is not a free {r['cabin']} seat on {f['id']}")
    if r["seat"]:
        state["seats"][f["id"]].remove(r["seat"])
    state["seats"][f["id"]] = sorted([*state["seats"][f["id"]], seat])
    r["seat"] = seat
    fee = state["fare_rules"][r["fare"]]["seat_fee"]
    _charge(state, r, "seat", fee)
    return f"seat {seat} assigned" + (f"; charged {fee} EUR" if fee else "")


@tool(writes=True)
def add_bags(state: State, reservation_id: str, count: int) -> str:
    """Add checked bags; bags beyond the free allowance are charged the bag fee each.

    Args:
        reservation_id: the reservation.
        count: how many bags to add (1 to 3).
    """
    r = _res(state, reservation_id)
    _active(r)
    if not 1 <= count <= 3:
        raise ToolError("count must be 1, 2 or 3")
    fee = max(0, count - _free_bags_left(state, r)) * state["policy"]["bag_fee"]
    r["bags"] += count
    _charge(state, r, "bags", fee)
    return f"{count} bag(s) added; charged {fee} EUR"


# ---- task generation --------------------------------------------------------------------


def _c(name: str, **arguments: Any) -> dict[str, Any]:
    """A scripted call as plain JSON (goals are stored as JSON)."""
    return {"name": name, "arguments": arguments}


def _window_seat(state: State, r: Mapping[str, Any], flight_id: str | None = None) -> str | None:
    """The lowest-row free window seat of the reservation's cabin, A before D."""
    free = _free_seats(state, flight_id or r["flight_id"], r["cabin"])
    return next((s for s in free if s[-1] in _WINDOW), None)


def _alternatives(state: State, r: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Other scheduled flights on the reservation's route with a seat for sale in its cabin."""
    f = _flight(state, r["flight_id"])
    return sorted((g for g in state["flights"] if g["origin"] == f["origin"]
                   and g["dest"] == f["dest"] and g["id"] != f["id"]
                   and g["status"] == "scheduled" and g["cabins"][r["cabin"]]["seats_left"] > 0),
                  key=lambda g: (g["date"], g["dep"]))


def _desc(state: State, r: Mapping[str, Any]) -> str:
    f = _flight(state, r["flight_id"])
    return f"reservation {r['id']} ({f['origin']}->{f['dest']} on {f['date']})"


def _bag_calls(reservation_id: str, count: int) -> list[dict[str, Any]]:
    calls, left = [], count
    while left > 0:
        calls.append(_c("add_bags", reservation_id=reservation_id, count=min(left, 3)))
        left -= min(left, 3)
    return calls


class _Job:
    """A task in the making: what the passenger asks, the reference writes and two near misses."""

    def __init__(self, ask: str, actions: list[dict[str, Any]], broken: list[dict[str, Any]],
                 wrong: list[dict[str, Any]], constraints: int):
        self.ask, self.actions, self.broken, self.wrong = ask, actions, broken, wrong
        self.constraints = constraints


def _task_cancel(rng: random.Random, state: State, mine: list[dict[str, Any]], level: int
                 ) -> _Job | None:
    if level == 0:
        r, other = rng.sample(mine, 2)
        return _Job(f"Please cancel {_desc(state, r)}.", [_c("cancel_reservation",
                    reservation_id=r["id"])], [_c("cancel_reservation", reservation_id=x["id"])
                    for x in (r, other)], [_c("cancel_reservation", reservation_id=other["id"])], 1)
    refunds = {r["id"]: _refund(state, r) for r in mine}
    if level == 1:
        values = sorted({v for v in refunds.values() if v > 0})
        if not values or min(refunds.values()) >= values[-1]:
            return None
        # The threshold is a real refund, so "at least" is tested at its boundary.
        cut = rng.choice([v for v in values if v > min(refunds.values())])
        hit = [k for k, v in refunds.items() if v >= cut]
        ask = ("Please cancel every one of my active reservations that would refund at least "
               f"{cut} EUR, and keep the others.")
    else:
        paid = {r["id"]: r["fare_paid"] for r in mine}
        hit = [k for k, v in refunds.items() if 2 * v > paid[k]]
        ask = ("Please cancel every one of my active reservations that would refund more than "
               "half of the price I paid for it, and keep the others.")
    keep = [k for k in refunds if k not in hit]
    if not hit or not keep:
        return None
    cancel = [_c("cancel_reservation", reservation_id=k) for k in hit]
    return _Job(ask, cancel, cancel + [_c("cancel_reservation", reservation_id=keep[0])],
                cancel[1:] + [_c("cancel_reservation", reservation_id=keep[0])], 2)


def _task_rebook(rng: random.Random, state: State, mine: list[dict[str, Any]], level: int
                 ) -> _Job | None:
    r = rng.choice([x for x in mine if x["fare"] != "basic"] or [mine[0]])
    options = _alternatives(state, r)
    if r["fare"] == "basic" or len(options) < 2:
        return None
    move = [_c("change_flight", reservation_id=r["id"], flight_id=g["id"]) for g in options]
    if level == 0:
        date = rng.choice(sorted({g["date"] for g in options}))
        on_day = [i for i, g in enumerate(options) if g["date"] == date]
        other = next(i for i in range(len(options)) if i != on_day[0])
        return _Job(f"Please move {_desc(state, r)} to the earliest flight on {date} on the "
                    f"same route that still sells {r['cabin']} seats.", [move[on_day[0]]],
                    [move[other]], [_c("cancel_reservation", reservation_id=r["id"])], 2)
    costs: list[int] = []
    for g in options:
        cost = _change_cost(state, r, g)
        assert cost is not None  # only basic fares forbid changes, and those left above
        costs.append(cost)
    order = sorted(range(len(options)), key=lambda i: (costs[i], i))
    best, second = order[0], order[1]
    ask = (f"Please move {_desc(state, r)} to the flight on the same route (any date, same cabin, "
           "seats for sale) with the lowest change cost (change fee plus fare difference), "
           "the earliest departure among equally cheap ones")
    if level == 1:
        # Broken: the earliest departure, ignoring cost; wrong: the second cheapest.
        early = 0 if best else 1
        return _Job(ask + ".", [move[best]], [move[early]] if early != second
                    else [_c("cancel_reservation", reservation_id=r["id"])], [move[second]], 3)
    limit = max(0, costs[best] + rng.choice([-15, -5, 0, 10]))
    cancel = [_c("cancel_reservation", reservation_id=r["id"])]
    ask += f", but only if that costs at most {limit} EUR; otherwise cancel the reservation."
    if costs[best] <= limit:
        return _Job(ask, [move[best]], cancel, [move[second]], 4)
    return _Job(ask, cancel, [move[best]], [move[second]], 4)


def _task_seat(rng: random.Random, state: State, mine: list[dict[str, Any]], level: int
               ) -> _Job | None:
    if level == 2:
        return _pair_seats(rng, state, mine)
    rule = state["fare_rules"]
    if level == 0:
        r = rng.choice(mine)
        want = _window_seat(state, r)
        free = _free_seats(state, r["flight_id"], r["cabin"])
        aisle = next((s for s in free if s[-1] not in _WINDOW), None)
        later = [s for s in free if s[-1] in _WINDOW and s != want]
        if want is None or want == r["seat"] or aisle is None or not later:
            return None
        seat = [_c("change_seat", reservation_id=r["id"], seat=x) for x in (want, aisle, later[-1])]
        return _Job(f"Please give {_desc(state, r)} a window seat (A or D) in the lowest row "
                    "that has one free, A before D.", seat[:1], seat[1:2], seat[2:], 2)
    unseated = [r for r in mine if r["seat"] is None]
    paid = [r for r in unseated if rule[r["fare"]]["seat_fee"]]
    todo = [r for r in unseated if not rule[r["fare"]]["seat_fee"]]
    if not todo or not paid or any(_window_seat(state, r) is None for r in unseated):
        return None
    # Two reservations on one flight would take seats in turn; keep such tasks out.
    if len({r["flight_id"] for r in unseated}) < len(unseated):
        return None
    actions = [_c("change_seat", reservation_id=r["id"], seat=_window_seat(state, r)) for r in todo]
    extra = _c("change_seat", reservation_id=paid[0]["id"], seat=_window_seat(state, paid[0]))
    wrong = [_c("change_seat", reservation_id=r["id"], seat=_free_seats(
        state, r["flight_id"], r["cabin"])[-1]) for r in todo]
    return _Job("For each of my active reservations that has no seat yet, assign the window seat "
                "(A or D) in the lowest row that has one free, A before D, but only where seat "
                "selection is free of charge for my fare; leave the others unseated.",
                actions, [*actions, extra], wrong, 3)


def _pair_seats(rng: random.Random, state: State, mine: list[dict[str, Any]]) -> _Job | None:
    """Seat a passenger and their companion side by side, the passenger at the window."""
    for r in mine:
        mate = next((x for x in state["reservations"] if x["flight_id"] == r["flight_id"]
                     and x["cabin"] == r["cabin"] and x["status"] == "active"
                     and x["passenger_id"] != r["passenger_id"] and x["seat"] is None), None)
        if mate is None or r["seat"] is not None:
            continue
        free = set(_free_seats(state, r["flight_id"], r["cabin"]))
        pairs = [(f"{row}A", f"{row}B") for row in _ROWS[r["cabin"]]]
        pairs = sorted(pairs + [(f"{row}D", f"{row}C") for row in _ROWS[r["cabin"]]],
                       key=lambda p: (int(p[0][:-1]), p[0][-1] == "D"))
        fits = [p for p in pairs if set(p) <= free]
        if len(fits) < 2:
            continue
        (win, aisle), (win2, aisle2) = fits[0], fits[1]
        email = next(p["email"] for p in state["passengers"] if p["id"] == mate["passenger_id"])
        seat = [_c("change_seat", reservation_id=r["id"], seat=win),
                _c("change_seat", reservation_id=mate["id"], seat=aisle)]
        apart = next((s for s in sorted(free) if s not in (win, aisle) and s[:-1] != win[:-1]),
                     None)
        if apart is None:
            continue
        return _Job(
            f"Please seat me ({_desc(state, r)}) next to my companion {email} (reservation "
            f"{mate['id']}, same flight): two adjacent seats A+B or C+D in one row, the lowest "
            "such row, A+B before C+D; I take the window seat (A or D).",
            seat, [seat[0], _c("change_seat", reservation_id=mate["id"], seat=apart)],
            [_c("change_seat", reservation_id=r["id"], seat=win2),
             _c("change_seat", reservation_id=mate["id"], seat=aisle2)], 3)
    return None


def _task_bags(rng: random.Random, state: State, mine: list[dict[str, Any]], level: int
               ) -> _Job | None:
    left = {r["id"]: _free_bags_left(state, r) for r in mine}
    fee = state["policy"]["bag_fee"]
    r = rng.choice(mine)
    if level == 0:
        if not left[r["id"]]:
            return None
        other = next(x for x in mine if x is not r)
        return _Job(f"Please add to {_desc(state, r)} as many checked bags as I can have free "
                    "of charge.",
                    _bag_calls(r["id"], left[r["id"]]), _bag_calls(r["id"], left[r["id"]] + 1),
                    _bag_calls(other["id"], left[r["id"]]), 2)
    if level == 1:
        want = rng.randint(2, 3)
        budget = rng.choice([0, fee - 5, fee, fee + 10])
        count = min(want, left[r["id"]] + budget // fee)
        if count < 1 or count == want:
            return None
        return _Job(f"I would like {want} more checked bags on {_desc(state, r)}, but I will pay "
                    f"at most {budget} EUR in bag fees: add as many as that allows.",
                    _bag_calls(r["id"], count), _bag_calls(r["id"], want),
                    _bag_calls(r["id"], count - 1) if count > 1
                    else _bag_calls(next(x for x in mine if x is not r)["id"], 1), 3)
    hit = [x for x in mine if left[x["id"]]]
    if not hit or len(hit) == len(mine):
        return None
    actions = [c for x in hit for c in _bag_calls(x["id"], left[x["id"]])]
    miss = next(x for x in mine if not left[x["id"]])
    # Wrong: one bag short on the first reservation (as if a tier bonus were forgotten).
    short = [c for i, x in enumerate(hit) for c in _bag_calls(x["id"], left[x["id"]] - (i == 0))]
    return _Job("For every one of my active reservations, add as many checked bags as I can have "
                "free of charge (my fare and frequent-flyer tier decide), and no paid ones.",
                actions, [*actions, *_bag_calls(miss["id"], 1)],
                short or _bag_calls(miss["id"], 1), 3)


def _task_disrupted(rng: random.Random, state: State, mine: list[dict[str, Any]], level: int
                    ) -> _Job | None:
    hit = [r for r in mine if _flight(state, r["flight_id"])["status"] == "cancelled"]
    if not hit:
        return None
    r = hit[0]
    options = _alternatives(state, r)
    if len(options) < 2:
        return None
    move = [_c("change_flight", reservation_id=r["id"], flight_id=g["id"]) for g in options]
    cancel = [_c("cancel_reservation", reservation_id=r["id"])]
    intro = f"The airline cancelled the flight of {_desc(state, r)}. "
    if level == 0:
        return _Job(intro + "Rebook me onto the earliest flight on the same route (any date) that "
                    f"still sells {r['cabin']} seats.", move[:1], move[-1:], move[1:2], 2)
    if level == 1:
        date = _flight(state, r["flight_id"])["date"]
        same = [i for i, g in enumerate(options) if g["date"] == date]
        ask = (intro + f"Rebook me onto the earliest flight on the same route on {date} that "
               f"still sells {r['cabin']} seats; if there is none that day, cancel the "
               "reservation for a full refund.")
        if same:
            return _Job(ask, move[same[0]:same[0] + 1], cancel,
                        move[1:2] if same[0] == 0 else move[:1], 3)
        return _Job(ask, cancel, move[:1], move[1:2], 3)
    new = options[0]
    seat = next((s for s in _free_seats(state, new["id"], r["cabin"]) if s[-1] in _WINDOW), None)
    aisle = next((s for s in _free_seats(state, new["id"], r["cabin"]) if s[-1] not in _WINDOW),
                 None)
    if seat is None or aisle is None:
        return None
    pick = _c("change_seat", reservation_id=r["id"], seat=seat)
    return _Job(intro + "Rebook me onto the earliest flight on the same route (any date) that "
                f"still sells {r['cabin']} seats, then give me the window seat (A or D) in the "
                "lowest row that has one free there, A before D.", [move[0], pick],
                [move[0], _c("change_seat", reservation_id=r["id"], seat=aisle)],
                [move[1], pick], 3)


_KINDS = {"cancel": _task_cancel, "rebook": _task_rebook, "seat": _task_seat,
          "bags": _task_bags, "disrupted": _task_disrupted}
_READ = ("find_passenger", "list_reservations", "get_reservation")


@register_family
class AirlineOps(Family[AirlineConfig]):
    name = "airline_ops"
    summary = "Airline back office: cancel, rebook, re-seat and add bags under fare rules."
    config_model = AirlineConfig
    tools = (find_passenger, list_reservations, get_reservation, get_flight, search_flights,
             get_fare_rules, seat_map, cancel_reservation, change_flight, change_seat, add_bags)
    variants = (
        Variant("cancel", (*_READ, "get_flight", "get_fare_rules", "cancel_reservation"),
                ("cancel", "refund_rules", "threshold")),
        Variant("rebook", (*_READ, "search_flights", "get_fare_rules", "change_flight",
                           "cancel_reservation"), ("rebook", "change_fees", "conditional")),
        Variant("seats", (*_READ, "seat_map", "get_fare_rules", "change_seat"),
                ("seat", "seat_fee", "adjacency")),
        Variant("baggage", (*_READ, "get_fare_rules", "add_bags"),
                ("bags", "allowance", "fee_budget"), {"bag_fee": 40}),
        Variant("disruption", (*_READ, "get_flight", "search_flights", "seat_map",
                               "change_flight", "change_seat", "cancel_reservation"),
                ("disrupted", "same_day"), {"disruptions": 2}),
        Variant("full", tuple(t.name for t in tools),
                ("cancel", "rebook", "seat", "bags", "refund_rules", "change_fees"),
                {"passengers": 10}),
    )

    def generate_state(self, rng: random.Random, config: AirlineConfig) -> State:
        flights = _flights(rng, config)
        names = rng.sample([(f, la) for f in _FIRST for la in _LAST], config.passengers)
        passengers = [{"id": f"px{i + 1}", "name": f"{f} {la}",
                       "email": f"{f.lower()}.{la.lower()}@fly.test",
                       "tier": rng.choice(["none", "none", "silver", "gold"])}
                      for i, (f, la) in enumerate(names)]
        state: State = {
            "today": TODAY, "flights": flights, "passengers": passengers, "reservations": [],
            "seats": {f["id"]: sorted(rng.sample(_free_seats({"seats": {f["id"]: []}}, f["id"],
                                                             "economy"), rng.randint(4, 10)))
                      for f in flights},
            "payments": [],
            "fare_rules": {
                "basic": {"refund_pct": 0, "changes": False, "change_fee": 0, "free_bags": 0,
                          "seat_fee": 15},
                "standard": {"refund_pct": 50, "changes": True, "change_fee": config.change_fee,
                             "free_bags": 1, "seat_fee": 0},
                "flex": {"refund_pct": 100, "changes": True, "change_fee": 0, "free_bags": 2,
                         "seat_fee": 0},
            },
            "policy": {
                "bag_fee": config.bag_fee, "extra_free_bags_by_tier": {"none": 0, "silver": 1,
                                                                       "gold": 2},
                "gold_tier": "no change fee",
                "booked_today": "cancellation refunds the full price paid",
                "flight_cancelled_by_airline": "changes are free (no fee, no fare difference) "
                "and cancellation refunds the full price paid",
            },
        }
        for p in passengers:
            for f in rng.sample(flights, rng.randint(2, 3)):
                _reserve(rng, state, p["id"], f)
        for a, b in zip(passengers[0::4], passengers[1::4], strict=False):
            mine = [r for r in state["reservations"] if r["passenger_id"] == a["id"]]
            _reserve(rng, state, b["id"], _flight(state, mine[0]["flight_id"]),
                     cabin=mine[0]["cabin"], seated=False)
            mine[0]["seat"] = None
        busy = sorted({r["flight_id"] for r in state["reservations"] if r["status"] == "active"})
        for fid in rng.sample(busy, config.disruptions):
            _flight(state, fid)["status"] = "cancelled"
        state["seats"] = {k: sorted(v) for k, v in state["seats"].items()}
        return state

    def generate_task(self, rng: random.Random, state: State, config: AirlineConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        kinds = [k for k in variant.constraints if k in _KINDS]
        passengers = list(state["passengers"])
        rng.shuffle(passengers)
        for p in passengers:
            kind = rng.choice(kinds)
            mine = [r for r in state["reservations"] if r["passenger_id"] == p["id"]
                    and r["status"] == "active" and (kind == "disrupted" or _flight(
                        state, r["flight_id"])["status"] == "scheduled")]
            if len(mine) < 2:
                continue
            job = _KINDS[kind](rng, state, mine, level)
            if job is None:
                continue
            return TaskDraft(
                instruction=f"I am {p['name']} ({p['email']}). {job.ask} Then submit.",
                goal={"email": p["email"], "kind": kind, "actions": job.actions,
                      "broken": job.broken, "wrong": job.wrong},
                knobs={"steps": 2 + len(job.actions), "constraints": job.constraints,
                       "distractors": len(mine) - 1},
                hash_tables=TABLES,
            )
        return None

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        return self._script(state, draft, variant, draft.goal["actions"])

    def _script(self, state: State, draft: TaskDraft, variant: Variant,
                actions: list[Mapping[str, Any]]) -> list[Call]:
        pid = next(p["id"] for p in state["passengers"] if p["email"] == draft.goal["email"])
        calls = [Call("find_passenger", {"email": draft.goal["email"]}),
                 Call("list_reservations", {"passenger_id": pid})]
        if "get_fare_rules" in variant.tools:
            calls.append(Call("get_fare_rules"))
        calls += [Call(a["name"], a["arguments"]) for a in actions]
        return [*calls, Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        return check_state_hash(final_state, goal)

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        return {"constraint_broken": self._script(state, draft, variant, g["broken"]),
                "wrong_value": self._script(state, draft, variant, g["wrong"])}


def _flights(rng: random.Random, config: AirlineConfig) -> list[dict[str, Any]]:
    airports = rng.sample(_AIRPORTS, 2 * config.routes)
    flights, number = [], 100
    for i in range(config.routes):
        length = rng.choice([55, 70, 85, 100, 125])
        for origin, dest in ((airports[2 * i], airports[2 * i + 1]),
                             (airports[2 * i + 1], airports[2 * i])):
            for date in _DATES[:2]:
                for dep in sorted(rng.sample(range(360, 1260, 15), config.flights_per_day)):
                    eco = rng.randrange(60, 220, 5)
                    number += rng.randint(1, 9)
                    flights.append({
                        "id": f"EA{number}", "origin": origin, "dest": dest, "date": date,
                        "dep": f"{dep // 60:02d}:{dep % 60:02d}",
                        "arr": f"{(dep + length) // 60:02d}:{(dep + length) % 60:02d}",
                        "status": "scheduled",
                        "cabins": {
                            "economy": {"price": eco, "seats_left": rng.randint(0, 3)},
                            "business": {"price": eco * 3 - eco * 3 % 5,
                                         "seats_left": rng.randint(0, 2)},
                        },
                    })
    return flights


def _reserve(rng: random.Random, state: State, passenger_id: str, flight: Mapping[str, Any],
             cabin: str | None = None, seated: bool | None = None) -> None:
    cabin = cabin or rng.choice(["economy", "economy", "economy", "business"])
    free = _free_seats(state, flight["id"], cabin)
    active = seated is not None or rng.random() < 0.9
    seat = rng.choice(free) if active and free and (
        seated if seated is not None else rng.random() < 0.5) else None
    if seat:
        state["seats"][flight["id"]].append(seat)
    price = flight["cabins"][cabin]["price"]
    state["reservations"].append({
        "id": f"R{rng.choice('KMPQTX')}{len(state['reservations']) + 11}",
        "passenger_id": passenger_id, "flight_id": flight["id"], "cabin": cabin,
        "fare": rng.choice(["basic", "standard", "flex"]), "seat": seat,
        "bags": rng.randint(0, 1), "fare_paid": max(40, price + rng.randrange(-30, 35, 5)),
        "booked_on": TODAY if rng.random() < 0.15 else f"2026-04-{rng.randint(1, 30):02d}",
        "status": "active" if active else "cancelled",
    })
