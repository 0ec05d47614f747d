"""bin_packing: hand-priced packings and a set-partition brute force as oracles."""

from __future__ import annotations

import copy

import pytest

from envsynth.errors import ToolError
from pipelines.general.families.bin_packing import BOX_TYPES
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

FAMILY = load_families().get("bin_packing")
ORDER = ["I1", "I2", "I3", "I4"]


def _state(boxes: tuple | list = (), fragile: bool = False,
           max_items: int | None = None, hazmat: str | None = None) -> dict:
    """Four items, 67 l and 19 kg in all: one L box (650) without rules. With the fragile
    rule I1 may not meet I2 (9 kg); the best split is M[I1, I3] + M[I2, I4] = 900."""
    spec = [("I1", 10, 2, True), ("I2", 15, 9, False), ("I3", 30, 5, False), ("I4", 12, 3, False)]
    items = [{"id": i, "name": i, "volume_l": v, "weight_kg": w, "fragile": f,
              "hazmat": i == hazmat} for i, v, w, f in spec]
    items.append({"id": "I9", "name": "x", "volume_l": 1, "weight_kg": 1, "fragile": False,
                  "hazmat": False})
    return {"items": items, "orders": [{"id": "O1", "items": ORDER}, {"id": "O2", "items": ["I9"]}],
            "box_types": BOX_TYPES,
            "rules": {"fragile_rule": fragile, "heavy_kg": 8, "max_items": max_items,
                      "hazmat_alone": hazmat is not None},
            "boxes": [{"id": f"B{n}", "type": t, "items": list(its)}
                      for n, (t, its) in enumerate(boxes, start=1)],
            "next_box": len(boxes), "details_in_list": True}


def _goal(optimum: int) -> dict:
    return {"mode": "boxes", "order": ORDER, "optimum_cents": optimum}


def test_no_rules_one_large_box() -> None:
    assert FAMILY.verify(_state([("L", ORDER)]), None, _goal(650)).reward == 1.0
    assert FAMILY.verify(_state([("XL", ORDER)]), None, _goal(650)).reward == 0.0
    opened = _state([("L", ORDER), ("S", [])])  # an empty box is still paid for
    assert FAMILY.verify(opened, None, _goal(650)).reward == 0.0


@pytest.mark.parametrize("boxes, reward, why", [
    ([("M", ["I1", "I3"]), ("M", ["I2", "I4"])], 1.0, "cost 900"),
    ([("L", ORDER)], 0.0, "fragile I1"),
    ([("M", ["I1", "I4"]), ("L", ["I2", "I3"])], 0.0, "cost 1100"),
    ([("S", ["I1", "I4"]), ("L", ["I2", "I3"])], 0.0, "cannot take"),   # 22 l in a 20 l box
    ([("M", ["I1", "I3"]), ("M", ["I2"])], 0.0, "exactly once"),
    ([("M", ["I1", "I3"]), ("M", ["I2", "I4", "I9"])], 0.0, "exactly once"),
])
def test_fragile_rule_by_hand(boxes: list, reward: float, why: str) -> None:
    verdict = FAMILY.verify(_state(boxes, fragile=True), None, _goal(900))
    assert verdict.reward == reward and why in verdict.reason


def test_item_limit_and_hazmat_by_hand() -> None:
    three = [("M", ["I1", "I3"]), ("L", ["I2", "I4"])]
    assert FAMILY.verify(_state(three, max_items=2), None, _goal(900)).components["valid"] == 1.0
    crowded = [("L", ["I1", "I3", "I4"]), ("M", ["I2"])]
    assert "over the limit" in FAMILY.verify(_state(crowded, max_items=2), None,
                                             _goal(900)).reason
    # I3 hazardous: alone in M (450); the other three (37 l, 14 kg) fit one M: 900.
    alone = [("M", ["I3"]), ("M", ["I1", "I2", "I4"])]
    assert FAMILY.verify(_state(alone, hazmat="I3"), None, _goal(900)).reward == 1.0
    assert "hazmat" in FAMILY.verify(_state([("L", ORDER)], hazmat="I3"), None,
                                     _goal(900)).reason


