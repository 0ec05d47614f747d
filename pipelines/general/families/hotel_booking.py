"""Hotel reservation desk: rooms by type, nightly rates by date, loyalty discounts, cancellations.

The agent books, changes and cancels reservations for guests who state what they need (party
size, view, accessibility, dates to choose from) and want the cheapest room that fits. The
booking tools price stays themselves (sum of the nightly rates less the guest's loyalty
discount) and refuse double bookings and rooms too small for the party; choosing the room
and respecting the guest's conditions is the agent's job. Graded like tau-bench: the final
`reservations` and `charges` must hash to the state left by replaying the reference.
"""

from __future__ import annotations

import datetime as dt
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

_FIRST = list(FIRST_NAMES[:12])
_LAST = list(LAST_NAMES[:10])
_TYPES = [("STD", "Standard", 2, 90), ("DLX", "Deluxe", 2, 120), ("TRP", "Triple", 3, 130),
          ("FAM", "Family", 4, 160), ("STE", "Suite", 3, 210)]
_VIEWS = ["city", "garden", "sea"]
FIRST_NIGHT = dt.date(2026, 7, 1)
TODAY = dt.date(2026, 6, 30)
TABLES = ("reservations", "charges")


class HotelConfig(FamilyConfig):
    rooms: int = Field(10, ge=5, le=20)
    nights: int = Field(14, ge=7, le=28)
    guests: int = Field(8, ge=4, le=16)
    occupancy: float = Field(0.35, ge=0.0, le=0.8)
    """Rough share of room-nights already booked."""
    free_cancellation_days: int = Field(5, ge=0, le=14)
    weekend_markup_pct: int = Field(20, ge=0, le=100)


def _date(offset: int) -> str:
    return (FIRST_NIGHT + dt.timedelta(days=offset)).isoformat()


def _nights(check_in: str, check_out: str) -> list[str]:
    a, b = dt.date.fromisoformat(check_in), dt.date.fromisoformat(check_out)
    return [(a + dt.timedelta(days=i)).isoformat() for i in range((b - a).days)]


# ---- records and rules ------------------------------------------------------------------


def _find(state: State, table: str, key: str) -> dict[str, Any]:
    return find_record(state[table], key, f"no {table[:-1]} {key!r}")


def _room_type(state: State, room_id: str) -> dict[str, Any]:
    code = _find(state, "rooms", room_id)["type"]
    return next(t for t in state["room_types"] if t["code"] == code)


def _check_dates(state: State, check_in: str, check_out: str) -> list[str]:
    try:
        nights = _nights(check_in, check_out)
    except ValueError:
        raise ToolError("dates must look like 2026-07-03") from None
    calendar = next(iter(state["rates"].values()))
    if not nights or any(n not in calendar for n in nights):
        first, last = min(calendar), max(calendar)
        raise ToolError(f"check-in must be before check-out, nights between {first} and {last}")
    return nights


def _price(state: State, room_id: str, check_in: str, check_out: str, guest_id: str) -> int:
    """Sum of the nightly rates of the room's type, less the guest's loyalty discount."""
    code = _find(state, "rooms", room_id)["type"]
    tier = _find(state, "guests", guest_id)["loyalty"]
    gross = sum(state["rates"][code][n] for n in _nights(check_in, check_out))
    return gross * (100 - state["policy"]["loyalty_discount_pct"][tier]) // 100


def _is_free(state: State, room_id: str, check_in: str, check_out: str,
             ignore: str | None = None) -> bool:
    return not any(r["room_id"] == room_id and r["status"] == "confirmed" and r["id"] != ignore
                   and r["check_in"] < check_out and check_in < r["check_out"]
                   for r in state["reservations"])


def _cancel_fee(state: State, r: Mapping[str, Any]) -> int:
    lead = (dt.date.fromisoformat(r["check_in"]) - TODAY).days
    if lead >= state["policy"]["free_cancellation_days"]:
        return 0
    return _price(state, r["room_id"], r["check_in"], _date_after(r["check_in"]), r["guest_id"])


