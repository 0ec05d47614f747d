"""Library circulation desk: returns, renewals, checkouts and holds under lending policy.

Books have copies; members have a type (loan period and borrowing limit by type) and
outstanding fines; loans have due dates and renewal counts; holds queue members for a
book. The desk terminal does the mechanics (a copy must be on the shelf to be lent) but
leaves the policy to the librarian: overdue fines per day with a per-item cap, no lending
or renewing to a member whose fines pass the block threshold, borrowing limits, no renewal
of a held, overdue or too-often-renewed loan, returned copies to the first member waiting.

State-graded (the replayed reference's `copies`, `loans`, `members` and `holds` must hash
the same) for desk tasks; answer-graded for fine computations.
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
    Answer,
    Call,
    Family,
    FamilyConfig,
    TaskDraft,
    Variant,
    check_state_hash,
    copy_state,
    register_family,
)
from pipelines.general.tools import State, find_record, tool

_TITLES = [("Dune", "Herbert"), ("Emma", "Austen"), ("Ulysses", "Joyce"),
           ("Beloved", "Morrison"), ("Solaris", "Lem"), ("Middlemarch", "Eliot"),
           ("Kindred", "Butler"), ("Ivanhoe", "Scott"), ("Walden", "Thoreau"),
           ("Rebecca", "du Maurier"), ("Persuasion", "Austen"), ("Neuromancer", "Gibson"),
           ("Frankenstein", "Shelley"), ("Dracula", "Stoker"), ("Ubik", "Dick"),
           ("Hyperion", "Simmons"), ("Stoner", "Williams"), ("Possession", "Byatt")]
_NAMES = ["Ada Moss", "Bo Nair", "Cy Ortiz", "Dee Park", "Eli Quinn", "Fay Rossi", "Gus Sato",
          "Hana Tran", "Ivo Udo", "Jun Vega", "Kai Wolf", "Lea Xu", "Max Young", "Nia Zane"]
_TYPES = ("adult", "child", "staff")
_TODAY = dt.date(2026, 3, 15)
_TABLES = ("copies", "loans", "members", "holds")


class LibraryConfig(FamilyConfig):
    books: int = Field(10, ge=5, le=18)
    members: int = Field(8, ge=4, le=14)
    loans: int = Field(14, ge=4, le=30)
    fine_per_day_cents: int = Field(25, ge=5, le=100)
    fine_cap_cents: int = Field(500, ge=100, le=2000)
    """Largest fine one overdue item can accrue."""
    block_threshold_cents: int = Field(400, ge=0, le=2000)
    """A member whose fines exceed this may not borrow, renew or place holds."""
    max_renewals: int = Field(2, ge=1, le=3)


class FineAnswer(Answer):
    fine_cents: int | None = Field(
        None, description="The amount asked for, in cents (fine questions only).")


# ---- policy -------------------------------------------------------------------------------


def _days(a: str, b: str) -> int:
    return (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days


def _fine(loan: Mapping[str, Any], state: State) -> int:
    """The fine a loan owes if returned today: days overdue times the rate, capped."""
    late = max(0, _days(loan["due"], state["today"]))
    return min(state["policy"]["fine_cap_cents"], late * state["policy"]["fine_per_day_cents"])


def _member(state: State, member_id: str) -> dict[str, Any]:
    return find_record(
        state["members"], member_id, f"no member {member_id!r}; find_member gives ids"
    )


def _blocked(state: State, member: Mapping[str, Any]) -> bool:
    return member["fines_cents"] > state["policy"]["block_threshold_cents"]


def _loans_of(state: State, member_id: str) -> list[dict[str, Any]]:
    return [x for x in state["loans"] if x["member_id"] == member_id]


def _queue(state: State, book_id: str) -> list[dict[str, Any]]:
    return sorted((h for h in state["holds"] if h["book_id"] == book_id),
                  key=lambda h: (h["placed"], h["member_id"]))


# ---- tools ------------------------------------------------------------------------------


def _copy(state: State, copy_id: str) -> dict[str, Any]:
    return find_record(state["copies"], copy_id, f"no copy {copy_id!r}; list_copies shows them")


def _loan(state: State, copy_id: str) -> dict[str, Any]:
    _copy(state, copy_id)
    return find_record(state["loans"], copy_id, f"copy {copy_id} is not on loan", key="copy_id")


@tool()
def find_member(state: State, name: str) -> dict[str, Any]:
    """A member by full name: id, type (adult, child, staff), fines_cents, number of loans.

    Args:
        name: the member's full name, e.g. "Ada Moss".
    """
    for m in state["members"]:
        if m["name"].lower() == name.lower():
            return {**m, "loans": len(_loans_of(state, m["id"]))}
    raise ToolError(f"no member named {name!r}")


@tool()
def search_books(state: State, query: str) -> list[dict[str, str]]:
    """Books whose title or author contains the query (id, title, author).

    Args:
        query: part of a title or an author's name.
    """
    q = query.lower()
    return [b for b in state["books"] if q in b["title"].lower() or q in b["author"].lower()]


@tool()
def list_copies(state: State, book_id: str) -> list[dict[str, Any]]:
    """A book's copies with their status (available, on_loan, on_hold_shelf, returned) and,
    for the hold shelf, the member the copy is held for.

    Args:
        book_id: the book's id, e.g. "b3".
    """
    found = [c for c in state["copies"] if c["book_id"] == book_id]
    if not found:
        raise ToolError(f"no book {book_id!r}")
    return found


@tool()
def list_loans(state: State, member_id: str) -> list[dict[str, Any]]:
    """A member's loans: copy id, book title, due date and times renewed.

    Args:
        member_id: the member's id, e.g. "m2".
    """
    _member(state, member_id)
    titles = {b["id"]: b["title"] for b in state["books"]}
    books = {c["id"]: c["book_id"] for c in state["copies"]}
    return [{**x, "title": titles[books[x["copy_id"]]]} for x in _loans_of(state, member_id)]


@tool()
def get_holds(state: State, book_id: str) -> list[dict[str, str]]:
    """The hold queue of a book, first in line first (by date placed).

    Args:
        book_id: the book's id.
    """
    return _queue(state, book_id)


@tool()
def get_policy(state: State) -> dict[str, Any]:
    """Today's date and the lending policy (loan days and limits by member type, fines…)."""
    return {"today": state["today"], **state["policy"]}


