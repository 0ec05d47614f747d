"""ledger_reconciliation: a hand-reconciled tiny book, and a second reconciler written apart."""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

import pytest

from envsynth.errors import ToolError
from pipelines.general.families.ledger_reconciliation import (
    KINDS,
    _reconcile,
    _restrict,
    find_by_reference,
    get_ledger_entry,
    list_bank,
    list_ledger,
    search_bank,
)
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

FAMILY = load_families().get("ledger_reconciliation")


def _entry(i: str, day: int, ref: str, cents: int, currency: str = "EUR") -> dict[str, Any]:
    return {"id": i, "date": f"2025-03-{day:02d}", "counterparty": "X", "ref": ref,
            "amount_cents": cents, "currency": currency}


def _line(i: str, day: int, text: str, cents: int) -> dict[str, Any]:
    return {"id": i, "date": f"2025-03-{day:02d}", "description": text, "amount_cents": cents}


def tiny_state() -> dict[str, Any]:
    return {
        "ledger": [
            _entry("L001", 2, "INV-1001", 10_000),    # bank 2 days later, tolerance 3: fine
            _entry("L002", 5, "PO-2002", -5_000),     # nothing at the bank
            _entry("L003", 6, "INV-1001", 10_000),    # repeats L001's reference
            _entry("L004", 10, "INV-3003", 12_345),   # bank says 123.54
            _entry("L005", 12, "INV-4004", 20_000),   # bank 8 days later
            _entry("L006", 14, "INV-5005", 10_000, "USD"),  # 100 USD = 92.13 EUR: fine
            _entry("L007", 15, "PO-6006", -30_000),   # paid in two parts: fine
        ],
        "bank": [
            _line("B001", 4, "SEPA CR inv 1001 ACME", 10_000),
            _line("B002", 8, "SEPA CR INV7007 JUNIPER", 777),   # not in the ledger
            _line("B003", 9, "BANK FEE ACCOUNT", -300),         # fees are never reported
            _line("B004", 10, "SEPA CR Inv/3003 FJORD", 12_354),
            _line("B005", 20, "SEPA CR INV-4004 IRIS", 20_000),
            _line("B006", 15, "SEPA CR INV - 5005 HELIX", 9_213),
            _line("B007", 16, "SEPA DD PO-6006 GRANITE", -10_000),
            _line("B008", 17, "SEPA DD po6006 GRANITE", -20_000),
        ],
        "policy": {"date_tolerance_days": 3}, "fx_rates": {"USD": 0.9213}, "page_size": 3,
    }


HAND = {"duplicate": ["L003"], "missing_in_bank": ["L002"], "amount_mismatch": ["L004"],
        "date_mismatch": ["L005"], "missing_in_ledger": ["B002"]}


def test_reconciler_matches_hand_reconciliation() -> None:
    assert _reconcile(tiny_state()) == HAND


def test_window_keeps_records_by_their_own_date() -> None:
    got = _restrict(tiny_state(), HAND, list(KINDS), ("2025-03-01", "2025-03-09"))
    assert got == {"duplicate": ["L003"], "missing_in_bank": ["L002"], "amount_mismatch": [],
                   "date_mismatch": [], "missing_in_ledger": ["B002"]}


def test_wider_tolerance_clears_the_date_mismatch() -> None:
    state = tiny_state()
    state["policy"]["date_tolerance_days"] = 8
    assert _reconcile(state)["date_mismatch"] == []


def _answer(**lists: list[str]) -> dict[str, list[str]]:
    return {k: lists.get(k, []) for k in KINDS}


def test_verify_needs_every_asked_list_exact() -> None:
    goal = {"kinds": list(KINDS), "expected": HAND, "window": None}
    assert FAMILY.verify({}, _answer(**HAND), goal).reward == 1.0
    # Order inside a list does not matter; a missing or extra id does.
    partial = {**HAND, "duplicate": []}
    verdict = FAMILY.verify({}, _answer(**partial), goal)
    assert verdict.reward == 0.0 and verdict.components["duplicate"] == 0.0
    assert verdict.components["missing_in_bank"] == 1.0
    extra = {**HAND, "date_mismatch": ["L005", "L001"]}
    verdict = FAMILY.verify({}, _answer(**extra), goal)
    assert verdict.reward == 0.0 and verdict.components["date_mismatch"] == 0.5
    assert FAMILY.verify({}, None, goal).reward == 0.0


