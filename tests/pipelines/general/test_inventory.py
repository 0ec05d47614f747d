"""inventory: a hand-priced plan, and Dijkstra over every transfer sequence as the optimum oracle.

The Dijkstra search runs on the tools' own semantics (any warehouse may ship to any other,
relays and over-shipping included), so it checks the generator's claim that its DP over
direct shipments finds the true minimum.
"""

from __future__ import annotations

import copy
import heapq
import random
from typing import Any

import pytest

from envsynth.errors import ToolError
from envsynth.schema import GeneralTask
from pipelines.general.episode import Episode
from pipelines.general.families.inventory import (
    InventoryConfig,
    cancel_transfer,
    receive_po,
    transfer,
)
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment, to_tool_calls

FAMILY = load_families().get("inventory")
REBALANCE = FAMILY.variant("rebalance")


def line_state(fee: int = 100, cap: int = 40) -> dict[str, Any]:
    """W1 -- 3 km -- W2 -- 6 km -- W3 on a line, 10 cents per unit-km, one SKU."""
    def row(w: str, on_hand: int, safety: int) -> dict[str, Any]:
        return {"warehouse": w, "sku": "SKU-A", "on_hand": on_hand, "safety_stock": safety,
                "reorder_point": safety + 2}

    return {
        "warehouses": [{"id": "W1", "city": "a", "x": 0, "y": 0},
                       {"id": "W2", "city": "b", "x": 3, "y": 0},
                       {"id": "W3", "city": "c", "x": 9, "y": 0}],
        "stock": [row("W1", 1, 2), row("W2", 6, 4), row("W3", 12, 2)],
        "demand": [{"warehouse": "W1", "sku": "SKU-A", "qty": 5}],
        "purchase_orders": [{"id": "PO-1", "sku": "SKU-A", "warehouse": "W2", "qty_ordered": 5,
                             "due": "2025-06-01", "status": "arrived"}],
        "transfers": [], "receipts": [],
        "shipping": {"handling_fee_cents": fee, "cents_per_unit_km": 10, "truck_capacity": cap},
    }


def _task(state: dict[str, Any], **config: Any) -> Any:
    cfg = InventoryConfig(**config)
    return FAMILY.generate_task(random.Random(0), state, cfg, REBALANCE, 0)


def test_hand_priced_optimum() -> None:
    # W1 needs max(2, 5) = 5 and has 1. W2 may spare 6 - 4 = 2 at 30 c/unit, W3 10 at 90 c/unit.
    # 2 from W2 + 2 from W3 = 2 fees + 60 + 180 = 440; all 4 from W3 = 100 + 360 = 460.
    draft = _task(line_state())
    assert draft.goal["optimum_cents"] == 440
    # With a 1000-cent fee one transfer wins: 1000 + 360 = 1360 < 2000 + 240.
    assert _task(line_state(fee=1000)).goal["optimum_cents"] == 1360


def test_truck_capacity_prices_every_trip() -> None:
    # Fee 1000 and 2 units a truck: all 4 from W3 now takes two trips, 2000 + 360 = 2360, so
    # 2 from W2 + 2 from W3 wins again at 2000 + 60 + 180 = 2240 (uncapped: 1360).
    assert _task(line_state(fee=1000, cap=2), truck_capacity=2).goal["optimum_cents"] == 2240


def _payload(state: dict[str, Any], draft: Any) -> GeneralTask:
    # The "network" variant exposes both transfer and cancel_transfer.
    return GeneralTask(family="inventory", family_version=FAMILY.version, variant="network",
                       config={}, state=state, goal=dict(draft.goal),
                       reference=to_tool_calls(FAMILY.solve(state, draft, REBALANCE)), knobs={})


def _run(state: dict[str, Any], draft: Any, calls: list[tuple[str, dict[str, Any]]]) -> float:
    episode = Episode(_payload(state, draft))
    for name, args in calls:
        episode.call(name, args)
    return episode.verdict().reward


def _move(src: str, dst: str, qty: int) -> tuple[str, dict[str, Any]]:
    return ("transfer", {"sku": "SKU-A", "from_warehouse": src, "to_warehouse": dst, "qty": qty})


def test_verify_accepts_any_optimal_plan_and_rejects_costlier_or_short_ones() -> None:
    state = line_state()
    draft = _task(state)
    assert _run(state, draft, [_move("W2", "W1", 2), _move("W3", "W1", 2)]) == 1.0
    assert _run(state, draft, [_move("W3", "W1", 4)]) == 0.0                      # 460 > 440
    assert _run(state, draft, [_move("W2", "W1", 2), _move("W3", "W1", 1)]) == 0.0  # W1 short
    # Meets W1 but takes W2 below its safety stock of 4.
    assert _run(state, draft, [_move("W2", "W1", 4)]) == 0.0
    # Undoing a detour leaves no cost behind.
    assert _run(state, draft, [_move("W3", "W2", 1), ("cancel_transfer", {"transfer_id": "T1"}),
                               _move("W2", "W1", 2), _move("W3", "W1", 2)]) == 1.0


def _dijkstra(state: dict[str, Any], need: dict[str, int], incoming: dict[str, int]) -> int:
    """Cheapest sequence of transfers reaching every requirement, over all stock vectors."""
    ids = [w["id"] for w in state["warehouses"]]
    pos = {w["id"]: (w["x"], w["y"]) for w in state["warehouses"]}
    ship = state["shipping"]
    start = tuple(next(r["on_hand"] for r in state["stock"] if r["warehouse"] == w) for w in ids)
    seen: set[tuple[int, ...]] = set()
    heap = [(0, start)]
    while heap:
        cost, stock = heapq.heappop(heap)
        if stock in seen:
            continue
        seen.add(stock)
        if all(stock[i] + incoming.get(w, 0) >= need[w] for i, w in enumerate(ids)):
            return cost
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                if i == j:
                    continue
                km = abs(pos[a][0] - pos[b][0]) + abs(pos[a][1] - pos[b][1])
                for q in range(1, min(stock[i], ship["truck_capacity"]) + 1):
                    nxt = list(stock)
                    nxt[i] -= q
                    nxt[j] += q
                    step = ship["handling_fee_cents"] + q * km * ship["cents_per_unit_km"]
                    heapq.heappush(heap, (cost + step, tuple(nxt)))
    raise AssertionError("infeasible")