@tool(writes=True)
def checkout_copy(state: State, member_id: str, copy_id: str) -> str:
    """Lend a copy: it must be available, or on the hold shelf for this member.

    The loan is due today plus the member type's loan days.

    Args:
        member_id: the borrowing member.
        copy_id: the copy, e.g. "b3-c1".
    """
    member, copy = _member(state, member_id), _copy(state, copy_id)
    if copy["status"] == "on_hold_shelf" and copy["held_for"] != member_id:
        raise ToolError(f"copy {copy_id} is held for another member")
    if copy["status"] not in ("available", "on_hold_shelf"):
        raise ToolError(f"copy {copy_id} is {copy['status']}")
    days = state["policy"]["loan_days"][member["type"]]
    due = (dt.date.fromisoformat(state["today"]) + dt.timedelta(days=days)).isoformat()
    copy["status"], copy["held_for"] = "on_loan", None
    state["loans"].append({"copy_id": copy_id, "member_id": member_id, "due": due,
                           "renewals": 0})
    return f"{copy_id} lent to {member_id}, due {due}"


@tool(writes=True)
def place_hold(state: State, member_id: str, book_id: str) -> str:
    """Put a member at the end of a book's hold queue.

    Args:
        member_id: the member.
        book_id: the book.
    """
    _member(state, member_id)
    list_copies.fn(state, book_id)
    if any(h["member_id"] == member_id for h in _queue(state, book_id)):
        raise ToolError(f"{member_id} already has a hold on {book_id}")
    state["holds"].append({"book_id": book_id, "member_id": member_id, "placed": state["today"]})
    return f"hold placed for {member_id} on {book_id}"


