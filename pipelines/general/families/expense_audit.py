"""Expense audit: flag line items that break the travel policy and decide the reports.

The state holds submitted expense reports (a trip city and dates) with their line items
(airfare, lodging, meals, taxis; some in foreign currency; some without a receipt), the
travel policy (receipt threshold, airfare pre-approval threshold), per-diem caps per city
(lodging per night, meals per day) and the pre-approvals on file. The agent flags each
violating item with the first reason that applies (alcohol, no_preapproval, missing_receipt,
over_cap) and, in some variants, approves, rejects or returns each report.

State-graded: the reference run is replayed and the agent's final `items` and `reports`
tables must hash to the same value.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Literal

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

REASONS = ("alcohol", "no_preapproval", "missing_receipt", "over_cap")
_CITIES = {"Boston": (24_000, 8_500), "Denver": (19_000, 7_000), "Austin": (18_000, 7_500),
           "Seattle": (23_000, 8_000), "Chicago": (21_000, 7_500), "Miami": (20_000, 7_000)}
_RATES = {"EUR": 1.0842, "GBP": 1.2671, "CAD": 0.7315}
_ALCOHOL = ["Dinner with wine pairing", "Hotel bar tab", "Craft beer tasting", "Cocktails "
            "with client", "Bottle of champagne"]
_MEALS = ["Breakfast at hotel cafe", "Lunch, sandwich shop", "Dinner with client team",
          "Working lunch", "Airport dinner", "Coffee and pastry", "Room service dinner"]
_FIRST = list(FIRST_NAMES[:8])
_LAST = list(LAST_NAMES[:6])
Reason = Literal["alcohol", "no_preapproval", "missing_receipt", "over_cap"]
_RULES = [
    "Flag each violating line item once, with the first reason that applies in this order:",
    "alcohol: its description mentions wine, beer, cocktails, champagne or a bar.",
    "no_preapproval: an airfare above airfare_preapproval_over_cents (in USD) with no "
    "pre-approval for that employee and the report's city whose max_cents covers the fare.",
    "missing_receipt: no receipt and an amount above receipt_required_over_cents (in USD).",
    "over_cap: a lodging item above the city's lodging cap per night; or, on a day where the "
    "meals items not flagged for another reason total more than the city's daily meals cap, "
    "every one of those meals items.",
    "Amounts in another currency are converted to USD at the exchange rates, rounded to the "
    "cent, before any comparison.",
]
_DECISIONS = ("Approve a report with no flagged item; reject one with any item flagged alcohol "
              "or no_preapproval; return any other report to the employee.")


class ExpenseConfig(FamilyConfig):
    reports: int = Field(4, ge=2, le=8)
    receipt_threshold_cents: int = Field(7_500, ge=1_000, le=50_000)
    preapproval_over_cents: int = Field(50_000, ge=10_000, le=200_000)
    foreign_share: float = Field(0.0, ge=0.0, le=0.6)
    inline_preapprovals: bool = True
    """Show the matching pre-approvals inside each report (else look them up)."""


# ---- tools ---------------------------------------------------------------------------------


def _report(state: State, report_id: str) -> dict[str, Any]:
    return find_record(state["reports"], report_id, f"no report {report_id!r}; ids look like R02")


def _item(state: State, item_id: str) -> dict[str, Any]:
    return find_record(state["items"], item_id, f"no line item {item_id!r}; ids look like X014")


def _preapprovals(state: State, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [p for p in state["preapprovals"]
            if p["employee"] == report["employee"] and p["city"] == report["city"]]


@tool()
def list_reports(state: State, status: str | None = None) -> list[dict[str, Any]]:
    """List expense reports (id, employee, city, dates, status), optionally by status.

    Args:
        status: submitted, approved, rejected or returned; all when omitted.
    """
    return [r for r in state["reports"] if status is None or r["status"] == status]


@tool()
def get_report(state: State, report_id: str) -> dict[str, Any]:
    """One report with all its line items (and, where shown, its matching pre-approvals).

    Args:
        report_id: the report id, e.g. "R02".
    """
    report = _report(state, report_id)
    out = {**report, "items": [i for i in state["items"] if i["report_id"] == report_id]}
    if state["inline_preapprovals"]:
        out["preapprovals"] = _preapprovals(state, report)
    return out


@tool()
def list_items(state: State, report_id: str) -> list[dict[str, Any]]:
    """The line items of one report (amounts in the item's currency).

    Args:
        report_id: the report id.
    """
    _report(state, report_id)
    return [i for i in state["items"] if i["report_id"] == report_id]


@tool()
def get_policy(state: State) -> dict[str, Any]:
    """The travel policy: thresholds and the rules for flagging items and deciding reports."""
    return {**state["policy"], "flagging": _RULES, "decisions": _DECISIONS}


@tool()
def per_diem_rates(state: State, city: str) -> dict[str, Any]:
    """Per-diem caps of one city in USD cents: lodging per night and meals per day.

    Args:
        city: the trip city, e.g. "Denver".
    """
    if city not in state["per_diem"]:
        raise ToolError(f"no per-diem rates for {city!r}; cities: {', '.join(state['per_diem'])}")
    return {"city": city, **state["per_diem"][city]}


@tool()
def list_preapprovals(state: State, employee: str) -> list[dict[str, Any]]:
    """Airfare pre-approvals on file for one employee (city and maximum fare in USD cents).

    Args:
        employee: the employee's full name, as on the report.
    """
    return [p for p in state["preapprovals"] if p["employee"] == employee]


@tool()
def exchange_rates(state: State) -> dict[str, float]:
    """USD per one unit of each foreign currency used in the reports."""
    return state["rates"]


@tool(writes=True)
def flag_item(state: State, item_id: str, reason: Reason) -> str:
    """Flag a line item as violating the policy, with the one reason that applies first.

    Args:
        item_id: the line item id, e.g. "X014".
        reason: alcohol, no_preapproval, missing_receipt or over_cap.
    """
    item = _item(state, item_id)
    if _report(state, item["report_id"])["status"] != "submitted":
        raise ToolError(f"report {item['report_id']} is already decided")
    if item["flag"] is not None:
        raise ToolError(f"{item_id} is already flagged as {item['flag']}; unflag it first")
    item["flag"] = reason
    return f"{item_id} flagged: {reason}"


@tool(writes=True)
def unflag_item(state: State, item_id: str) -> str:
    """Remove the flag of a line item.

    Args:
        item_id: the line item id.
    """
    item = _item(state, item_id)
    if item["flag"] is None:
        raise ToolError(f"{item_id} is not flagged")
    if _report(state, item["report_id"])["status"] != "submitted":
        raise ToolError(f"report {item['report_id']} is already decided")
    item["flag"] = None
    return f"{item_id} unflagged"


def _decide(state: State, report_id: str, status: str) -> str:
    report = _report(state, report_id)
    if report["status"] != "submitted":
        raise ToolError(f"report {report_id} is already {report['status']}")
    report["status"] = status
    return f"report {report_id} {status}"


@tool(writes=True)
def approve_report(state: State, report_id: str) -> str:
    """Approve a submitted report for reimbursement.

    Args:
        report_id: the report id.
    """
    return _decide(state, report_id, "approved")


@tool(writes=True)
def reject_report(state: State, report_id: str) -> str:
    """Reject a submitted report.

    Args:
        report_id: the report id.
    """
    return _decide(state, report_id, "rejected")


@tool(writes=True)
def return_report(state: State, report_id: str) -> str:
    """Return a submitted report to the employee for correction.

    Args:
        report_id: the report id.
    """
    return _decide(state, report_id, "returned")


# ---- the policy as code --------------------------------------------------------------------

_ALCOHOL_WORDS = ("wine", "beer", "cocktails", "champagne", "bar")


def _usd(state: State, item: Mapping[str, Any]) -> int:
    if item["currency"] == "USD":
        return item["amount_cents"]
    return round(item["amount_cents"] * state["rates"][item["currency"]])


def _audit(state: State, report_id: str) -> dict[str, str]:
    """Item id -> the first reason that applies, for every violating item of the report."""
    report = _report(state, report_id)
    policy, caps = state["policy"], state["per_diem"][report["city"]]
    fares_ok = [p["max_cents"] for p in _preapprovals(state, report)]
    items = [i for i in state["items"] if i["report_id"] == report_id]
    flags: dict[str, str] = {}
    for it in items:
        usd = _usd(state, it)
        if any(w in it["description"].lower().split() for w in _ALCOHOL_WORDS):
            flags[it["id"]] = "alcohol"
        elif it["category"] == "airfare" and usd > policy["airfare_preapproval_over_cents"] \
                and not any(m >= usd for m in fares_ok):
            flags[it["id"]] = "no_preapproval"
        elif not it["receipt"] and usd > policy["receipt_required_over_cents"]:
            flags[it["id"]] = "missing_receipt"
        elif it["category"] == "lodging" and usd > caps["lodging_cents"]:
            flags[it["id"]] = "over_cap"
    meals: dict[str, list[dict[str, Any]]] = {}
    for it in items:
        if it["category"] == "meals" and it["id"] not in flags:
            meals.setdefault(it["date"], []).append(it)
    for day_items in meals.values():
        if sum(_usd(state, it) for it in day_items) > caps["meals_cents"]:
            flags.update({it["id"]: "over_cap" for it in day_items})
    return flags


def _decision(flags: Mapping[str, str]) -> str:
    if not flags:
        return "approved"
    if any(r in ("alcohol", "no_preapproval") for r in flags.values()):
        return "rejected"
    return "returned"


# ---- generation ----------------------------------------------------------------------------


def _trip_items(rng: random.Random, config: ExpenseConfig, report: dict[str, Any],
                caps: Mapping[str, int], start: date, nights: int) -> list[dict[str, Any]]:
    def item(day: int, category: str, text: str, usd: int, receipt: bool = True
             ) -> dict[str, Any]:
        currency = "USD"
        if category != "airfare" and rng.random() < config.foreign_share:
            currency = rng.choice(sorted(_RATES))
        amount = usd if currency == "USD" else round(usd / _RATES[currency])
        return {"report_id": report["id"], "date": (start + timedelta(days=day)).isoformat(),
                "category": category, "description": text, "amount_cents": amount,
                "currency": currency, "receipt": receipt and rng.random() > 0.15, "flag": None}

    city = report["city"]
    out = [item(0, "airfare", f"Flight to {city}", rng.randrange(20_000, 110_000, 100))]
    for n in range(nights):
        out.append(item(n, "lodging", f"Hotel {city}, night {n + 1}",
                        caps["lodging_cents"] + rng.choice([-4_000, -2_500, -1_500, 0, 2_000])))
    for day in range(nights + 1):
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.05:
                out.append(item(day, "meals", rng.choice(_ALCOHOL), rng.randrange(1_800, 9_000)))
            else:
                out.append(item(day, "meals", rng.choice(_MEALS), rng.randrange(600, 3_600)))
        if rng.random() < 0.5:
            out.append(item(day, "taxi", "Taxi to client site", rng.randrange(1_200, 9_800),
                            receipt=rng.random() > 0.3))
    return out


# ---- the family ----------------------------------------------------------------------------

_DECIDE = ("approve_report", "reject_report", "return_report")


@register_family
class ExpenseAudit(Family[ExpenseConfig]):
    name = "expense_audit"
    summary = "Audit expense reports against a travel policy: flag items, decide reports."
    config_model = ExpenseConfig
    tools = (list_reports, get_report, list_items, get_policy, per_diem_rates, list_preapprovals,
             exchange_rates, flag_item, unflag_item, approve_report, reject_report, return_report)
    variants = (
        Variant("flag-items", ("get_report", "get_policy", "per_diem_rates", "flag_item"),
                ("reason_precedence", "per_diem", "receipts")),
        Variant("flag-and-correct", ("list_reports", "list_items", "get_policy", "per_diem_rates",
                                     "list_preapprovals", "flag_item", "unflag_item"),
                ("reason_precedence", "per_diem", "receipts", "preapproval_lookup"),
                {"inline_preapprovals": False}),
        Variant("decide-reports", ("get_report", "get_policy", "per_diem_rates", "flag_item",
                                   *_DECIDE),
                ("reason_precedence", "per_diem", "receipts", "report_decision")),
        Variant("preapproval-lookup", ("get_report", "get_policy", "per_diem_rates",
                                       "list_preapprovals", "flag_item"),
                ("reason_precedence", "per_diem", "preapproval_lookup"),
                {"inline_preapprovals": False, "preapproval_over_cents": 30_000}),
        Variant("foreign-currency", ("get_report", "get_policy", "per_diem_rates",
                                     "exchange_rates", "flag_item", "unflag_item"),
                ("reason_precedence", "per_diem", "receipts", "currency_conversion"),
                {"foreign_share": 0.4}),
        Variant("audit-queue", ("list_reports", "list_items", "get_policy", "per_diem_rates",
                                "list_preapprovals", "exchange_rates", "flag_item", *_DECIDE),
                ("reason_precedence", "per_diem", "receipts", "preapproval_lookup",
                 "currency_conversion", "report_decision"),
                {"reports": 5, "foreign_share": 0.25, "inline_preapprovals": False}),
    )

    def generate_state(self, rng: random.Random, config: ExpenseConfig) -> State:
        cities = rng.sample(sorted(_CITIES), 4)
        per_diem = {c: {"lodging_cents": _CITIES[c][0], "meals_cents": _CITIES[c][1]}
                    for c in cities}
        staff = [f"{f} {la}" for f, la in rng.sample([(f, la) for f in _FIRST for la in _LAST], 3)]
        reports, items, approvals = [], [], []
        for r in range(config.reports):
            start = date(2025, 4, 1) + timedelta(days=rng.randrange(40))
            nights = rng.randint(1, 3)
            report = {"id": f"R{r + 1:02d}", "employee": rng.choice(staff),
                      "city": rng.choice(cities), "start": start.isoformat(),
                      "end": (start + timedelta(days=nights)).isoformat(), "status": "submitted"}
            lines = _trip_items(rng, config, report, per_diem[report["city"]], start, nights)
            fare = lines[0]["amount_cents"]
            if fare > config.preapproval_over_cents and rng.random() < 0.6:
                approvals.append({"employee": report["employee"], "city": report["city"],
                                  "max_cents": fare + rng.choice([-5_000, 0, 10_000, 25_000])})
            if rng.random() < 0.4:  # on file for the same person, but another city
                approvals.append({"employee": report["employee"],
                                  "city": rng.choice([c for c in cities if c != report["city"]]),
                                  "max_cents": 150_000})
            reports.append(report)
            items += lines
        return {
            "reports": reports,
            "items": [{"id": f"X{i + 1:03d}", **it} for i, it in enumerate(items)],
            "preapprovals": [{"id": f"PA-{i + 1}", **p} for i, p in enumerate(approvals)],
            "per_diem": per_diem,
            "rates": dict(_RATES) if config.foreign_share > 0 else {},
            "policy": {"receipt_required_over_cents": config.receipt_threshold_cents,
                       "airfare_preapproval_over_cents": config.preapproval_over_cents},
            "inline_preapprovals": config.inline_preapprovals,
        }

    def generate_task(self, rng: random.Random, state: State, config: ExpenseConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        flagged = {r["id"]: _audit(state, r["id"]) for r in state["reports"]}
        dirty = [r for r, f in flagged.items() if f]
        if not dirty:
            return None
        first = rng.choice(dirty)
        rest = [r for r in flagged if r != first]
        chosen = sorted([first, *rng.sample(rest, min(len(rest), 2 * level))])
        decide = "approve_report" in variant.tools
        flags = {i: reason for r in chosen for i, reason in sorted(flagged[r].items())}
        return TaskDraft(
            instruction=_instruction(chosen, decide),
            goal={"reports": chosen, "flags": flags, "decide": decide,
                  "decisions": {r: _decision(flagged[r]) for r in chosen} if decide else {}},
            knobs={"steps": 2 + 2 * len(chosen) + len(flags),
                   "constraints": len(variant.constraints),
                   "distractors": sum(i["report_id"] in chosen for i in state["items"])
                   - len(flags)},
            hash_tables=("items", "reports"),
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        tools = set(variant.tools)
        calls = [Call("get_policy")]
        if "list_reports" in tools:
            calls.append(Call("list_reports", {"status": "submitted"}))
        if "exchange_rates" in tools:
            calls.append(Call("exchange_rates"))
        reports = {r["id"]: r for r in state["reports"]}
        for rid in g["reports"]:
            calls.append(Call("get_report" if "get_report" in tools else "list_items",
                              {"report_id": rid}))
            calls.append(Call("per_diem_rates", {"city": reports[rid]["city"]}))
            if "list_preapprovals" in tools:
                calls.append(Call("list_preapprovals", {"employee": reports[rid]["employee"]}))
        calls += [Call("flag_item", {"item_id": i, "reason": r}) for i, r in g["flags"].items()]
        calls += [Call(f"{_VERB[d]}_report", {"report_id": r}) for r, d in g["decisions"].items()]
        return [*calls, Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        return check_state_hash(final_state, goal)

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        body, tail = reference[:-1], [Call("submit")]
        first = next(i for i, c in enumerate(body) if c.name == "flag_item")
        clean = [i for i in state["items"]
                 if i["report_id"] in g["reports"] and i["id"] not in g["flags"]]
        small = next((i for i in clean if not i["receipt"]), None)
        if small is not None:  # under the receipt threshold, a missing receipt is fine
            # Flagged before any decision: a decided report refuses new flags.
            broken = [*body[:first], Call("flag_item", {"item_id": small["id"],
                                                        "reason": "missing_receipt"}),
                      *body[first:], *tail]
        elif g["decide"]:  # flags ignored when deciding
            rid = next(r for r, d in g["decisions"].items() if d != "approved")
            broken = [c if c.arguments.get("report_id") != rid or c.name == "get_report"
                      or c.name == "list_items" else Call("approve_report", {"report_id": rid})
                      for c in body] + tail
        else:
            last = max(i for i, c in enumerate(body) if c.name == "flag_item")
            broken = [*body[:last], *body[last + 1:], *tail]
        flag = body[first].arguments
        decoy = clean[0]["id"] if clean else flag["item_id"]
        reason = flag["reason"] if clean else next(r for r in REASONS if r != flag["reason"])
        wrong = list(body)
        wrong[first] = Call("flag_item", {"item_id": decoy, "reason": reason})
        return {"constraint_broken": broken, "wrong_value": [*wrong, *tail]}


_VERB = {"approved": "approve", "rejected": "reject", "returned": "return"}


def _instruction(reports: list[str], decide: bool) -> str:
    which = f"report {reports[0]}" if len(reports) == 1 else f"reports {', '.join(reports)}"
    text = (f"Audit expense {which} against the travel policy (get_policy) and the per-diem "
            "caps of each trip city. " + " ".join(_RULES) + " Flag nothing else.")
    if decide:
        text += " Then decide each audited report: " + _DECISIONS
    return text + " Submit when done."
