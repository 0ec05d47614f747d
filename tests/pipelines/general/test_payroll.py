"""payroll: one timesheet worked through by hand under all three overtime rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from envsynth.errors import ToolError
from pipelines.general.episode import Episode
from pipelines.general.families.payroll import (
    _pay,
    _policy_text,
    _tax,
    _to_void,
    create_payslip,
    list_timesheets,
    void_entry,
    void_payslip,
)
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

FAMILY = load_families().get("payroll")
BRACKETS = [{"up_to_cents": 100_000, "rate_pct": 10}, {"up_to_cents": 300_000, "rate_pct": 20},
            {"up_to_cents": None, "rate_pct": 30}]


def _ts(i: int, emp: str, day: str, hours: float, status: str = "approved") -> dict[str, Any]:
    return {"id": f"TS{i:03d}", "employee_id": emp, "date": f"2025-05-{day}", "hours": hours,
            "status": status}


def tiny_state(rule: str = "weekly40") -> dict[str, Any]:
    return {
        "employees": [
            {"id": "E01", "name": "A", "pay_type": "hourly", "hourly_rate_cents": 4_000,
             "retirement_pct": 5, "deductions": [{"kind": "union_dues", "cents": 2_500}]},
            {"id": "E02", "name": "B", "pay_type": "salaried", "annual_salary_cents": 6_500_050,
             "retirement_pct": 0, "deductions": [{"kind": "garnishment", "pct": 15},
                                                 {"kind": "health_plan", "cents": 6_400}]},
        ],
        "timesheets": [
            _ts(1, "E01", "04", 8),                # the Sunday before the period
            _ts(2, "E01", "05", 13), _ts(3, "E01", "06", 6), _ts(4, "E01", "07", 9),
            _ts(5, "E01", "08", 9), _ts(6, "E01", "09", 9),
            _ts(7, "E01", "12", 8), _ts(8, "E01", "12", 8),   # TS008 repeats TS007
            _ts(9, "E01", "13", 8), _ts(10, "E01", "13", 3, "pending"),
            _ts(11, "E01", "14", 80),              # a keying error
            _ts(12, "E01", "15", 4, "rejected"),
            _ts(13, "E02", "05", 8),               # salaried: timesheets do not count
        ],
        "policy": {**_policy_text(rule), "overtime_rule": rule},
        "tax_brackets": BRACKETS, "payslips": [],
    }


# Paid hours of E01: week 1 = 13 + 6 + 9 + 9 + 9 = 46, week 2 = 8 + 8 = 16, at $40.00.
#   weekly40:        56 regular + 6 at 1.5x                  = 224000 + 36000         = 260000
#   daily8:          54 regular + 8 at 1.5x (5 Mon, 1 x 3)    = 216000 + 48000         = 264000
#   daily12_double:  54 regular + 7 at 1.5x + 1 at 2x         = 216000 + 42000 + 8000  = 266000
# Then 5% retirement, tax 10% to 1000.00 and 20% above, and 25.00 union dues:
#   260000: ret 13000, tax 10000 + 29400 = 39400, net 260000 - 13000 - 39400 - 2500 = 205100
#   264000: ret 13200, tax 10000 + 30160 = 40160, net 208140
#   266000: ret 13300, tax 10000 + 30540 = 40540, net 209660
@pytest.mark.parametrize(("rule", "gross", "tax", "net"), [
    ("weekly40", 260_000, 39_400, 205_100),
    ("daily8", 264_000, 40_160, 208_140),
    ("daily12_double", 266_000, 40_540, 209_660),
])
def test_hourly_pay_by_hand(rule: str, gross: int, tax: int, net: int) -> None:
    pay = _pay(tiny_state(rule), "E01")
    assert pay == {"gross_cents": gross, "retirement_cents": gross * 5 // 100, "tax_cents": tax,
                   "deductions_cents": 2_500, "net_cents": net}


def test_salaried_pay_and_garnishment_by_hand() -> None:
    # 6500050 / 26 = 250001.92 -> 250001; tax (100000 x 10 + 150001 x 20) / 100 = 40000.2 -> 40000;
    # disposable 210001; garnishment 15% -> 31500; health 6400; net 172101.
    pay = _pay(tiny_state(), "E02")
    assert pay["gross_cents"] == 250_001 and pay["tax_cents"] == 40_000
    assert pay["deductions_cents"] == 37_900 and pay["net_cents"] == 172_101
    # Garnishing gross instead of disposable pay: 15% of 250001 -> 37500.
    assert _pay(tiny_state(), "E02", "garnish_base")["net_cents"] == 210_001 - 37_500 - 6_400


def test_forgotten_timesheet_rules_change_gross_as_computed_by_hand() -> None:
    state = tiny_state()
    assert _pay(state, "E01", "duplicates")["gross_cents"] == 260_000 + 8 * 4_000
    assert _pay(state, "E01", "status")["gross_cents"] == 260_000 + 7 * 4_000
    # The Sunday before is its own week: 8 more regular hours.
    assert _pay(state, "E01", "dates")["gross_cents"] == 260_000 + 8 * 4_000
    assert _pay(state, "E01", "overtime")["gross_cents"] == 62 * 4_000


def test_progressive_tax_by_hand() -> None:
    assert _tax(350_000, BRACKETS, "") == 10_000 + 40_000 + 15_000
    assert _tax(350_000, BRACKETS, "tax_flat") == 105_000
    assert _tax(100_000, BRACKETS, "") == 10_000
    assert _tax(0, BRACKETS, "") == 0


def test_cleanup_voids_exactly_the_duplicate_and_the_keying_error() -> None:
    state = tiny_state()
    assert _to_void(state, ["E01"]) == ["TS008", "TS011"]
    before = _pay(state, "E01")
    for entry in ("TS008", "TS011"):
        void_entry.call(state, {"entry_id": entry})
    assert _pay(state, "E01") == before  # voiding unpaid entries changes no pay


def test_verify_answer_mode_needs_every_amount_in_order() -> None:
    goal = {"mode": "answer", "employees": ["E01", "E02"], "expected": [205_100, 172_101]}
    assert FAMILY.verify({}, {"net_pay_cents": [205_100, 172_101]}, goal).reward == 1.0
    assert FAMILY.verify({}, {"net_pay_cents": [172_101, 205_100]}, goal).reward == 0.0
    assert FAMILY.verify({}, {"net_pay_cents": [205_101, 172_101]}, goal).reward == 0.0
    assert FAMILY.verify({}, {"net_pay_cents": [205_100]}, goal).reward == 0.0
    assert FAMILY.verify({}, None, goal).reward == 0.0


def test_payslip_order_does_not_change_the_graded_state() -> None:
    built = build_environment(EnvPlan(0, FAMILY.name, "issue-payslips", 5), "t")
    payload = next(c.task.payload for c in built.candidates if len(c.task.payload.goal[
        "employees"]) > 1)
    slips = [c for c in payload.reference if c.name == "create_payslip"]
    episode = Episode(payload)
    for call in reversed(slips):
        episode.call(call.name, call.arguments)
    assert episode.verdict().reward == 1.0
    episode = Episode(payload)
    for call in slips[:-1]:
        episode.call(call.name, call.arguments)
    assert episode.verdict().reward == 0.0


@pytest.mark.parametrize(("tool", "args", "message"), [
    (create_payslip, {"employee_id": "E01", "gross_cents": 100, "retirement_cents": 0,
                      "tax_cents": 10, "deductions_cents": 0, "net_cents": 80}, "must equal"),
    (create_payslip, {"employee_id": "E01", "gross_cents": 100, "retirement_cents": -10,
                      "tax_cents": 10, "deductions_cents": 0, "net_cents": 100}, "negative"),
    (create_payslip, {"employee_id": "E09", "gross_cents": 1, "retirement_cents": 0,
                      "tax_cents": 0, "deductions_cents": 0, "net_cents": 1}, "no employee"),
    (void_entry, {"entry_id": "TS099"}, "no timesheet entry"),
    (void_payslip, {"employee_id": "E01"}, "no payslip"),
    (list_timesheets, {"employee_id": "e01"}, "no employee"),
])
def test_bad_calls_are_tool_errors_and_change_nothing(tool: Any, args: dict[str, Any],
                                                       message: str) -> None:
    state = tiny_state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError, match=message):
        tool.call(state, args)
    assert state == before


def test_a_second_payslip_or_void_is_refused() -> None:
    state = tiny_state()
    slip = {"employee_id": "E01", "gross_cents": 100, "retirement_cents": 5, "tax_cents": 10,
            "deductions_cents": 0, "net_cents": 85}
    create_payslip.call(state, slip)
    with pytest.raises(ToolError, match="already has a payslip"):
        create_payslip.call(state, slip)
    void_entry.call(state, {"entry_id": "TS008"})
    with pytest.raises(ToolError, match="already void"):
        void_entry.call(state, {"entry_id": "TS008"})
    void_payslip.call(state, {"employee_id": "E01"})
    assert state["payslips"] == []