def _random_tiny(rng: random.Random) -> tuple[dict[str, Any], dict[str, int]]:
    n = rng.choice([3, 4])
    spots = rng.sample([(x, y) for x in range(0, 7) for y in range(0, 7)], n)
    state = line_state(fee=rng.choice([20, 60, 150]), cap=rng.choice([2, 3, 40]))
    state["warehouses"] = [{"id": f"W{i + 1}", "city": "x", "x": x, "y": y}
                           for i, (x, y) in enumerate(spots)]
    state["stock"], state["demand"], need = [], [], {}
    for w in state["warehouses"]:
        safety, demand = rng.randint(0, 2), rng.randint(0, 4)
        need[w["id"]] = max(safety, demand)
        state["stock"].append({"warehouse": w["id"], "sku": "SKU-A", "on_hand": rng.randint(0, 5),
                               "safety_stock": safety, "reorder_point": safety})
        state["demand"].append({"warehouse": w["id"], "sku": "SKU-A", "qty": demand})
    return state, need


def test_dp_optimum_equals_dijkstra_over_all_transfer_sequences() -> None:
    rng = random.Random(7)
    compared = 0
    while compared < 12:
        state, need = _random_tiny(rng)
        cap = state["shipping"]["truck_capacity"]
        draft = _task(state, truck_capacity=cap)
        if draft is None:  # nothing short, or not enough stock anywhere
            continue
        assert draft.goal["optimum_cents"] == _dijkstra(state, need, {}), state
        moves = [(c.name, dict(c.arguments)) for c in FAMILY.solve(state, draft, REBALANCE)
                 if c.name == "transfer"]
        assert _run(state, draft, moves) == 1.0
        compared += 1


def test_incoming_orders_count_but_cannot_be_shipped() -> None:
    state = line_state()
    state["purchase_orders"] = [{"id": "PO-9", "sku": "SKU-A", "warehouse": "W2",
                                 "qty_ordered": 3, "due": "2025-06-05", "status": "open"}]
    draft = FAMILY.generate_task(random.Random(0), state, InventoryConfig(incoming_pos=True),
                                 FAMILY.variant("incoming-orders"), 0)
    # W2 may now spare min(6, 6 + 3 - 4) = 5 at 30 c/unit: one transfer of 4 = 100 + 120.
    assert draft.goal["optimum_cents"] == 220
    assert draft.goal["optimum_cents"] == _dijkstra(state, {"W1": 5, "W2": 4, "W3": 2},
                                                    {"W2": 3})


def test_generated_tasks_replay_to_full_reward() -> None:
    for variant in FAMILY.variants:
        built = build_environment(EnvPlan(0, FAMILY.name, variant.name, 11), "t")
        for cand in built.candidates:
            checks = {c.check: c.reward for c in cand.checks}
            assert checks["reference"] == 1.0 and checks["noop"] == 0.0


@pytest.mark.parametrize(("tool", "args", "message"), [
    (transfer, {"sku": "SKU-A", "from_warehouse": "W1", "to_warehouse": "W2", "qty": 2},
     "has only 1"),
    (transfer, {"sku": "SKU-A", "from_warehouse": "W3", "to_warehouse": "W1", "qty": 41},
     "truck capacity"),
    (transfer, {"sku": "SKU-Z", "from_warehouse": "W3", "to_warehouse": "W1", "qty": 1},
     "no SKU"),
    (transfer, {"sku": "SKU-A", "from_warehouse": "W3", "to_warehouse": "W9", "qty": 1},
     "no warehouse"),
    (transfer, {"sku": "SKU-A", "from_warehouse": "W3", "to_warehouse": "W3", "qty": 1},
     "must differ"),
    (receive_po, {"po_id": "PO-1", "qty": 6}, "between 1 and 5"),
    (receive_po, {"po_id": "PO-4", "qty": 1}, "no purchase order"),
    (cancel_transfer, {"transfer_id": "T1"}, "no transfer"),
])
def test_bad_calls_are_tool_errors_and_change_nothing(tool: Any, args: dict[str, Any],
                                                       message: str) -> None:
    state = line_state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError, match=message):
        tool.call(state, args)
    assert state == before


def test_a_delivery_is_received_once_and_transfer_ids_never_repeat() -> None:
    state = line_state()
    receive_po.call(state, {"po_id": "PO-1", "qty": 4})
    assert state["stock"][1]["on_hand"] == 10 and state["receipts"] == [{"po": "PO-1", "qty": 4}]
    with pytest.raises(ToolError, match="only arrived"):
        receive_po.call(state, {"po_id": "PO-1", "qty": 1})
    for qty in (1, 2):
        transfer.call(state, {"sku": "SKU-A", "from_warehouse": "W3", "to_warehouse": "W1",
                              "qty": qty})
    cancel_transfer.call(state, {"transfer_id": "T1"})
    transfer.call(state, {"sku": "SKU-A", "from_warehouse": "W3", "to_warehouse": "W2", "qty": 1})
    assert [t["id"] for t in state["transfers"]] == ["T2", "T3"]
    assert [r["on_hand"] for r in state["stock"]] == [3, 11, 9]
