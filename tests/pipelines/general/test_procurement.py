"""procurement: the verifier against hand-priced baskets and an independent brute force."""

from __future__ import annotations

import copy
import itertools
import random

import pytest

from envsynth.errors import ToolError
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

FAMILY = load_families().get("procurement")


def _state(cart: list[tuple[str, str, int]] | None = None) -> dict:
    """Two suppliers, two items; every cost below was worked out by hand."""
    return {
        "suppliers": [
            {"id": "S1", "name": "A", "shipping_cents": 1000, "free_shipping_over_cents": None,
             "discount": None},
            {"id": "S2", "name": "B", "shipping_cents": 300, "free_shipping_over_cents": None,
             "discount": None},
        ],
        "offers": [
            {"supplier": "S1", "item": "bolt", "pack_size": 10, "pack_cents": 500, "min_packs": 1},
            {"supplier": "S1", "item": "hinge", "pack_size": 5, "pack_cents": 600, "min_packs": 2},
            {"supplier": "S2", "item": "bolt", "pack_size": 25, "pack_cents": 1000, "min_packs": 1},
            {"supplier": "S2", "item": "hinge", "pack_size": 1, "pack_cents": 130, "min_packs": 1,
             "stock_packs": 9},
        ],
        "cart": [{"supplier": s, "item": i, "packs": p} for s, i, p in cart or []],
    }


# bolt 30 / hinge 8: S2+S2 = 2000 + 1040 + 300 = 3340 beats the per-item cheapest
# lines (S1 bolt 1500+1000, S2 hinge 1040+300 = 3840).
GOAL = {"mode": "cart", "basket": {"bolt": 30, "hinge": 8}, "optimum_cents": 3340}


def test_hand_priced_optimum_passes() -> None:
    verdict = FAMILY.verify(_state([("S2", "bolt", 2), ("S2", "hinge", 8)]), None, GOAL)
    assert verdict.reward == 1.0, verdict.reason


@pytest.mark.parametrize("cart, why", [
    ([("S1", "bolt", 3), ("S2", "hinge", 8)], "optimum"),        # greedy plan, 3840
    ([("S1", "bolt", 3), ("S1", "hinge", 2)], "optimum"),        # 3700
    ([("S2", "bolt", 2), ("S2", "hinge", 9)], "fewest"),         # one pack too many
    ([("S2", "bolt", 2), ("S2", "hinge", 7)], "fewest"),         # 7 units do not cover 8
    ([("S2", "bolt", 2)], "not bought"),
    ([("S2", "bolt", 2), ("S2", "hinge", 8), ("S1", "hinge", 2)], "twice"),
])
def test_hand_priced_failures(cart: list[tuple[str, str, int]], why: str) -> None:
    verdict = FAMILY.verify(_state(cart), None, GOAL)
    assert verdict.reward == 0.0 and why in verdict.reason


def test_discount_then_free_shipping_by_hand() -> None:
    state = _state([("S1", "bolt", 6)])
    state["suppliers"][0].update(discount={"min_subtotal_cents": 2000, "percent": 10},
                                 free_shipping_over_cents=2500)
    # 6 x 500 = 3000, minus 10 % = 2700, which clears the 2500 free-shipping bar.
    goal = {"mode": "cart", "basket": {"bolt": 60}, "optimum_cents": 2700}
    assert FAMILY.verify(state, None, goal).reward == 1.0
    state["suppliers"][0]["free_shipping_over_cents"] = 2800
    assert FAMILY.verify(state, None, goal).reward == 0.0  # now 2700 + 1000 shipping


def test_plan_answer_needs_the_right_total() -> None:
    goal = {**GOAL, "mode": "plan"}
    lines = ["S2/bolt/2", "S2/hinge/8"]
    assert FAMILY.verify(_state(), {"lines": lines, "total_cents": 3340}, goal).reward == 1.0
    assert FAMILY.verify(_state(), {"lines": lines, "total_cents": 3300}, goal).reward == 0.0
    dashed = {"lines": ["S2-bolt-2", "S2-hinge-8"], "total_cents": 3340}
    assert FAMILY.verify(_state(), dashed, goal).reward == 0.0
    assert FAMILY.verify(_state(), None, goal).reward == 0.0


def _brute_force(state: dict, basket: dict[str, int]) -> int:
    """Cheapest single-sourced purchase, written independently of the family's code."""
    sups = {s["id"]: s for s in state["suppliers"]}
    choices = []
    for item, qty in basket.items():
        opts = []
        for o in state["offers"]:
            if o["item"] != item:
                continue
            packs = o.get("min_packs", 1)
            while packs * o["pack_size"] < qty:
                packs += 1
            if packs <= o.get("stock_packs", 10**9):
                opts.append((o["supplier"], packs * o["pack_cents"]))
        choices.append(opts)
    best = None
    for combo in itertools.product(*choices):
        goods: dict[str, int] = {}
        for sup, cents in combo:
            goods[sup] = goods.get(sup, 0) + cents
        total = 0
        for sup, g in goods.items():
            d = sups[sup]["discount"]
            if d is not None and g >= d["min_subtotal_cents"]:
                g = g - (g * d["percent"]) // 100
            free = sups[sup]["free_shipping_over_cents"]
            total += g if free is not None and g >= free else g + sups[sup]["shipping_cents"]
        best = total if best is None else min(best, total)
    assert best is not None
    return best


@pytest.mark.parametrize("variant", ["cart", "plan", "big-market", "stock"])
def test_stored_optimum_matches_independent_brute_force(variant: str) -> None:
    for seed in range(6):
        built = build_environment(EnvPlan(0, "procurement", variant, seed), "d")
        for cand in built.candidates:
            goal = cand.task.payload.goal
            assert goal["optimum_cents"] == _brute_force(built.state, goal["basket"])


def test_tools_reject_bad_orders_and_leave_state_alone() -> None:
    tools = FAMILY.tool_index
    state = _state([("S2", "bolt", 1)])
    before = copy.deepcopy(state)
    bad = [
        ("add_to_cart", {"supplier_id": "S1", "item": "hinge", "packs": 1}),   # min 2 packs
        ("add_to_cart", {"supplier_id": "S2", "item": "hinge", "packs": 10}),  # stock 9
        ("add_to_cart", {"supplier_id": "S9", "item": "bolt", "packs": 1}),
        ("add_to_cart", {"supplier_id": "S1", "item": "gear", "packs": 1}),
        ("add_to_cart", {"supplier_id": "S1", "item": "bolt", "packs": 0}),
        ("add_to_cart", {"supplier_id": "S1", "item": "bolt", "packs": "2"}),  # strict types
        ("remove_from_cart", {"supplier_id": "S1", "item": "bolt"}),
        ("get_catalog", {"supplier_id": "nope"}),
        ("find_offers", {"item": "gear"}),
    ]
    for name, args in bad:
        with pytest.raises(ToolError):
            tools[name].call(state, args)
    assert state == before
    tools["add_to_cart"].call(state, {"supplier_id": "S2", "item": "bolt", "packs": 1})
    assert state["cart"] == [{"supplier": "S2", "item": "bolt", "packs": 2}]


def test_generation_is_seeded() -> None:
    config = FAMILY.config_for(FAMILY.variant("plan"))
    a = FAMILY.generate_state(random.Random(5), config)
    assert a == FAMILY.generate_state(random.Random(5), config)
    assert a != FAMILY.generate_state(random.Random(6), config)
