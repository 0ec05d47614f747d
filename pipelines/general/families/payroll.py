"""Payroll run: net pay from timesheets, overtime rules, tax brackets and deductions.

The state is one two-week pay period of a small company: hourly and salaried employees,
timesheet entries with planted anomalies (pending or rejected entries, duplicates, entries
dated outside the period, impossible hours), an overtime rule (weekly over 40 h, daily over
8 h, or daily with double time over 12 h), a progressive tax table per period, a pre-tax
retirement contribution and post-tax deductions (fixed amounts, and in some variants a
garnishment as a percentage of disposable pay). All money is integer cents.

Graded exactly: either the submitted net pay per employee (answer variants), or the hash of
the payslips (and voided timesheet entries) after the reference run is replayed.
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
    Answer,
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
_START = date(2025, 5, 5)  # a Monday; the period is two Monday-to-Sunday weeks
_MAX_HOURS = 16
_OVERTIME = {
    "weekly40": "Hours beyond 40 in a Monday-to-Sunday week are paid at 1.5x the hourly rate.",
    "daily8": "Hours beyond 8 on one calendar day (all of that day's entries together) are "
              "paid at 1.5x the hourly rate.",
    "daily12_double": "On one calendar day (all of that day's entries together) hours beyond 8 "
                      "and up to 12 are paid at 1.5x, and hours beyond 12 at 2x the hourly rate.",
}


class PayrollConfig(FamilyConfig):
    employees: int = Field(7, ge=4, le=12)
    salaried_share: float = Field(0.3, ge=0.0, le=0.6)
    overtime: Literal["weekly40", "daily8", "daily12_double"] = "weekly40"
    anomalies: int = Field(5, ge=1, le=12)
    """Timesheet entries that must not be paid as they stand."""
    garnishments: bool = False


class PayrollAnswer(Answer):
    net_pay_cents: list[int] = Field(
        default_factory=list,
        description="net pay in cents of each employee asked about, in the order asked")


def _policy_text(overtime: str) -> dict[str, Any]:
    end = _START + timedelta(days=13)
    return {
        "period": {"start": _START.isoformat(), "end": end.isoformat()},
        "timesheets": [
            "Only entries with status 'approved' and dated inside the period are paid.",
            f"An entry of more than {_MAX_HOURS} hours is a keying error and is not paid.",
            "An approved entry with the same employee, date and hours as an approved entry with "
            "a lower id is a duplicate and is not paid.",
        ],
        "overtime": _OVERTIME[overtime],
        "salaried": "Salaried employees are exempt from overtime and ignore timesheets: gross "
                    "pay is the annual salary / 26, rounded down to the cent.",
        "retirement": "Pre-tax: retirement_pct of gross pay, rounded down to the cent.",
        "tax": "Tax is progressive on taxable pay (gross minus retirement) using the tax table "
               "per pay period; the total is rounded down to the cent.",
        "deductions": "After tax: fixed deductions in cents; a garnishment takes its pct of "
                      "disposable pay (gross - retirement - tax), rounded down to the cent.",
        "net": "net = gross - retirement - tax - all after-tax deductions.",
    }


# ---- tools ---------------------------------------------------------------------------------


def _employee(state: State, employee_id: str) -> dict[str, Any]:
    return find_record(
        state["employees"], employee_id, f"no employee {employee_id!r}; ids look like E03"
    )


@tool()
def list_employees(state: State) -> list[dict[str, Any]]:
    """List employees: id, name, pay type, and hourly rate or annual salary (no deductions)."""
    return [{k: v for k, v in e.items() if k not in ("retirement_pct", "deductions")}
            for e in state["employees"]]


@tool()
def get_employee(state: State, employee_id: str) -> dict[str, Any]:
    """One employee's full record, including retirement_pct and after-tax deductions.

    Args:
        employee_id: the employee id, e.g. "E03".
    """
    return _employee(state, employee_id)


@tool()
def get_deductions(state: State, employee_id: str) -> dict[str, Any]:
    """An employee's retirement_pct and after-tax deductions.

    Args:
        employee_id: the employee id, e.g. "E03".
    """
    e = _employee(state, employee_id)
    return {"employee_id": employee_id, "retirement_pct": e["retirement_pct"],
            "deductions": e["deductions"]}


@tool()
def list_timesheets(state: State, employee_id: str) -> list[dict[str, Any]]:
    """Every timesheet entry of an employee (id, date, hours, status), whatever its status.

    Args:
        employee_id: the employee id.
    """
    _employee(state, employee_id)
    return [t for t in state["timesheets"] if t["employee_id"] == employee_id]


@tool()
def payroll_policy(state: State) -> dict[str, Any]:
    """The pay period and the rules of this payroll run (timesheets, overtime, tax, deductions)."""
    return state["policy"]


@tool()
def tax_table(state: State) -> list[dict[str, Any]]:
    """Tax brackets per pay period: each rate applies to taxable cents above the previous bound."""
    return state["tax_brackets"]


@tool(writes=True)
def create_payslip(state: State, employee_id: str, gross_cents: int, retirement_cents: int,
                   tax_cents: int, deductions_cents: int, net_cents: int) -> str:
    """Issue this period's payslip of one employee. The parts must add up to the net.

    Args:
        employee_id: the employee id.
        gross_cents: gross pay.
        retirement_cents: the pre-tax retirement contribution.
        tax_cents: income tax.
        deductions_cents: all after-tax deductions together.
        net_cents: gross - retirement - tax - deductions.
    """
    _employee(state, employee_id)
    if any(p["employee_id"] == employee_id for p in state["payslips"]):
        raise ToolError(f"{employee_id} already has a payslip this period; void it first")
    parts = (gross_cents, retirement_cents, tax_cents, deductions_cents, net_cents)
    if min(parts) < 0:
        raise ToolError("amounts cannot be negative")
    if gross_cents - retirement_cents - tax_cents - deductions_cents != net_cents:
        raise ToolError("net_cents must equal gross - retirement - tax - deductions")
    state["payslips"].append({"employee_id": employee_id, "gross_cents": gross_cents,
                              "retirement_cents": retirement_cents, "tax_cents": tax_cents,
                              "deductions_cents": deductions_cents, "net_cents": net_cents})
    # Kept in id order so the graded table does not depend on the order of the calls.
    state["payslips"].sort(key=lambda p: p["employee_id"])
    return f"payslip issued to {employee_id}: net {net_cents} cents"


@tool(writes=True)
def void_payslip(state: State, employee_id: str) -> str:
    """Withdraw an employee's payslip of this period so that it can be issued again.

    Args:
        employee_id: the employee id.
    """
    kept = [p for p in state["payslips"] if p["employee_id"] != employee_id]
    if len(kept) == len(state["payslips"]):
        raise ToolError(f"{employee_id} has no payslip to void")
    state["payslips"] = kept
    return f"payslip of {employee_id} voided"


@tool(writes=True)
def void_entry(state: State, entry_id: str) -> str:
    """Mark a timesheet entry void (for keying errors and duplicates), so it is never paid.

    Args:
        entry_id: the timesheet entry id, e.g. "TS014".
    """
    t = find_record(state["timesheets"], entry_id, f"no timesheet entry {entry_id!r}")
    if t["status"] == "void":
        raise ToolError(f"{entry_id} is already void")
    t["status"] = "void"
    return f"{entry_id} voided"


# ---- the pay computation (integer cents throughout) ----------------------------------------

# Most telling first: the perturbed "careless" run forgets the first one that matters.
_TRAPS = ("garnish_base", "overtime", "status", "dates", "duplicates", "typos", "tax_flat")


def _payable(state: State, employee_id: str, trap: str = "") -> list[dict[str, Any]]:
    """The entries the policy pays; `trap` names one timesheet rule to forget."""
    period = state["policy"]["period"]
    seen: set[tuple[str, float]] = set()
    paid = []
    for t in sorted((t for t in state["timesheets"] if t["employee_id"] == employee_id),
                    key=lambda t: t["id"]):
        key = (t["date"], t["hours"])
        approved = t["status"] == "approved"
        if (approved or trap == "status" and t["status"] != "void") \
                and (period["start"] <= t["date"] <= period["end"] or trap == "dates") \
                and (t["hours"] <= _MAX_HOURS or trap == "typos") \
                and (key not in seen or trap == "duplicates"):
            paid.append(t)
        if approved:
            seen.add(key)
    return paid


def _hourly_gross(entries: list[dict[str, Any]], rate: int, rule: str, trap: str) -> int:
    """Gross pay in cents. Rates are multiples of 8 cents, so every quarter-hour pays exactly."""
    by_day: dict[str, int] = {}
    for t in entries:
        by_day[t["date"]] = by_day.get(t["date"], 0) + round(t["hours"] * 4)
    eighths = 0  # pay in units of rate/8: regular quarter = 2, at 1.5x = 3, at 2x = 4
    if trap == "overtime":
        eighths = 2 * sum(by_day.values())
    elif rule == "weekly40":
        weeks: dict[int, int] = {}
        for day, q in by_day.items():
            week = (date.fromisoformat(day) - _START).days // 7
            weeks[week] = weeks.get(week, 0) + q
        eighths = sum(2 * min(q, 160) + 3 * max(0, q - 160) for q in weeks.values())
    else:
        cap = 48 if rule == "daily12_double" else 10**6
        eighths = sum(2 * min(q, 32) + 3 * max(0, min(q, cap) - 32) + 4 * max(0, q - cap)
                      for q in by_day.values())
    return rate * eighths // 8


def _tax(taxable: int, brackets: list[dict[str, Any]], trap: str) -> int:
    if trap == "tax_flat":  # the marginal rate applied to everything
        rate = next(b["rate_pct"] for b in brackets
                    if b["up_to_cents"] is None or taxable <= b["up_to_cents"])
        return taxable * rate // 100
    total, lower = 0, 0
    for b in brackets:
        upper = b["up_to_cents"] if b["up_to_cents"] is not None else taxable
        if taxable > lower:
            total += (min(taxable, upper) - lower) * b["rate_pct"]
        lower = upper
    return total // 100


def _pay(state: State, employee_id: str, trap: str = "") -> dict[str, int]:
    e = _employee(state, employee_id)
    if e["pay_type"] == "salaried":
        gross = e["annual_salary_cents"] // 26
    else:
        entries = _payable(state, employee_id, trap)
        gross = _hourly_gross(entries, e["hourly_rate_cents"], state["policy"]["overtime_rule"],
                              trap)
    retirement = gross * e["retirement_pct"] // 100
    tax = _tax(gross - retirement, state["tax_brackets"], trap)
    disposable = gross - retirement - tax
    deductions = 0
    for d in e["deductions"]:
        if d["kind"] == "garnishment":
            deductions += (gross if trap == "garnish_base" else disposable) * d["pct"] // 100
        else:
            deductions += d["cents"]
    return {"gross_cents": gross, "retirement_cents": retirement, "tax_cents": tax,
            "deductions_cents": deductions, "net_cents": disposable - deductions}


def _to_void(state: State, employee_ids: list[str]) -> list[str]:
    """Keying errors and duplicates of these employees: the entries a cleanup must void."""
    out = []
    for emp in employee_ids:
        seen: set[tuple[str, float]] = set()
        for t in sorted((t for t in state["timesheets"] if t["employee_id"] == emp),
                        key=lambda t: t["id"]):
            key = (t["date"], t["hours"])
            if t["status"] == "approved" and (t["hours"] > _MAX_HOURS or key in seen):
                out.append(t["id"])
            if t["status"] == "approved":
                seen.add(key)
    return out


# ---- generation ----------------------------------------------------------------------------


def _day(offset: int) -> str:
    return (_START + timedelta(days=offset)).isoformat()


def _employees(rng: random.Random, config: PayrollConfig) -> list[dict[str, Any]]:
    names = rng.sample([(f, la) for f in _FIRST for la in _LAST], config.employees)
    out = []
    for i, (first, last) in enumerate(names):
        e: dict[str, Any] = {"id": f"E{i + 1:02d}", "name": f"{first} {last}"}
        # The first three are hourly so that every state has timesheets worth auditing.
        if i >= 3 and rng.random() < config.salaried_share:
            salary = rng.randrange(52_000, 130_000) * 100
            e |= {"pay_type": "salaried", "annual_salary_cents": salary}
        else:
            e |= {"pay_type": "hourly", "hourly_rate_cents": rng.randrange(1_800, 5_000, 8)}
        deductions: list[dict[str, Any]] = [
            {"kind": kind, "cents": rng.randrange(1_000, 9_000, 25)}
            for kind in rng.sample(["union_dues", "health_plan", "parking"], rng.randint(0, 2))]
        if config.garnishments and rng.random() < 0.5:
            deductions.append({"kind": "garnishment", "pct": rng.choice([10, 15, 20, 25])})
        out.append(e | {"retirement_pct": rng.choice([0, 3, 4, 5, 6]), "deductions": deductions})
    return out


def _timesheets(rng: random.Random, employees: list[dict[str, Any]], anomalies: int
                ) -> list[dict[str, Any]]:
    hourly = [e["id"] for e in employees if e["pay_type"] == "hourly"]
    rows: list[dict[str, Any]] = []
    for emp in hourly:
        for offset in range(14):
            weekend = offset % 7 >= 5
            if rng.random() > (0.15 if weekend else 0.9):
                continue
            hours = rng.randrange(24, 46) / 4  # 6 to 11.25 hours
            if rng.random() < 0.2:  # a split shift; unequal halves, so never a "duplicate"
                first = rng.randrange(8, int(hours * 4) - 8) / 4
                if first * 2 == hours:
                    first -= 0.25
                rows += [{"employee_id": emp, "date": _day(offset), "hours": first,
                          "status": "approved"},
                         {"employee_id": emp, "date": _day(offset), "hours": hours - first,
                          "status": "approved"}]
            else:
                rows.append({"employee_id": emp, "date": _day(offset), "hours": hours,
                             "status": "approved"})
    for _ in range(anomalies):
        emp = rng.choice(hourly)
        kind = rng.choice(["pending", "rejected", "duplicate", "outside", "typo"])
        mine = [r for r in rows if r["employee_id"] == emp and r["status"] == "approved"
                and r["hours"] <= _MAX_HOURS and _day(0) <= r["date"] <= _day(13)]
        if kind == "duplicate" and mine:
            rows.append(dict(rng.choice(mine)))
        elif kind == "outside":
            offset = rng.choice([-1, -2, -3, 14, 15, 16])
            rows.append({"employee_id": emp, "date": _day(offset),
                         "hours": rng.randrange(24, 40) / 4, "status": "approved"})
        elif kind == "typo":
            rows.append({"employee_id": emp, "date": _day(rng.randrange(14)),
                         "hours": rng.choice([75.0, 80.0, 85.5, 60.0]), "status": "approved"})
        else:
            rows.append({"employee_id": emp, "date": _day(rng.randrange(14)),
                         "hours": rng.randrange(4, 16) / 4,
                         "status": "pending" if kind == "pending" else "rejected"})
    # Stable sort: a duplicate, appended after its original, gets the higher id.
    rows.sort(key=lambda r: (r["employee_id"], r["date"]))
    return [{"id": f"TS{i + 1:03d}", **r} for i, r in enumerate(rows)]


# ---- the family ----------------------------------------------------------------------------

_READ = ("list_timesheets", "payroll_policy", "tax_table")


@register_family
class Payroll(Family[PayrollConfig]):
    name = "payroll"
    summary = "Compute or issue net pay from timesheets, overtime, tax brackets and deductions."
    config_model = PayrollConfig
    answer_model = PayrollAnswer
    tools = (list_employees, get_employee, get_deductions, list_timesheets, payroll_policy,
             tax_table, create_payslip, void_payslip, void_entry)
    variants = (
        Variant("net-pay", ("get_employee", *_READ), ("valid_entries", "weekly_overtime")),
        Variant("daily-overtime", ("list_employees", "get_deductions", *_READ),
                ("valid_entries", "daily_overtime"), {"overtime": "daily8"}),
        Variant("garnishment", ("get_employee", "get_deductions", *_READ),
                ("valid_entries", "weekly_overtime", "garnishment"),
                {"garnishments": True, "anomalies": 7}),
        Variant("issue-payslips", ("get_employee", *_READ, "create_payslip"),
                ("valid_entries", "weekly_overtime", "payslip_parts")),
        Variant("double-time-payslips", ("list_employees", "get_employee", *_READ,
                                         "create_payslip", "void_payslip"),
                ("valid_entries", "double_time", "payslip_parts"),
                {"overtime": "daily12_double"}),
        Variant("timesheet-cleanup", ("list_employees", "get_deductions", *_READ, "void_entry",
                                      "create_payslip"),
                ("valid_entries", "daily_overtime", "void_bad_entries", "payslip_parts"),
                {"overtime": "daily8", "anomalies": 8, "garnishments": True}),
    )

    def generate_state(self, rng: random.Random, config: PayrollConfig) -> State:
        employees = _employees(rng, config)
        top = rng.randrange(110_000, 150_001, 5_000)
        return {
            "employees": employees,
            "timesheets": _timesheets(rng, employees, config.anomalies),
            "policy": {**_policy_text(config.overtime), "overtime_rule": config.overtime},
            "tax_brackets": [{"up_to_cents": top, "rate_pct": 10},
                             {"up_to_cents": top * 3, "rate_pct": 22},
                             {"up_to_cents": None, "rate_pct": rng.choice([32, 35])}],
            "payslips": [],
        }

    def generate_task(self, rng: random.Random, state: State, config: PayrollConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        mode = ("cleanup" if "void_entry" in variant.tools else
                "payslips" if "create_payslip" in variant.tools else "answer")
        hourly = [e["id"] for e in state["employees"] if e["pay_type"] == "hourly"]
        if mode == "cleanup":  # the focus employee must have entries to void
            hourly = [e for e in hourly if _to_void(state, [e])]
        focus = next((e for e in rng.sample(hourly, len(hourly)) if _first_trap(state, e)), None)
        if focus is None:
            return None
        chosen = [focus]
        others = [e["id"] for e in state["employees"] if e["id"] != focus]
        chosen += rng.sample(others, min(level, len(others)))
        chosen.sort()
        void = _to_void(state, chosen) if mode == "cleanup" else []
        return TaskDraft(
            instruction=_instruction(mode, chosen),
            goal={"mode": mode, "employees": chosen, "void": void, "focus": focus,
                  "expected": [_pay(state, e)["net_cents"] for e in chosen]},
            knobs={"steps": 4 * len(chosen) + len(void), "constraints": len(variant.constraints),
                   "distractors": sum(t["employee_id"] in chosen for t in state["timesheets"])
                   - sum(len(_payable(state, e)) for e in chosen)},
            hash_tables=None if mode == "answer" else ("payslips", "timesheets"),
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        calls = [Call("payroll_policy"), Call("tax_table")]
        read = "get_employee" if "get_employee" in variant.tools else "get_deductions"
        for emp in g["employees"]:
            calls += [Call(read, {"employee_id": emp}), Call("list_timesheets",
                                                            {"employee_id": emp})]
        calls += [Call("void_entry", {"entry_id": t}) for t in g["void"]]
        if g["mode"] == "answer":
            return [*calls, Call("submit", {"net_pay_cents": list(g["expected"])})]
        calls += [Call("create_payslip", {"employee_id": emp, **_pay(state, emp)})
                  for emp in g["employees"]]
        return [*calls, Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        if "state_hash" in goal:
            return check_state_hash(final_state, goal)
        got = list((answer or {}).get("net_pay_cents") or [])
        ok = got == list(goal["expected"])
        right = sum(a == b for a, b in zip(got, goal["expected"], strict=False))
        return Verdict(reward=float(ok),
                       components={"employees_right": right / len(goal["expected"])},
                       reason=f"net pay {got} vs expected {list(goal['expected'])}")

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        emps = list(g["employees"])
        careless = g["focus"]  # an employee whose pay a forgotten rule changes
        trap = _first_trap(state, careless)
        outsider = next(e["id"] for e in state["employees"]
                        if _pay(state, e["id"])["net_cents"] != _pay(state, careless)["net_cents"]
                        and e["id"] != careless)
        if g["mode"] == "answer":
            def submit(emp: str, pay: dict[str, int]) -> list[Call]:
                nets = [pay["net_cents"] if e == emp else n
                        for e, n in zip(emps, g["expected"], strict=True)]
                return [*reference[:-1], Call("submit", {"net_pay_cents": nets})]
        else:
            def submit(emp: str, pay: dict[str, int]) -> list[Call]:
                calls = [c if c.name != "create_payslip" or c.arguments["employee_id"] != emp
                         else Call("create_payslip", {"employee_id": emp, **pay})
                         for c in reference]
                return calls
        return {"constraint_broken": submit(careless, _pay(state, careless, trap)),
                "wrong_value": submit(careless, _pay(state, outsider))}


def _first_trap(state: State, employee_id: str) -> str:
    """The first rule that, forgotten, changes this employee's net pay ("" if none does)."""
    truth = _pay(state, employee_id)["net_cents"]
    return next((t for t in _TRAPS if _pay(state, employee_id, t)["net_cents"] != truth), "")


def _instruction(mode: str, employees: list[str]) -> str:
    who = ", ".join(employees)
    rules = ("Follow the payroll policy (payroll_policy) and the tax table (tax_table) exactly; "
             "all amounts are integer cents.")
    if mode == "answer":
        return (f"Compute this period's net pay of {who}. {rules} Submit `net_pay_cents` with "
                "one amount per employee, in the order listed.")
    cleanup = ""
    if mode == "cleanup":
        cleanup = (f"First void every timesheet entry of {who} that the policy says is a keying "
                   "error or a duplicate (leave pending, rejected and out-of-period entries as "
                   "they are). Then r")
    return (f"{cleanup or 'R'}un this period's payroll for {who}: issue each of them a payslip "
            f"with gross, retirement, tax, after-tax deductions and net. {rules} Issue no "
            "other payslip, then submit.")