@tool(writes=True)
def return_copy(state: State, copy_id: str) -> dict[str, Any]:
    """Check a copy in: its loan ends and the copy waits in the returns cart for shelving.

    No fine is charged automatically; use charge_fine.

    Args:
        copy_id: a copy on loan.
    """
    loan = _loan(state, copy_id)
    state["loans"].remove(loan)
    _copy(state, copy_id)["status"] = "returned"
    return {"returned": copy_id, "member_id": loan["member_id"], "was_due": loan["due"],
            "today": state["today"]}


@tool(writes=True)
def shelve_copy(state: State, copy_id: str, hold_for: str | None = None) -> str:
    """Shelve a returned copy: on the hold shelf for a member with a hold, or back as available.

    Args:
        copy_id: a copy in the returns cart.
        hold_for: the member to hold it for (their hold is then fulfilled); omit to shelve it.
    """
    copy = _copy(state, copy_id)
    if copy["status"] != "returned":
        raise ToolError(f"copy {copy_id} is {copy['status']}, not in the returns cart")
    if hold_for is None:
        copy["status"] = "available"
        return f"{copy_id} shelved"
    hold = find_record(
        _queue(state, copy["book_id"]),
        hold_for,
        f"{hold_for} has no hold on {copy['book_id']}",
        key="member_id",
    )
    state["holds"].remove(hold)
    copy["status"], copy["held_for"] = "on_hold_shelf", hold_for
    return f"{copy_id} on the hold shelf for {hold_for}"


@tool(writes=True)
def charge_fine(state: State, member_id: str, amount_cents: int) -> str:
    """Add an overdue fine to a member's account.

    Args:
        member_id: the member.
        amount_cents: the fine, in cents (at least 1).
    """
    if amount_cents < 1:
        raise ToolError("amount_cents must be at least 1")
    member = _member(state, member_id)
    member["fines_cents"] += amount_cents
    return f"{member_id} now owes {member['fines_cents']} cents"


@tool(writes=True)
def renew_loan(state: State, copy_id: str) -> str:
    """Renew a loan: due today plus the member type's loan days; the renewal count grows.

    Args:
        copy_id: a copy on loan.
    """
    loan = _loan(state, copy_id)
    days = state["policy"]["loan_days"][_member(state, loan["member_id"])["type"]]
    loan["due"] = (dt.date.fromisoformat(state["today"]) + dt.timedelta(days=days)).isoformat()
    loan["renewals"] += 1
    return f"{copy_id} renewed, due {loan['due']}"


# ---- the desk procedure ---------------------------------------------------------------------


def _renewable(state: State, loan: Mapping[str, Any]) -> bool:
    book = _copy(state, loan["copy_id"])["book_id"]
    return (not _blocked(state, _member(state, loan["member_id"]))
            and not _queue(state, book)
            and _days(state["today"], loan["due"]) >= 0
            and loan["renewals"] < state["policy"]["max_renewals"])


class _Desk:
    """Serves one member's visit on a private copy of the state, recording the tool calls."""

    def __init__(self, state: State, member_id: str):
        self.sim = copy_state(state)
        self.member_id = member_id
        self.calls: list[Call] = []
        self.refused: list[tuple[str, str]] = []
        self.events = 0
        """Fines charged, holds honoured or placed, requests refused: the task's twists."""

    def _do(self, name: str, **args: Any) -> None:
        self.calls.append(Call(name, args))
        _TOOLS[name].fn(self.sim, **args)

    def give_back(self, copy_id: str) -> None:
        loan = _loan(self.sim, copy_id)
        fine = _fine(loan, self.sim)
        self._do("return_copy", copy_id=copy_id)
        if fine:
            self._do("charge_fine", member_id=loan["member_id"], amount_cents=fine)
        queue = _queue(self.sim, _copy(self.sim, copy_id)["book_id"])
        if queue:
            self._do("shelve_copy", copy_id=copy_id, hold_for=queue[0]["member_id"])
        else:
            self._do("shelve_copy", copy_id=copy_id)
        self.events += bool(fine) + bool(queue)

    def renew(self, copy_id: str) -> None:
        if _renewable(self.sim, _loan(self.sim, copy_id)):
            self._do("renew_loan", copy_id=copy_id)
        else:
            self.refused.append(("renew", copy_id))
            self.events += 1

    def borrow(self, book_id: str) -> None:
        member = _member(self.sim, self.member_id)
        limit = self.sim["policy"]["limits"][member["type"]]
        if _blocked(self.sim, member) or len(_loans_of(self.sim, self.member_id)) >= limit:
            self.refused.append(("borrow", book_id))
            self.events += 1
            return
        copies = sorted((c for c in self.sim["copies"] if c["book_id"] == book_id),
                        key=lambda c: c["id"])
        held = [c for c in copies if c["status"] == "on_hold_shelf"
                and c["held_for"] == self.member_id]
        free = [c for c in copies if c["status"] == "available"]
        if held or free:
            self._do("checkout_copy", member_id=self.member_id, copy_id=(held or free)[0]["id"])
            self.events += bool(held)
        elif not any(h["member_id"] == self.member_id for h in _queue(self.sim, book_id)):
            self._do("place_hold", member_id=self.member_id, book_id=book_id)
            self.events += 1