def _date_after(day: str) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


# ---- tools ------------------------------------------------------------------------------


@tool()
def find_guest(state: State, email: str) -> dict[str, Any]:
    """Look up a guest (id, name, loyalty tier) by email.

    Args:
        email: the guest's email, exactly as given.
    """
    return find_record(state["guests"], email, f"no guest with email {email!r}", key="email")


@tool()
def hotel_policy(state: State) -> dict[str, Any]:
    """Loyalty discounts by tier (percent off the room price) and the cancellation rules."""
    return {**state["policy"], "today": state["today"]}


@tool()
def list_room_types(state: State) -> list[dict[str, Any]]:
    """Room types with their capacity (most guests) and description."""
    return state["room_types"]


@tool()
def list_rooms(state: State, room_type: str | None = None) -> list[dict[str, Any]]:
    """Rooms (number, type, view, accessible), optionally of one type.

    Args:
        room_type: a room type code such as "STD"; all rooms when omitted.
    """
    return [r for r in state["rooms"] if room_type in (None, r["type"])]


@tool()
def check_availability(state: State, check_in: str, check_out: str, guests: int = 1
                       ) -> list[dict[str, Any]]:
    """Rooms free for every night from check-in to check-out that hold the party.

    Args:
        check_in: arrival date, "YYYY-MM-DD".
        check_out: departure date (the last night is the day before).
        guests: party size.
    """
    _check_dates(state, check_in, check_out)
    return [r for r in state["rooms"] if _is_free(state, r["id"], check_in, check_out)
            and _room_type(state, r["id"])["capacity"] >= guests]


@tool()
def room_calendar(state: State, room_id: str) -> list[dict[str, str]]:
    """The confirmed stays of one room (check-in and check-out dates).

    Args:
        room_id: the room number, e.g. "204".
    """
    _find(state, "rooms", room_id)
    return [{"check_in": r["check_in"], "check_out": r["check_out"]}
            for r in state["reservations"] if r["room_id"] == room_id
            and r["status"] == "confirmed"]


@tool()
def get_rates(state: State, room_type: str, check_in: str, check_out: str) -> dict[str, Any]:
    """Nightly rates (EUR, before loyalty discount) of a room type for each night of a stay.

    Args:
        room_type: the type code, e.g. "DLX".
        check_in: arrival date.
        check_out: departure date.
    """
    if room_type not in state["rates"]:
        raise ToolError(f"room type must be one of {sorted(state['rates'])}")
    nights = _check_dates(state, check_in, check_out)
    rates = {n: state["rates"][room_type][n] for n in nights}
    return {"nightly": rates, "total_before_discount": sum(rates.values())}


@tool()
def quote(state: State, room_id: str, check_in: str, check_out: str, guest_id: str) -> int:
    """The price (EUR) a guest would pay for a room and dates, loyalty discount included.

    Args:
        room_id: the room number.
        check_in: arrival date.
        check_out: departure date.
        guest_id: the guest, for their loyalty discount.
    """
    _check_dates(state, check_in, check_out)
    _find(state, "guests", guest_id)
    return _price(state, room_id, check_in, check_out, guest_id)


@tool()
def list_reservations(state: State, guest_id: str) -> list[dict[str, Any]]:
    """A guest's reservations: room, dates, party size, price and status.

    Args:
        guest_id: the guest's id, e.g. "g3".
    """
    return [r for r in state["reservations"] if r["guest_id"] == guest_id]


