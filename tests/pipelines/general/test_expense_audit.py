"""expense_audit: three hand-audited reports, and order-independent state grading."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from envsynth.errors import ToolError
from pipelines.general.episode import Episode
from pipelines.general.families.expense_audit import (
    ExpenseConfig,
    _audit,
    _decision,
    approve_report,
    flag_item,
    per_diem_rates,
    unflag_item,
)
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

FAMILY = load_families().get("expense_audit")


def _it(i: int, report: str, day: int, category: str, text: str, cents: int,
        receipt: bool = True, currency: str = "USD") -> dict[str, Any]:
    return {"id": f"X{i:03d}", "report_id": report, "date": f"2025-04-0{day}",
            "category": category, "description": text, "amount_cents": cents,
            "currency": currency, "receipt": receipt, "flag": None}


def tiny_state() -> dict[str, Any]:
    def report(rid: str, who: str) -> dict[str, Any]:
        return {"id": rid, "employee": who, "city": "Denver", "start": "2025-04-01",
                "end": "2025-04-03", "status": "submitted"}

    return {
        "reports": [report("R01", "Ada Moss"), report("R02", "Bo Nair"), report("R03", "Bo Nair")],
        "items": [
            _it(1, "R01", 1, "airfare", "Flight to Denver", 60_000),  # PA-1 covers only 550.00
            _it(2, "R01", 1, "lodging", "Hotel, night 1", 20_000),   # cap 190.00
            _it(3, "R01", 2, "lodging", "Hotel, night 2", 19_000),   # exactly the cap: fine
            _it(4, "R01", 1, "meals", "Dinner with wine pairing", 5_000),
            _it(5, "R01", 1, "meals", "Working lunch", 4_000),       # day 1 without the wine: 40.00
            _it(6, "R01", 2, "meals", "Breakfast", 3_000),           # day 2: 30 + 45 > 70.00
            _it(7, "R01", 2, "meals", "Lunch", 4_500),
            _it(8, "R01", 2, "taxi", "Taxi", 8_000, receipt=False),  # over the 75.00 threshold
            _it(9, "R01", 3, "taxi", "Taxi", 5_000, receipt=False),  # under it: fine
            # 80.00 EUR = 88.00 USD: over the receipt threshold, so missing_receipt comes first
            # and the item no longer counts toward day 3's meals (which would exceed 70.00).
            _it(10, "R01", 3, "meals", "Airport dinner", 8_000, receipt=False, currency="EUR"),
            _it(11, "R02", 1, "airfare", "Flight to Denver", 60_000),  # PA-2 covers it exactly
            _it(12, "R02", 1, "meals", "Hotel bar tab", 2_000),
            _it(13, "R03", 1, "taxi", "Taxi", 9_000, receipt=False),
            _it(14, "R03", 1, "meals", "Breakfast at hotel cafe", 1_500),
        ],
        "preapprovals": [
            {"id": "PA-1", "employee": "Ada Moss", "city": "Denver", "max_cents": 55_000},
            {"id": "PA-2", "employee": "Bo Nair", "city": "Denver", "max_cents": 60_000},
            {"id": "PA-3", "employee": "Ada Moss", "city": "Austin", "max_cents": 150_000},
        ],
        "per_diem": {"Denver": {"lodging_cents": 19_000, "meals_cents": 7_000}},
        "rates": {"EUR": 1.1},
        "policy": {"receipt_required_over_cents": 7_500, "airfare_preapproval_over_cents": 50_000},
        "inline_preapprovals": True,
    }


HAND = {
    "R01": {"X001": "no_preapproval", "X002": "over_cap", "X004": "alcohol", "X006": "over_cap",
            "X007": "over_cap", "X008": "missing_receipt", "X010": "missing_receipt"},
    "R02": {"X012": "alcohol"},
    "R03": {"X013": "missing_receipt"},
}


@pytest.mark.parametrize("report", sorted(HAND))
def test_audit_matches_hand_audit(report: str) -> None:
    assert _audit(tiny_state(), report) == HAND[report]


def test_decisions_by_hand() -> None:
    assert [_decision(HAND[r]) for r in sorted(HAND)] == ["rejected", "rejected", "returned"]
    assert _decision({}) == "approved"


def test_a_wine_free_dinner_would_tip_day_one_over_the_cap() -> None:
    state = tiny_state()
    state["items"][3]["description"] = "Dinner with client"
    # 50.00 + 40.00 > 70.00: both meals of day 1 are now over_cap.
    assert _audit(state, "R01")["X004"] == "over_cap" == _audit(state, "R01")["X005"]


def test_generated_goal_on_the_tiny_state() -> None:
    draft = FAMILY.generate_task(random.Random(3), tiny_state(), ExpenseConfig(),
                                 FAMILY.variant("decide-reports"), 2)
    assert draft.goal["reports"] == ["R01", "R02", "R03"]
    assert draft.goal["flags"] == {**HAND["R01"], **HAND["R02"], **HAND["R03"]}
    assert draft.goal["decisions"] == {"R01": "rejected", "R02": "rejected", "R03": "returned"}


def test_state_grading_ignores_call_order_but_not_a_reason() -> None:
    built = build_environment(EnvPlan(0, FAMILY.name, "flag-items", 2), "t")
    payload = max((c.task.payload for c in built.candidates),
                  key=lambda p: len(p.goal["flags"]))
    flags = [c for c in payload.reference if c.name == "flag_item"]
    assert len(flags) >= 2
    episode = Episode(payload)
    for call in reversed(flags):
        episode.call(call.name, call.arguments)
    assert episode.verdict().reward == 1.0
    episode = Episode(payload)
    for call in flags[1:]:
        episode.call(call.name, call.arguments)
    first = orjson.loads(flags[0].arguments)
    other = next(r for r in ("alcohol", "over_cap") if r != first["reason"])
    episode.call("flag_item", {"item_id": first["item_id"], "reason": other})
    assert episode.verdict().reward == 0.0


@pytest.mark.parametrize(("tool", "args", "message"), [
    (flag_item, {"item_id": "X999", "reason": "alcohol"}, "no line item"),
    (flag_item, {"item_id": "X001", "reason": "too_expensive"}, "invalid arguments"),
    (unflag_item, {"item_id": "X001"}, "not flagged"),
    (per_diem_rates, {"city": "Paris"}, "no per-diem rates"),
    (approve_report, {"report_id": "R09"}, "no report"),
])
def test_bad_calls_are_tool_errors_and_change_nothing(tool: Any, args: dict[str, Any],
                                                       message: str) -> None:
    state = tiny_state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError, match=message):
        tool.call(state, args)
    assert state == before


def test_flags_are_single_and_decided_reports_are_frozen() -> None:
    state = tiny_state()
    flag_item.call(state, {"item_id": "X013", "reason": "missing_receipt"})
    with pytest.raises(ToolError, match="already flagged"):
        flag_item.call(state, {"item_id": "X013", "reason": "over_cap"})
    approve_report.call(state, {"report_id": "R03"})
    with pytest.raises(ToolError, match="already approved"):
        approve_report.call(state, {"report_id": "R03"})
    with pytest.raises(ToolError, match="already decided"):
        unflag_item.call(state, {"item_id": "X013"})
    with pytest.raises(ToolError, match="already decided"):
        flag_item.call(state, {"item_id": "X014", "reason": "over_cap"})