_TOOLS = {t.name: t for t in (find_member, search_books, list_copies, list_loans, get_holds,
                              get_policy, checkout_copy, place_hold, return_copy, shelve_copy,
                              charge_fine, renew_loan)}


def _rules(state: State, variant: Variant) -> list[str]:
    p = state["policy"]
    if "get_policy" in variant.tools:
        rate, cap, block = ("the policy's fine_per_day_cents", "fine_cap_cents",
                            "block_threshold_cents")
        limits, renewals = "the policy's limits by member type", "max_renewals"
    else:
        rate, cap, block = (f"{p['fine_per_day_cents']} cents", f"{p['fine_cap_cents']} cents",
                            f"{p['block_threshold_cents']} cents")
        limits, renewals = f"limits by type: {p['limits']}", str(p["max_renewals"])
    ops = variant.constraints
    out = []
    if "returns" in ops:
        out.append(f"Return: check the copy in; if it was overdue, charge a fine of {rate} per "
                   f"day late, at most {cap} per item; then, if the book has a hold queue, put "
                   "the copy on the hold shelf for the first member in the queue, otherwise "
                   "shelve it as available.")
    if "renewals" in ops:
        out.append(f"Renew: only if the member's fines are at most {block}, nobody holds the "
                   "book, the loan is not overdue (due today or later) and it was renewed "
                   f"fewer than {renewals} times; otherwise leave the loan as it is.")
    if "borrowing" in ops:
        out.append(f"Borrow: only if the member's fines are at most {block} and they hold "
                   f"fewer loans than their limit ({limits}); otherwise do nothing for that "
                   "book. Lend the copy on the hold shelf for them if there is one, else the "
                   "available copy with the lowest copy id; if no copy can be lent, place a "
                   "hold for them unless they already have one.")
    return out


# ---- the family -------------------------------------------------------------------------

_RETURN_TOOLS = ("find_member", "list_loans", "get_holds", "return_copy", "charge_fine",
                 "shelve_copy")