@tool(writes=True)
def book_room(state: State, guest_id: str, room_id: str, check_in: str, check_out: str,
              guests: int) -> str:
    """Book a room; the price is computed with the guest's loyalty discount.

    Args:
        guest_id: the guest.
        room_id: the room number.
        check_in: arrival date.
        check_out: departure date.
        guests: party size (must not exceed the room's capacity).
    """
    _find(state, "guests", guest_id)
    _check_dates(state, check_in, check_out)
    _fit(state, room_id, guests)
    if not _is_free(state, room_id, check_in, check_out):
        raise ToolError(f"room {room_id} is taken on some of those nights")
    rid = f"RS{state['next_id']}"
    state["next_id"] += 1
    price = _price(state, room_id, check_in, check_out, guest_id)
    state["reservations"].append({"id": rid, "guest_id": guest_id, "room_id": room_id,
                                  "check_in": check_in, "check_out": check_out,
                                  "guests": guests, "total": price, "status": "confirmed"})
    return f"booked {rid}: room {room_id}, {check_in} to {check_out}, {price} EUR"


@tool(writes=True)
def change_reservation(state: State, reservation_id: str, check_in: str | None = None,
                       check_out: str | None = None, room_id: str | None = None,
                       guests: int | None = None) -> str:
    """Change the dates, room or party size of a confirmed reservation; it is repriced.

    Args:
        reservation_id: the reservation.
        check_in: new arrival date (unchanged if omitted).
        check_out: new departure date (unchanged if omitted).
        room_id: new room (unchanged if omitted).
        guests: new party size (unchanged if omitted).
    """
    r = _find(state, "reservations", reservation_id)
    if r["status"] != "confirmed":
        raise ToolError(f"reservation {reservation_id} is {r['status']}")
    ci: str = check_in or r["check_in"]
    co: str = check_out or r["check_out"]
    room: str = room_id or r["room_id"]
    party: int = guests or r["guests"]
    _check_dates(state, ci, co)
    _fit(state, room, party)
    if not _is_free(state, room, ci, co, ignore=r["id"]):
        raise ToolError(f"room {room} is taken on some of those nights")
    r.update({"check_in": ci, "check_out": co, "room_id": room, "guests": party},
             total=_price(state, room, ci, co, r["guest_id"]))
    return f"reservation {reservation_id} now {room}, {ci} to {co}, {r['total']} EUR"


@tool(writes=True)
def cancel_reservation(state: State, reservation_id: str) -> str:
    """Cancel a reservation. Inside the free-cancellation window the first night is charged.

    Args:
        reservation_id: the reservation.
    """
    r = _find(state, "reservations", reservation_id)
    if r["status"] != "confirmed":
        raise ToolError(f"reservation {reservation_id} is already {r['status']}")
    fee = _cancel_fee(state, r)
    r["status"] = "cancelled"
    if fee:
        state["charges"].append({"reservation_id": r["id"], "kind": "late cancellation",
                                 "amount": fee})
    return f"reservation {reservation_id} cancelled" + (f"; fee {fee} EUR" if fee else "")


def _fit(state: State, room_id: str, guests: int) -> None:
    capacity = _room_type(state, room_id)["capacity"]
    if not 1 <= guests <= capacity:
        raise ToolError(f"room {room_id} holds 1 to {capacity} guests")


# ---- task generation --------------------------------------------------------------------


