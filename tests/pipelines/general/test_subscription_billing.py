"""subscription_billing: one subscription priced by hand, driven through the tools by hand."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from envsynth.errors import ToolError
from envsynth.schema import GeneralTask
from pipelines.general.episode import Episode
from pipelines.general.families.subscription_billing import (
    BillingConfig,
    _outcome,
    add_invoice_line,
    apply_coupon,
    apply_credit,
    change_plan,
    finalize_invoice,
)
from pipelines.general.family import load_families, state_digest
from pipelines.general.synthesize import to_tool_calls

FAMILY = load_families().get("subscription_billing")


def tiny_state(coupon_expires: str = "2025-06-25") -> dict[str, Any]:
    """Pro at 99.00 on a 31-day cycle (May 20 - June 20); today June 15: 5 days remain."""
    return {
        "today": "2025-06-15",
        "plans": [{"id": "basic", "price_cents": 2_900}, {"id": "pro", "price_cents": 9_900},
                  {"id": "team", "price_cents": 24_900}],
        "coupons": [{"code": "LOYAL20", "percent_off": 20, "expires": coupon_expires}],
        "customers": [{"id": "C01", "name": "Ada", "email": "ada@x.test", "credit_cents": 5_000}],
        "subscriptions": [{"id": "S01", "customer_id": "C01", "plan_id": "pro",
                           "cycle_start": "2025-05-20", "cycle_end": "2025-06-20",
                           "coupon": "LOYAL20", "pending_plan_id": None,
                           "next_invoice_id": "INV-201"}],
        "invoices": [{"id": "INV-201", "customer_id": "C01", "subscription_id": "S01",
                      "status": "draft", "period_start": "2025-06-20",
                      "period_end": "2025-07-20",
                      "lines": [{"kind": "plan", "amount_cents": 9_900}],
                      "coupon": None, "discount_cents": 0, "credit_applied_cents": 0,
                      "total_cents": 9_900}],
        "rules": [],
    }


# Upgrade to team: credit -9900 x 5/31 = -1596.77 -> -1597; charge 24900 x 5/31 = 4016.13 ->
# 4016; plan line 24900; LOYAL20 (valid on June 20) takes 4980; 22339 less 50.00 credit = 17339.
def test_upgrade_priced_by_hand() -> None:
    out = _outcome(tiny_state(), "S01", "team", "renewal")
    assert out["proration"] == [["proration_credit", -1_597], ["proration_charge", 4_016]]
    assert out["change"] == ["team", "now"] and out["plan_line"] == [9_900, 24_900]
    assert out["coupon"] == "LOYAL20" and out["credit"] == 5_000 and out["total"] == 17_339


def test_expired_coupon_is_not_applied() -> None:
    # Expiring June 19, the day before the invoice period starts: 24900 - 1597 + 4016 - 5000.
    out = _outcome(tiny_state("2025-06-19"), "S01", "team", "renewal")
    assert out["coupon"] is None and out["total"] == 22_319


def test_downgrade_timing_by_hand() -> None:
    # At renewal: 2900 less 20% (580) = 2320, all paid from credit.
    later = _outcome(tiny_state(), "S01", "basic", "renewal")
    assert later["change"] == ["basic", "renewal"] and later["proration"] == []
    assert later["credit"] == 2_320 and later["total"] == 0
    # Immediately: -1597 + 2900 x 5/31 (467.74 -> 468) + 2900 - 580 = 1191, all from credit.
    now = _outcome(tiny_state(), "S01", "basic", "immediate")
    assert now["proration"] == [["proration_credit", -1_597], ["proration_charge", 468]]
    assert now["credit"] == 1_191 and now["total"] == 0


def _graded(state: dict[str, Any], variant: str, level: int) -> GeneralTask:
    """A task on the tiny state, graded like the pipeline does: by the replayed reference."""
    v = FAMILY.variant(variant)
    draft = FAMILY.generate_task(random.Random(0), state, BillingConfig(), v, level)
    payload = GeneralTask(family=FAMILY.name, family_version=FAMILY.version, variant=variant,
                          config={}, state=state, goal=dict(draft.goal),
                          reference=to_tool_calls(FAMILY.solve(state, draft, v)), knobs={})
    episode = Episode(payload)
    for call in FAMILY.solve(state, draft, v):
        episode.call(call.name, call.arguments)
    tables = list(draft.hash_tables)
    goal = {**draft.goal, "hash_tables": tables, "state_hash": state_digest(episode.state, tables)}
    return payload.model_copy(update={"goal": goal})


def _by_hand(payload: GeneralTask, calls: list[tuple[str, dict[str, Any]]]) -> float:
    episode = Episode(payload)
    for name, args in calls:
        episode.call(name, args)
    return episode.verdict().reward


UPGRADE = [
    ("change_plan", {"subscription_id": "S01", "plan_id": "team", "when": "now"}),
    ("apply_coupon", {"invoice_id": "INV-201", "code": "LOYAL20"}),
    ("add_invoice_line", {"invoice_id": "INV-201", "kind": "proration_charge",
                          "amount_cents": 4_016}),
    ("add_invoice_line", {"invoice_id": "INV-201", "kind": "plan", "amount_cents": 24_900}),
    ("remove_invoice_line", {"invoice_id": "INV-201", "kind": "plan", "amount_cents": 9_900}),
    ("add_invoice_line", {"invoice_id": "INV-201", "kind": "proration_credit",
                          "amount_cents": -1_597}),
    ("apply_credit", {"invoice_id": "INV-201", "amount_cents": 5_000}),
    ("finalize_invoice", {"invoice_id": "INV-201"}),
]


def test_hand_driven_upgrade_in_any_order_passes() -> None:
    payload = _graded(tiny_state(), "full-desk", 1)
    assert payload.goal["to_plan"] == "team"
    assert _by_hand(payload, [*UPGRADE, ("submit", {"amount_due_cents": 17_339})]) == 1.0
    # The same work with the wrong amount reported, or a day's proration off, fails.
    assert _by_hand(payload, [*UPGRADE, ("submit", {"amount_due_cents": 22_339})]) == 0.0
    off = [(n, {**a, "amount_cents": 4_819}) if a.get("kind") == "proration_charge" else (n, a)
           for n, a in UPGRADE]  # 24900 x 6/31 = 4819.35: today counted twice
    assert _by_hand(payload, [*off, ("submit", {"amount_due_cents": 17_339 + 803})]) == 0.0
    # Skipping the proration credit (a broken rule) fails even with a consistent amount.
    skipped = [c for c in UPGRADE if c[1].get("kind") != "proration_credit"]
    assert _by_hand(payload, [*skipped, ("submit", {"amount_due_cents": 18_936})]) == 0.0


def test_quote_changes_nothing_and_needs_the_amount() -> None:
    payload = _graded(tiny_state(), "quote", 1)
    assert _by_hand(payload, [("submit", {"amount_due_cents": 17_339})]) == 1.0
    assert _by_hand(payload, [("submit", {"amount_due_cents": 17_338})]) == 0.0
    assert _by_hand(payload, [("submit", {"amount_due_cents": 22_339})]) == 0.0  # no credit


@pytest.mark.parametrize(("tool", "args", "message"), [
    (add_invoice_line, {"invoice_id": "INV-201", "kind": "proration_credit", "amount_cents": 10},
     "negative"),
    (add_invoice_line, {"invoice_id": "INV-201", "kind": "plan", "amount_cents": -10},
     "negative"),
    (apply_credit, {"invoice_id": "INV-201", "amount_cents": 5_001}, "between 1 and 5000"),
    (apply_coupon, {"invoice_id": "INV-201", "code": "NOPE"}, "no coupon"),
    (change_plan, {"subscription_id": "S01", "plan_id": "pro", "when": "now"}, "already on"),
    (change_plan, {"subscription_id": "S01", "plan_id": "gold", "when": "now"}, "no plan"),
    (finalize_invoice, {"invoice_id": "INV-999"}, "no invoice"),
])
def test_bad_calls_are_tool_errors_and_change_nothing(tool: Any, args: dict[str, Any],
                                                       message: str) -> None:
    state = tiny_state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError, match=message):
        tool.call(state, args)
    assert state == before


def test_finalized_invoices_are_frozen_and_credit_is_capped_by_the_total() -> None:
    state = tiny_state()
    apply_coupon.call(state, {"invoice_id": "INV-201", "code": "LOYAL20"})  # 9900 - 1980
    with pytest.raises(ToolError, match="between 1 and 5000"):
        apply_credit.call(state, {"invoice_id": "INV-201", "amount_cents": 7_920})
    with pytest.raises(ToolError, match="already has coupon"):
        apply_coupon.call(state, {"invoice_id": "INV-201", "code": "LOYAL20"})
    assert finalize_invoice.call(state, {"invoice_id": "INV-201"})["total_cents"] == 7_920
    with pytest.raises(ToolError, match="only drafts"):
        add_invoice_line.call(state, {"invoice_id": "INV-201", "kind": "plan",
                                      "amount_cents": 100})