@register_family
class LibraryCirculation(Family[LibraryConfig]):
    name = "library_circulation"
    summary = "Library desk: returns, renewals, checkouts and fines under lending policy."
    config_model = LibraryConfig
    answer_model = FineAnswer
    submit_description = "Finish the visit (with fine_cents when the task asks for an amount)."
    tools = tuple(_TOOLS.values())
    variants = (
        Variant("checkout", ("find_member", "search_books", "list_copies", "list_loans",
                             "get_policy", "checkout_copy", "place_hold"), ("borrowing",)),
        Variant("returns", _RETURN_TOOLS, ("returns",)),
        Variant("renewals", ("find_member", "list_loans", "get_holds", "get_policy",
                             "renew_loan"), ("renewals",), {"books": 14, "loans": 18}),
        Variant("fines", ("find_member", "list_loans", "get_policy"), ("fine_total",),
                {"loans": 18}),
        Variant("desk", tuple(_TOOLS), ("returns", "renewals", "borrowing")),
        Variant("returns-audit", (*_RETURN_TOOLS, "get_policy"), ("returns",),
                {"members": 14, "books": 16, "loans": 24}),
    )

    def generate_state(self, rng: random.Random, config: LibraryConfig) -> State:
        books = [{"id": f"b{i}", "title": t, "author": a}
                 for i, (t, a) in enumerate(rng.sample(_TITLES, config.books))]
        copies = [{"id": f"{b['id']}-c{k}", "book_id": b["id"], "status": "available",
                   "held_for": None} for b in books for k in range(1, rng.randint(1, 3) + 1)]
        members = [{"id": f"m{i}", "name": name,
                    "type": rng.choices(_TYPES, weights=(6, 3, 2))[0],
                    "fines_cents": rng.choice((0, 0, 0, 25 * rng.randint(1, 30)))}
                   for i, name in enumerate(rng.sample(_NAMES, config.members))]
        state: State = {
            "today": _TODAY.isoformat(), "books": books, "copies": copies, "members": members,
            "loans": [], "holds": [],
            "policy": {"loan_days": {"adult": 21, "child": 14, "staff": 28},
                       "limits": {"adult": 4, "child": 2, "staff": 6},
                       "fine_per_day_cents": config.fine_per_day_cents,
                       "fine_cap_cents": config.fine_cap_cents,
                       "block_threshold_cents": config.block_threshold_cents,
                       "max_renewals": config.max_renewals},
        }
        for copy in rng.sample(copies, min(config.loans, len(copies))):
            due = _TODAY + dt.timedelta(days=rng.randint(-15, 25))
            copy["status"] = "on_loan"
            state["loans"].append({"copy_id": copy["id"], "member_id": rng.choice(members)["id"],
                                   "due": due.isoformat(),
                                   "renewals": rng.randint(0, config.max_renewals)})
        self._holds(rng, state)
        return state

    @staticmethod
    def _holds(rng: random.Random, state: State) -> None:
        """Queues on books with no copy on the shelf, and a few copies waiting on the hold shelf."""
        borrowers = {x["copy_id"]: x["member_id"] for x in state["loans"]}
        for book in state["books"]:
            copies = [c for c in state["copies"] if c["book_id"] == book["id"]]
            if all(c["status"] == "on_loan" for c in copies) and rng.random() < 0.6:
                skip = {borrowers[c["id"]] for c in copies}
                waiting = [m["id"] for m in state["members"] if m["id"] not in skip]
                for k, mid in enumerate(rng.sample(waiting, min(len(waiting),
                                                                rng.randint(1, 2)))):
                    placed = _TODAY - dt.timedelta(days=10 - 3 * k)
                    state["holds"].append({"book_id": book["id"], "member_id": mid,
                                           "placed": placed.isoformat()})
            elif rng.random() < 0.15:
                free = [c for c in copies if c["status"] == "available"]
                if free:
                    free[0]["status"] = "on_hold_shelf"
                    free[0]["held_for"] = rng.choice(state["members"])["id"]

    def generate_task(self, rng: random.Random, state: State, config: LibraryConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        members = list(state["members"])
        rng.shuffle(members)
        make = self._fine_task if "fine_total" in variant.constraints else self._visit_task
        for member in members:
            draft = make(rng, state, variant, level, member)
            if draft is not None:
                return draft
        return None

    def _visit_task(self, rng: random.Random, state: State, variant: Variant, level: int,
                    member: dict[str, Any]) -> TaskDraft | None:
        ops, mid = variant.constraints, member["id"]
        loans = sorted(x["copy_id"] for x in _loans_of(state, mid))
        rng.shuffle(loans)
        returns: list[str] = []
        renews: list[str] = []
        borrows: list[str] = []
        if "returns" in ops and "renewals" in ops:
            returns = loans[:(1, 1, 2)[level]]
            renews = loans[len(returns):len(returns) + (0, 1, 2)[level]]
        elif "returns" in ops:
            returns = loans[:(1, 2, len(loans))[level]]
        elif "renewals" in ops:
            if level == 0:
                # The easy case is a loan that can be renewed: try those first.
                loans.sort(key=lambda c: not _renewable(state, _loan(state, c)))
            renews = loans[:(1, len(loans), len(loans))[level]]
        if "borrowing" in ops:
            mine = {c["book_id"] for c in state["copies"] if c["id"] in loans}
            shelf = sorted(b["id"] for b in state["books"] if b["id"] not in mine)
            want = (1, 1, 2)[level] if returns or renews else (1, 2, 3)[level]
            borrows = rng.sample(shelf, min(want, len(shelf)))
        desk = _Desk(state, mid)
        for copy_id in returns:
            desk.give_back(copy_id)
        for copy_id in renews:
            desk.renew(copy_id)
        for book_id in borrows:
            desk.borrow(book_id)
        # Harder levels need twists: a fine, a hold, a refusal.
        if not desk.calls or desk.events < level:
            return None
        return TaskDraft(
            instruction=self._visit_text(state, variant, member, returns, renews, borrows,
                                         level),
            goal={"member": mid, "returns": returns, "renews": renews, "borrows": borrows},
            knobs={"steps": len(desk.calls), "constraints": len(_rules(state, variant)),
                   "distractors": desk.events},
            hash_tables=_TABLES,
        )

    @staticmethod
    def _visit_text(state: State, variant: Variant, member: Mapping[str, Any],
                    returns: list[str], renews: list[str], borrows: list[str],
                    level: int) -> str:
        books = {b["id"]: b for b in state["books"]}
        asks = []
        if returns:
            asks.append(f"they return copies {', '.join(returns)}")
        if renews:
            every = "renewals" in variant.constraints and "returns" not in variant.constraints
            asks.append("they ask to renew all of their loans" if every and level > 0
                        else f"they ask to renew their loans of copies {', '.join(renews)}")
        if borrows:
            titles = ", ".join(f"\"{books[b]['title']}\" by {books[b]['author']}"
                               for b in borrows)
            asks.append(f"they want to borrow, in this order: {titles}")
        rules = _rules(state, variant)
        return (f"{member['name']} is at the circulation desk (today is {state['today']}): "
                + "; ".join(asks) + ". Serve them by the lending policy, handling returns "
                "first, then renewals, then borrowing:\n"
                + "\n".join(f"- {r}" for r in rules)
                + "\nDo nothing the rules do not call for. Then submit.")

    def _fine_task(self, rng: random.Random, state: State, variant: Variant, level: int,
                   member: dict[str, Any]) -> TaskDraft | None:
        loans = _loans_of(state, member["id"])
        fines = [_fine(x, state) for x in loans]
        cap = state["policy"]["fine_cap_cents"]
        fits = (
            0 < len(loans) <= 2 and any(fines),
            len(loans) >= 2 and any(fines) and not all(fines),
            len(loans) >= 2 and any(fines) and (member["fines_cents"] > 0 or cap in fines
                                 or sum(1 for f in fines if f) >= 2),
        )[level]
        if not fits:
            return None
        late = [max(0, _days(x["due"], state["today"])) for x in loans]
        rate = state["policy"]["fine_per_day_cents"]
        total = member["fines_cents"] + sum(fines)
        return TaskDraft(
            instruction=(
                f"{member['name']} asks: if they returned every loan they hold today, how "
                "much would they owe in total, counting their current fines plus the overdue "
                "fine on each loan? An overdue item's fine is fine_per_day_cents for each day "
                "past its due date, capped at fine_cap_cents per item (see get_policy; today's "
                "date is there too). Change nothing; submit the amount as fine_cents."),
            goal={"member": member["id"], "fine_cents": total,
                  "uncapped": member["fines_cents"] + sum(d * rate for d in late),
                  "late_by_one": member["fines_cents"] + sum(
                      min(cap, (d + 1) * rate) for d in late if d),
                  "signed": member["fines_cents"] + sum(
                      min(cap, _days(x["due"], state["today"]) * rate) for x in loans)},
            knobs={"steps": 3, "constraints": 2 + level, "distractors": len(loans)
                   - sum(1 for f in fines if f)},
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        member = _member(state, g["member"])
        calls = [Call("find_member", {"name": member["name"]}),
                 Call("list_loans", {"member_id": member["id"]}), Call("get_policy")]
        if "fine_cents" in g:
            return [*calls, Call("submit", {"fine_cents": g["fine_cents"]})]
        books = {c["id"]: c["book_id"] for c in state["copies"]}
        for book_id in [books[c] for c in g["returns"] + g["renews"]] + g["borrows"]:
            calls += [Call("get_holds", {"book_id": book_id}),
                      Call("list_copies", {"book_id": book_id})]
        titles = {b["id"]: b["title"] for b in state["books"]}
        calls += [Call("search_books", {"query": titles[b]}) for b in g["borrows"]]
        calls = [c for c in calls if c.name in variant.tools]
        return [*calls, *self._desk(state, g).calls, Call("submit")]

    @staticmethod
    def _desk(state: State, goal: Mapping[str, Any]) -> _Desk:
        desk = _Desk(state, goal["member"])
        for copy_id in goal["returns"]:
            desk.give_back(copy_id)
        for copy_id in goal["renews"]:
            desk.renew(copy_id)
        for book_id in goal["borrows"]:
            desk.borrow(book_id)
        return desk

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        if "fine_cents" not in goal:
            return check_state_hash(final_state, goal)
        got = (answer or {}).get("fine_cents")
        ok = got == goal["fine_cents"]
        return Verdict(reward=float(ok), components={"amount": float(ok)},
                       reason="amount is right" if ok
                       else f"submitted {got}, expected {goal['fine_cents']}")

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        if "fine_cents" in g:
            right, rate = g["fine_cents"], state["policy"]["fine_per_day_cents"]
            # A rule dropped: the cap, the current fines, or "only overdue days count".
            dropped = (g["uncapped"], right - _member(state, g["member"])["fines_cents"],
                       g["signed"])
            broken = next((v for v in dropped if v != right),
                          right + state["policy"]["fine_cap_cents"])
            wrong = g["late_by_one"] if g["late_by_one"] != right else right - rate
            return {"constraint_broken": [Call("submit", {"fine_cents": broken})],
                    "wrong_value": [Call("submit", {"fine_cents": wrong})]}
        desk = self._desk(state, g)
        head = [c for c in reference[:-1] if not _TOOLS[c.name].writes]
        return {"constraint_broken": [*head, *self._break_rule(desk), Call("submit")],
                "wrong_value": [*head, *self._wrong_record(state, desk.calls), Call("submit")]}

    @staticmethod
    def _break_rule(desk: _Desk) -> list[Call]:
        """The visit with one policy rule ignored."""
        calls = list(desk.calls)
        for kind, key in desk.refused:
            if kind == "renew":
                return [*calls, Call("renew_loan", {"copy_id": key})]
            free = [c for c in desk.sim["copies"] if c["book_id"] == key
                    and c["status"] == "available"]
            if free:
                return [*calls, Call("checkout_copy", {"member_id": desk.member_id,
                                                       "copy_id": free[0]["id"]})]
        for i, c in enumerate(calls):
            if c.name == "charge_fine":
                return calls[:i] + calls[i + 1:]
            if c.name == "shelve_copy" and "hold_for" in c.arguments:
                return [*calls[:i], Call("shelve_copy", {"copy_id": c.arguments["copy_id"]}),
                        *calls[i + 1:]]
        return calls[1:]

    @staticmethod
    def _wrong_record(state: State, calls: list[Call]) -> list[Call]:
        """The visit with a fine off by a day, or its first action on another copy or book."""
        out = list(calls)
        for i, c in enumerate(out):
            if c.name == "charge_fine":
                rate = state["policy"]["fine_per_day_cents"]
                amount = c.arguments["amount_cents"]
                out[i] = Call(c.name, {**c.arguments, "amount_cents": amount - rate
                                       if amount > rate else amount + rate})
                return out
        first = out[0]
        key = "copy_id" if "copy_id" in first.arguments else "book_id"
        pool = ([x["copy_id"] for x in state["loans"]] if first.name in ("renew_loan",
                                                                          "return_copy")
                else [c["id"] for c in state["copies"]] if key == "copy_id"
                else [b["id"] for b in state["books"]])
        other = next(k for k in pool if k != first.arguments[key])
        out[0] = Call(first.name, {**first.arguments, key: other})
        return out