def test_verify_ignores_kinds_not_asked() -> None:
    goal = {"kinds": ["missing_in_bank", "missing_in_ledger"], "expected": {
        **{k: [] for k in KINDS}, "missing_in_bank": ["L002"], "missing_in_ledger": ["B002"]},
        "window": None}
    answer = _answer(missing_in_bank=["L002"], missing_in_ledger=["B002"], duplicate=["L003"])
    assert FAMILY.verify({}, answer, goal).reward == 1.0
    assert FAMILY.verify({}, _answer(missing_in_bank=["L002"]), goal).reward == 0.0


def _independent(state: dict[str, Any]) -> dict[str, list[str]]:
    """Written apart from the family: strip punctuation, then pair entries and lines."""
    def key(text: str) -> str | None:
        m = re.search(r"(INV|PO)(\d{4})", re.sub(r"[^A-Z0-9]", "", text.upper()))
        return m.group(0) if m else None

    tol = state["policy"]["date_tolerance_days"]
    lines = [x for x in state["bank"] if not x["description"].startswith("BANK FEE")]
    out: dict[str, list[str]] = {k: [] for k in KINDS}
    first: dict[str, str] = {}
    for e in state["ledger"]:
        k = key(e["ref"])
        assert k is not None
        if k in first and first[k] < e["id"]:
            out["duplicate"].append(e["id"])
            continue
        first[k] = e["id"]
        mine = [x for x in lines if key(x["description"]) == k]
        rate = 1.0 if e["currency"] == "EUR" else state["fx_rates"][e["currency"]]
        days = [abs((date.fromisoformat(x["date"]) - date.fromisoformat(e["date"])).days)
                for x in mine]
        if not mine:
            out["missing_in_bank"].append(e["id"])
        elif abs(sum(x["amount_cents"] for x in mine) - e["amount_cents"] * rate) > 1.5:
            out["amount_mismatch"].append(e["id"])
        elif max(days) > tol:
            out["date_mismatch"].append(e["id"])
    out["missing_in_ledger"] = [x["id"] for x in lines if key(x["description"]) not in first]
    return {k: sorted(v) for k, v in out.items()}


def test_independent_reconciler_agrees_on_generated_books() -> None:
    books = 0
    for variant in FAMILY.variants:
        for seed in range(5):
            built = build_environment(EnvPlan(0, FAMILY.name, variant.name, seed), "t")
            truth = _independent(built.state)
            assert truth == _reconcile(built.state), (variant.name, seed)
            assert all(truth[k] for k in KINDS), "every kind is planted"
            books += 1
    assert books == 5 * len(FAMILY.variants)


@pytest.mark.parametrize(("tool", "args", "message"), [
    (list_ledger, {"page": 4}, "page must be between 1 and 3"),
    (list_bank, {"page": 1, "start_date": "03/04/2025"}, "must be a date"),
    (get_ledger_entry, {"entry_id": "L999"}, "no ledger entry"),
    (search_bank, {"text": " a "}, "at least 2"),
    (find_by_reference, {"ref": "ACME"}, "not a reference"),
])
def test_bad_arguments_are_tool_errors(tool: Any, args: dict[str, Any], message: str) -> None:
    state = tiny_state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError, match=message):
        tool.call(state, args)
    assert state == before


def test_lookup_tools_find_loosely_spelled_references() -> None:
    state = tiny_state()
    found = find_by_reference.call(state, {"ref": "po 6006"})
    assert [x["id"] for x in found["bank"]] == ["B007", "B008"]
    assert [e["id"] for e in found["ledger"]] == ["L007"]
    assert list_ledger.call(state, {"page": 3})["items"][0]["id"] == "L007"
    window = list_bank.call(state, {"start_date": "2025-03-15", "end_date": "2025-03-16"})
    assert [x["id"] for x in window["items"]] == ["B006", "B007"]