def test_quotes_are_parsed_and_totals_checked() -> None:
    goal = {**_goal(900), "mode": "quote"}
    plan = ["M: I1, I3", "M: I2,I4"]
    state = _state(fragile=True)
    assert FAMILY.verify(state, {"boxes": plan, "total_cents": 900}, goal).reward == 1.0
    assert FAMILY.verify(state, {"boxes": plan, "total_cents": 850}, goal).reward == 0.0
    assert FAMILY.verify(state, {"boxes": ["M I1 I3", "M: I2, I4"], "total_cents": 900},
                         goal).reward == 0.0
    assert FAMILY.verify(state, {"boxes": ["Q: I1, I3", "M: I2, I4"], "total_cents": 900},
                         goal).reward == 0.0
    assert FAMILY.verify(state, None, goal).reward == 0.0


def _partitions(items: list[str]):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _partitions(rest):
        yield [[first], *part]
        for k in range(len(part)):
            yield [*part[:k], [first, *part[k]], *part[k + 1:]]


def _brute_force(state: dict, order: list[str]) -> int:
    """Cheapest packing over every set partition; box rules re-implemented here."""
    info = {i["id"]: i for i in state["items"]}
    rules = state["rules"]

    def box_cost(group: list[str]) -> int | None:
        its = [info[i] for i in group]
        if rules["max_items"] and len(its) > rules["max_items"]:
            return None
        if rules["hazmat_alone"] and len(its) > 1 and any(i.get("hazmat") for i in its):
            return None
        if rules["fragile_rule"]:
            for a in its:
                for b in its:
                    if a is not b and a["fragile"] and b["weight_kg"] >= rules["heavy_kg"]:
                        return None
        fits = [t["cost_cents"] for t in state["box_types"]
                if sum(i["volume_l"] for i in its) <= t["max_volume_l"]
                and sum(i["weight_kg"] for i in its) <= t["max_weight_kg"]]
        return min(fits) if fits else None

    best = None
    for part in _partitions(order):
        costs = [box_cost(g) for g in part]
        if None not in costs:
            total = sum(c for c in costs if c is not None)
            best = total if best is None else min(best, total)
    assert best is not None
    return best


@pytest.mark.parametrize("variant", ["pack", "fragile", "quote", "hazmat", "max-items"])
def test_stored_optimum_matches_partition_brute_force(variant: str) -> None:
    for seed in range(3):
        built = build_environment(EnvPlan(0, "bin_packing", variant, seed), "d")
        assert built.candidates
        for cand in built.candidates:
            goal = cand.task.payload.goal
            assert goal["optimum_cents"] == _brute_force(built.state, goal["order"])


def test_tools_reject_bad_input_and_leave_state_alone() -> None:
    tools = FAMILY.tool_index
    state = _state([("M", ["I1"]), ("S", [])])
    before = copy.deepcopy(state)
    for name, args in [
        ("open_box", {"box_type": "XXL"}),
        ("pack_item", {"item_id": "I1", "box_id": "B2"}),   # already in B1
        ("pack_item", {"item_id": "I2", "box_id": "B7"}),
        ("pack_item", {"item_id": "I77", "box_id": "B2"}),
        ("unpack_item", {"item_id": "I2"}),
        ("remove_box", {"box_id": "B1"}),                   # not empty
        ("list_order_items", {"order_id": "O9"}),
        ("get_item", {"item_id": ["I1"]}),
    ]:
        with pytest.raises(ToolError):
            tools[name].call(state, args)
    assert state == before
    assert tools["open_box"].call(state, {"box_type": "L"}) == "B3"
    tools["remove_box"].call(state, {"box_id": "B2"})
    assert [b["id"] for b in state["boxes"]] == ["B1", "B3"]
    assert tools["view_boxes"].call(state, {})["total_cents"] == 450 + 650