def _c(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


class _Job:
    """A task in the making: what the guest asks, the reference writes and two near misses.

    Near misses are given as candidates, most telling first; `_settle` keeps the first one
    the tools accept and that ends in a state other than the reference's.
    """

    def __init__(self, ask: str, actions: list[dict[str, Any]],
                 broken: list[list[dict[str, Any]]], wrong: list[list[dict[str, Any]]],
                 constraints: int):
        self.ask, self.actions, self.broken, self.wrong = ask, actions, broken, wrong
        self.constraints = constraints


_WRITES = {t.name: t for t in (book_room, change_reservation, cancel_reservation)}


def _outcome(state: State, actions: list[dict[str, Any]]) -> str | None:
    """Digest of the graded tables after `actions`, or None if a tool refuses one of them."""
    from pipelines.general.family import state_digest

    # Only these change under the desk's tools; the rest is shared read-only.
    work = {**state, "reservations": [dict(r) for r in state["reservations"]],
            "charges": list(state["charges"])}
    for a in actions:
        try:
            _WRITES[a["name"]].fn(work, **a["arguments"])
        except ToolError:
            return None
    return state_digest(work, TABLES)


def _settle(state: State, job: _Job) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    target = _outcome(state, job.actions)
    picked = []
    for options in (job.broken, job.wrong):
        ok = [o for o in options if _outcome(state, o) not in (None, target)]
        if not ok:
            return None
        picked.append(ok[0])
    return picked[0], picked[1]


def _offers(state: State, guest_id: str, check_in: str, check_out: str, party: int,
            need: Mapping[str, Any] | None = None, ignore: str | None = None
            ) -> list[tuple[int, int, str]]:
    """(price, room number, room id) of every free room that holds the party, cheapest first."""
    need = need or {}
    out = []
    for room in state["rooms"]:
        if (_room_type(state, room["id"])["capacity"] >= party
                and all(room[k] == v for k, v in need.items())
                and _is_free(state, room["id"], check_in, check_out, ignore)):
            out.append((_price(state, room["id"], check_in, check_out, guest_id),
                        int(room["id"]), room["id"]))
    return sorted(out)


def _need_text(need: Mapping[str, Any]) -> str:
    parts = [f"a {need['view']} view"] if "view" in need else []
    parts += ["step-free access (an accessible room)"] if need.get("accessible") else []
    return (" with " + " and ".join(parts)) if parts else ""


def _book(guest: Mapping[str, Any], room: str, check_in: str, check_out: str, party: int
          ) -> dict[str, Any]:
    return _c("book_room", guest_id=guest["id"], room_id=room, check_in=check_in,
              check_out=check_out, guests=party)


def _task_book(rng: random.Random, state: State, guest: Mapping[str, Any], level: int
               ) -> _Job | None:
    last = len(state["rates"]["STD"])
    length = rng.randint(2, 4)
    start = rng.randrange(0, last - length - 2)
    ci, co = _date(start), _date(start + length)
    party = rng.randint(1, 3 if level != 1 else 2)
    need: dict[str, Any] = {}
    if level:
        need["view"] = rng.choice(["sea", "garden"])
        if rng.random() < 0.3:
            need["accessible"] = True
    book = lambda o, a=ci, b=co: _book(guest, o[2], a, b, party)  # noqa: E731
    if level < 2:
        offers = _offers(state, guest["id"], ci, co, party, need)
        anyway = _offers(state, guest["id"], ci, co, party)
        if not offers or (level and anyway[0] == offers[0]):
            return None
        later = _date(start + length + 1)
        broken = [[book(anyway[0])]] if level else []
        broken += [[book(offers[0], ci, later)]]
        broken += [[book(offers[0]), book(o)] for o in offers[1:2]]
        return _Job(f"Please book the cheapest room for {party} guest(s){_need_text(need)}, "
                    f"checking in on {ci} and out on {co}. If several rooms cost the same, take "
                    "the lowest room number.", [book(offers[0])], broken,
                    [[book(o)] for o in offers[1:2]] + [[book(offers[0], _date(start + 1), co)]],
                    1 + len(need))
    alt = start + rng.choice([1, 2, 3])
    dates = [(_date(start), _date(start + length)), (_date(alt), _date(alt + length))]
    # (price, room number, room id, index into `dates`) of every offer on either date.
    dated = [(*o, i) for i, (a, b) in enumerate(dates)
             for o in _offers(state, guest["id"], a, b, party, need)]
    dated.sort(key=lambda o: (o[0], o[3], o[1]))
    if not dated:
        return None
    pick = lambda o: book(o, *dates[o[3]])  # noqa: E731
    return _Job(f"Please book a {length}-night stay for {party} guest(s){_need_text(need)}, "
                f"checking in on either {dates[0][0]} or {dates[1][0]}, whichever allows the "
                f"lower price; book the cheapest such room. On equal prices prefer the earlier "
                f"check-in, then the lowest room number.", [pick(dated[0])],
                [[pick(o)] for o in dated if o[3] != dated[0][3]][:1],
                [[pick(o)] for o in dated[1:] if o[3] == dated[0][3]][:1]
                + [[pick(o)] for o in dated[1:3]], 2 + len(need))


def _task_modify(rng: random.Random, state: State, guest: Mapping[str, Any], level: int
                 ) -> _Job | None:
    mine = [r for r in state["reservations"] if r["guest_id"] == guest["id"]
            and r["status"] == "confirmed"]
    if not mine:
        return None
    r = rng.choice(mine)
    change = lambda **kw: _c("change_reservation", reservation_id=r["id"], **kw)  # noqa: E731
    nxt = _date_after(r["check_out"])
    if level == 0:
        ci = _date_after(r["check_in"])
        return _Job(f"Please extend my reservation {r['id']} by one night, same room (check-out "
                    f"on {nxt} instead of {r['check_out']}).", [change(check_out=nxt)],
                    [[change(check_out=_date_after(nxt))], [change(check_out=nxt, guests=1)]],
                    [[change(check_in=ci, check_out=nxt)]], 1)
    if level == 1:
        shift = rng.choice([-2, -1, 1, 2, 3])
        start = dt.date.fromisoformat(r["check_in"]) + dt.timedelta(days=shift)
        length = len(_nights(r["check_in"], r["check_out"]))
        ci, co = start.isoformat(), (start + dt.timedelta(days=length)).isoformat()
        if ci < _date(0) or co > _date(len(state["rates"]["STD"])):
            return None
        kind = _find(state, "rooms", r["room_id"])["type"]
        same = [o for o in _offers(state, guest["id"], ci, co, r["guests"], {"type": kind},
                                   r["id"]) if o[2] != r["room_id"]]
        anyway = [o for o in _offers(state, guest["id"], ci, co, r["guests"], None, r["id"])
                  if o[2] != r["room_id"] and o not in same]
        move = lambda o, end=co: change(check_in=ci, check_out=end, room_id=o[2])  # noqa: E731
        ask = (f"Please move my reservation {r['id']} to check in on {ci} and out on {co}. Keep "
               "my room if it is free then; otherwise move me to the cheapest free room of the "
               "same type (lowest number on equal prices).")
        if _is_free(state, r["room_id"], ci, co, r["id"]):
            return _Job(ask, [change(check_in=ci, check_out=co)],
                        [[move(o)] for o in (same + anyway)[:1]],
                        [[change(check_in=ci, check_out=_date_after(co))]], 2)
        if not same:
            return None
        return _Job(ask, [move(same[0])], [[move(o)] for o in anyway[:1]] + [[move(same[-1])]],
                    [[move(o)] for o in same[1:2]] + [[move(same[0], _date_after(co))]], 2)
    fits = _offers(state, guest["id"], r["check_in"], r["check_out"], r["guests"] + 1, None,
                   r["id"])
    if _room_type(state, r["room_id"])["capacity"] > r["guests"] or not fits:
        return None
    return _Job(f"One more person joins my stay {r['id']} ({r['guests'] + 1} guests in total, "
                "same dates). My room is too small, so please move the reservation to the "
                "cheapest free room that holds us all (lowest number on equal prices) and "
                "record the new party size.",
                [change(room_id=fits[0][2], guests=r["guests"] + 1)],
                [[change(room_id=fits[0][2])]],
                [[change(room_id=o[2], guests=r["guests"] + 1)] for o in fits[1:2]]
                + [[change(room_id=fits[0][2], guests=r["guests"] + 2)]], 2)


def _task_cancel(rng: random.Random, state: State, guest: Mapping[str, Any], level: int
                 ) -> _Job | None:
    mine = [r for r in state["reservations"] if r["guest_id"] == guest["id"]
            and r["status"] == "confirmed"]
    if len(mine) < 2:
        return None
    cancel = lambda r: _c("cancel_reservation", reservation_id=r["id"])  # noqa: E731
    if level == 0:
        r, other = rng.sample(mine, 2)
        return _Job(f"Please cancel my reservation for room {r['room_id']} checking in on "
                    f"{r['check_in']}.", [cancel(r)], [[cancel(r), cancel(other)]],
                    [[cancel(other)]], 1)
    if level == 1:
        free = [r for r in mine if not _cancel_fee(state, r)]
        paid = [r for r in mine if _cancel_fee(state, r)]
        if not free or not paid:
            return None
        return _Job("Please cancel every one of my reservations that can still be cancelled "
                    "free of charge, and keep the ones that would cost a cancellation fee.",
                    [*map(cancel, free)], [[*map(cancel, free), cancel(paid[0])]],
                    [[*map(cancel, free[1:]), cancel(paid[0])]], 2)
    pairs = [(a, b) for i, a in enumerate(mine) for b in mine[i + 1:]
             if a["check_in"] < b["check_out"] and b["check_in"] < a["check_out"]]
    if not pairs:
        return None
    # The dearer of each overlapping pair goes; on equal prices the later-made one.
    drop = {max(p, key=lambda r: (r["total"], int(r["id"][2:])))["id"] for p in pairs}
    keep = [r for p in pairs for r in p if r["id"] not in drop]
    gone = [r for r in mine if r["id"] in drop]
    return _Job("I think I was booked twice: please find every pair of my reservations whose "
                "dates overlap and cancel the more expensive one of each pair (the one made later "
                "if they cost the same).", [*map(cancel, gone)],
                [[*map(cancel, gone), cancel(keep[0])]], [[cancel(keep[0])]], 3)


_KINDS = {"book": _task_book, "modify": _task_modify, "cancel": _task_cancel}


@register_family
class HotelBooking(Family[HotelConfig]):
    name = "hotel_booking"
    summary = "Hotel desk: book the cheapest fitting room, change and cancel stays under policy."
    config_model = HotelConfig
    tools = (find_guest, hotel_policy, list_room_types, list_rooms, check_availability,
             room_calendar, get_rates, quote, list_reservations, book_room, change_reservation,
             cancel_reservation)
    variants = (
        Variant("cheapest", ("find_guest", "list_room_types", "list_rooms", "check_availability",
                             "get_rates", "book_room"), ("book", "capacity", "cheapest")),
        Variant("quote-desk", ("find_guest", "list_room_types", "list_rooms", "room_calendar",
                               "quote", "book_room"), ("book", "availability", "features")),
        Variant("modify", ("find_guest", "list_reservations", "list_room_types", "list_rooms",
                           "room_calendar", "get_rates", "change_reservation"),
                ("modify", "same_type", "capacity")),
        Variant("cancellations", ("find_guest", "list_reservations", "hotel_policy",
                                  "cancel_reservation"), ("cancel", "free_window", "overlap")),
        Variant("front-desk", tuple(t.name for t in tools), ("book", "modify", "cancel")),
        Variant("peak-season", ("find_guest", "list_reservations", "hotel_policy",
                                "list_room_types", "check_availability", "quote", "book_room",
                                "cancel_reservation"), ("book", "cancel", "free_window"),
                {"occupancy": 0.55, "weekend_markup_pct": 40, "free_cancellation_days": 8}),
    )

    def generate_state(self, rng: random.Random, config: HotelConfig) -> State:
        kinds = [t[0] for t in _TYPES] + [rng.choice(_TYPES)[0] for _ in range(config.rooms - 5)]
        rooms = []
        for i, code in enumerate(sorted(kinds, key=[t[0] for t in _TYPES].index)):
            rooms.append({"id": f"{1 + i // 4}{i % 4 + 1:02d}", "type": code,
                          "view": rng.choice(_VIEWS), "accessible": rng.random() < 0.25})
        rates: dict[str, dict[str, int]] = {}
        for code, _, _, base in _TYPES:
            rates[code] = {}
            for n in range(config.nights):
                weekend = (FIRST_NIGHT + dt.timedelta(days=n)).weekday() in (4, 5)
                rate = base * (100 + config.weekend_markup_pct * weekend) // 100
                rates[code][_date(n)] = (rate + rng.randint(-3, 3) * 10) // 10 * 10
        names = rng.sample([(f, la) for f in _FIRST for la in _LAST], config.guests)
        state: State = {
            "today": TODAY.isoformat(),
            "room_types": [{"code": c, "name": n, "capacity": cap} for c, n, cap, _ in _TYPES],
            "rooms": rooms, "rates": rates,
            "guests": [{"id": f"g{i + 1}", "name": f"{f} {la}",
                        "email": f"{f.lower()}.{la.lower()}@inn.test",
                        "loyalty": rng.choice(["none", "none", "silver", "gold", "platinum"])}
                       for i, (f, la) in enumerate(names)],
            "reservations": [], "charges": [], "next_id": 101,
            "policy": {"loyalty_discount_pct": {"none": 0, "silver": 5, "gold": 10,
                                                "platinum": 15},
                       "free_cancellation_days": config.free_cancellation_days,
                       "late_cancellation_fee": "the first night's price"},
        }
        _fill(rng, state, config)
        return state

    def generate_task(self, rng: random.Random, state: State, config: HotelConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        kinds = [k for k in variant.constraints if k in _KINDS]
        pairs = [(g, k) for g in state["guests"] for k in kinds]
        rng.shuffle(pairs)
        for g, kind in pairs[:12]:
            job = _KINDS[kind](rng, state, g, level)
            misses = _settle(state, job) if job else None
            if job is None or misses is None:
                continue
            return TaskDraft(
                instruction=f"I am {g['name']} ({g['email']}). {job.ask} Then submit.",
                goal={"email": g["email"], "kind": kind, "actions": job.actions,
                      "broken": misses[0], "wrong": misses[1]},
                knobs={"steps": 2 + len(job.actions), "constraints": job.constraints,
                       "distractors": len(state["rooms"]) - 1},
                hash_tables=TABLES,
            )
        return None

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        return self._script(draft, variant, draft.goal["actions"])

    def _script(self, draft: TaskDraft, variant: Variant, actions: list[Mapping[str, Any]]
                ) -> list[Call]:
        calls = [Call("find_guest", {"email": draft.goal["email"]})]
        calls += [Call(a["name"], a["arguments"]) for a in actions]
        return [*calls, Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        return check_state_hash(final_state, goal)

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        return {"constraint_broken": self._script(draft, variant, g["broken"]),
                "wrong_value": self._script(draft, variant, g["wrong"])}


def _fill(rng: random.Random, state: State, config: HotelConfig) -> None:
    """Existing stays up to the configured occupancy, and a few guests booked twice."""
    target = int(config.occupancy * config.rooms * config.nights)
    booked = 0
    for _ in range(200):
        if booked >= target:
            break
        room = rng.choice(state["rooms"])
        length = rng.randint(1, 4)
        start = rng.randrange(0, config.nights - length + 1)
        ci, co = _date(start), _date(start + length)
        if not _is_free(state, room["id"], ci, co):
            continue
        guest = rng.choice(state["guests"])
        _add(rng, state, guest["id"], room["id"], ci, co)
        booked += length
    for guest in rng.sample(state["guests"], 2):
        mine = [r for r in state["reservations"] if r["guest_id"] == guest["id"]]
        if not mine:
            continue
        r = mine[0]
        twin = next((x["id"] for x in state["rooms"] if x["id"] != r["room_id"]
                     and _is_free(state, x["id"], r["check_in"], r["check_out"])), None)
        if twin:
            _add(rng, state, guest["id"], twin, r["check_in"], r["check_out"])


def _add(rng: random.Random, state: State, guest_id: str, room_id: str, ci: str, co: str
         ) -> None:
    state["reservations"].append({
        "id": f"RS{state['next_id']}", "guest_id": guest_id, "room_id": room_id,
        "check_in": ci, "check_out": co,
        "guests": rng.randint(1, _room_type(state, room_id)["capacity"]),
        "total": _price(state, room_id, ci, co, guest_id), "status": "confirmed"})
    state["next_id"] += 1
