"""Multi-warehouse inventory: rebalance stock by transfers at minimum cost.

The state holds a handful of warehouses on a map, stock per SKU (on hand, safety stock,
reorder point), next week's demand forecast, purchase orders, and transfer lanes whose cost
is a handling fee per transfer plus a per-unit cost growing with distance. The agent must
bring every warehouse up to its required level for the asked SKUs (forecast demand and
safety stock, or the reorder point), sometimes counting purchase orders still on their way or
after receiving a delivery net of damaged units, and do so at the lowest total cost.

Validity-checked: the verifier recomputes every warehouse's level from the final state,
checks the requirement, any expected receipts, and that the total cost of the transfers made
equals the optimum an exact dynamic programme found at generation time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
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
    register_family,
)
from pipelines.general.tools import State, find_record, tool

_CITIES = ["Leeds", "Lille", "Lodz", "Linz", "Lyon", "Lugo", "Luton", "Lund"]
_GOODS = ["pallet racking", "solar panel", "water heater", "office chair", "bike frame"]
_HORIZON = "2025-06-07"


class InventoryConfig(FamilyConfig):
    warehouses: int = Field(5, ge=4, le=6)
    skus: int = Field(3, ge=3, le=5)
    rule: Literal["demand", "reorder"] = "demand"
    """Required level: max(forecast demand, safety stock), or the reorder point."""
    truck_capacity: int = Field(40, ge=2, le=40)
    incoming_pos: bool = False
    """Open purchase orders due by the horizon count as stock."""
    receipts: bool = False
    """A delivery has arrived and must be received (net of damaged units) first."""


# ---- state access --------------------------------------------------------------------------


def _row(state: State, warehouse: str, sku: str) -> dict[str, Any]:
    _check_sku(state, sku)
    for r in state["stock"]:
        if r["warehouse"] == warehouse and r["sku"] == sku:
            return r
    known = sorted({r["warehouse"] for r in state["stock"]})
    raise ToolError(f"no warehouse {warehouse!r}; warehouses: {', '.join(known)}")


def _unit_cost(state: State, a: str, b: str) -> int:
    pos = {w["id"]: (w["x"], w["y"]) for w in state["warehouses"]}
    (ax, ay), (bx, by) = pos[a], pos[b]
    return (abs(ax - bx) + abs(ay - by)) * state["shipping"]["cents_per_unit_km"]


def _check_sku(state: State, sku: str) -> None:
    if not any(r["sku"] == sku for r in state["stock"]):
        skus = sorted({r["sku"] for r in state["stock"]})
        raise ToolError(f"no SKU {sku!r}; SKUs: {', '.join(skus)}")


# ---- tools ---------------------------------------------------------------------------------


@tool()
def list_warehouses(state: State) -> list[dict[str, Any]]:
    """List the warehouses (id, city, map position) and the SKUs they stock."""
    skus = sorted({r["sku"] for r in state["stock"]})
    return [{**w, "skus": skus} for w in state["warehouses"]]


@tool()
def get_stock(state: State, sku: str) -> list[dict[str, Any]]:
    """Stock of one SKU in every warehouse: on_hand, safety_stock, reorder_point.

    Args:
        sku: the SKU code, e.g. "SKU-B".
    """
    _check_sku(state, sku)
    return [r for r in state["stock"] if r["sku"] == sku]


@tool()
def get_demand(state: State, sku: str) -> list[dict[str, Any]]:
    """Next week's forecast demand of one SKU per warehouse (warehouses not listed: none).

    Args:
        sku: the SKU code.
    """
    _check_sku(state, sku)
    return [d for d in state["demand"] if d["sku"] == sku]


@tool()
def get_lane(state: State, from_warehouse: str, to_warehouse: str) -> dict[str, Any]:
    """Cost of the transfer lane between two warehouses.

    A transfer costs handling_fee_cents plus unit_cost_cents for every unit, and carries at
    most truck_capacity units.

    Args:
        from_warehouse: the sending warehouse id, e.g. "W1".
        to_warehouse: the receiving warehouse id.
    """
    ids = {w["id"] for w in state["warehouses"]}
    for w in (from_warehouse, to_warehouse):
        if w not in ids:
            raise ToolError(f"no warehouse {w!r}; warehouses: {', '.join(sorted(ids))}")
    if from_warehouse == to_warehouse:
        raise ToolError("a lane joins two different warehouses")
    return {"from": from_warehouse, "to": to_warehouse,
            "unit_cost_cents": _unit_cost(state, from_warehouse, to_warehouse),
            "handling_fee_cents": state["shipping"]["handling_fee_cents"],
            "truck_capacity": state["shipping"]["truck_capacity"]}


@tool()
def lane_table(state: State) -> dict[str, Any]:
    """Every lane's per-unit cost (cents), with the handling fee per transfer."""
    ids = [w["id"] for w in state["warehouses"]]
    return {"handling_fee_cents": state["shipping"]["handling_fee_cents"],
            "unit_cost_cents": {a: {b: _unit_cost(state, a, b) for b in ids if b != a}
                                for a in ids}}


@tool()
def shipping_policy(state: State) -> dict[str, Any]:
    """The handling fee per transfer and the truck capacity (units per transfer)."""
    return dict(state["shipping"])


@tool()
def list_purchase_orders(state: State, sku: str | None = None) -> list[dict[str, Any]]:
    """Purchase orders (id, sku, warehouse, qty_ordered, due date, status), optionally for one SKU.

    Args:
        sku: only this SKU's orders when given.
    """
    if sku is not None:
        _check_sku(state, sku)
    return [p for p in state["purchase_orders"] if sku is None or p["sku"] == sku]


@tool(writes=True)
def receive_po(state: State, po_id: str, qty: int) -> str:
    """Book the delivery of a purchase order that has arrived: `qty` good units go on hand.

    Args:
        po_id: the purchase order id, e.g. "PO-7".
        qty: the number of good (undamaged) units received, at least 1.
    """
    po = find_record(state["purchase_orders"], po_id, f"no purchase order {po_id!r}")
    if po["status"] != "arrived":
        raise ToolError(f"{po_id} is {po['status']}; only arrived deliveries can be received")
    if not 1 <= qty <= po["qty_ordered"]:
        raise ToolError(f"qty must be between 1 and {po['qty_ordered']} (the quantity ordered)")
    po["status"] = "received"
    _row(state, po["warehouse"], po["sku"])["on_hand"] += qty
    state["receipts"].append({"po": po_id, "qty": qty})
    return f"received {qty} x {po['sku']} at {po['warehouse']}"


@tool(writes=True)
def transfer(state: State, sku: str, from_warehouse: str, to_warehouse: str, qty: int) -> str:
    """Move units of a SKU between warehouses now; costs the handling fee plus the lane's unit cost.

    Args:
        sku: the SKU code.
        from_warehouse: the sending warehouse; it must have the units on hand.
        to_warehouse: the receiving warehouse.
        qty: units to move, from 1 up to the truck capacity.
    """
    cap = state["shipping"]["truck_capacity"]
    if not 1 <= qty <= cap:
        raise ToolError(f"qty must be between 1 and the truck capacity {cap}")
    if from_warehouse == to_warehouse:
        raise ToolError("from_warehouse and to_warehouse must differ")
    src, dst = _row(state, from_warehouse, sku), _row(state, to_warehouse, sku)
    if src["on_hand"] < qty:
        raise ToolError(f"{from_warehouse} has only {src['on_hand']} x {sku} on hand")
    src["on_hand"] -= qty
    dst["on_hand"] += qty
    cost = state["shipping"]["handling_fee_cents"] + qty * _unit_cost(state, from_warehouse,
                                                                     to_warehouse)
    # Ids never repeat, even after a cancellation removed an earlier transfer.
    seq = max((int(t["id"][1:]) for t in state["transfers"]), default=0) + 1
    state["transfers"].append({"id": f"T{seq}", "sku": sku,
                               "from": from_warehouse, "to": to_warehouse, "qty": qty,
                               "cost_cents": cost})
    return f"moved {qty} x {sku} {from_warehouse}->{to_warehouse} for {cost} cents"


@tool(writes=True)
def cancel_transfer(state: State, transfer_id: str) -> str:
    """Undo a transfer made in this session (its units go back; its cost is dropped).

    Args:
        transfer_id: the id the transfer was given, e.g. "T2".
    """
    t = find_record(state["transfers"], transfer_id, f"no transfer {transfer_id!r}")
    dst = _row(state, t["to"], t["sku"])
    if dst["on_hand"] < t["qty"]:
        raise ToolError(f"{t['to']} no longer holds the {t['qty']} units to send back")
    dst["on_hand"] -= t["qty"]
    _row(state, t["from"], t["sku"])["on_hand"] += t["qty"]
    state["transfers"].remove(t)
    return f"transfer {transfer_id} cancelled"


# ---- requirement and exact optimum ---------------------------------------------------------


def _required(state: State, sku: str, rule: str) -> dict[str, int]:
    demand = {d["warehouse"]: d["qty"] for d in state["demand"] if d["sku"] == sku}
    return {r["warehouse"]: r["reorder_point"] if rule == "reorder"
            else max(r["safety_stock"], demand.get(r["warehouse"], 0))
            for r in state["stock"] if r["sku"] == sku}


def _incoming(state: State, sku: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in state["purchase_orders"]:
        if p["sku"] == sku and p["status"] == "open" and p["due"] <= _HORIZON:
            out[p["warehouse"]] = out.get(p["warehouse"], 0) + p["qty_ordered"]
    return out


def _splits(n: int, room: list[int]) -> Iterator[tuple[int, ...]]:
    """Every way to take `n` units from sources with the given room left."""
    if len(room) == 1:
        if n <= room[0]:
            yield (n,)
        return
    for q in range(min(n, room[0]), -1, -1):
        for rest in _splits(n - q, room[1:]):
            yield (q, *rest)


def _cheapest(surplus: Mapping[str, int], deficit: Mapping[str, int],
              lane: Mapping[tuple[str, str], int], fee: int, cap: int
              ) -> tuple[int, tuple[tuple[str, str, int], ...]] | None:
    """Exact minimum-cost plan: a DP over sinks whose state is the units taken per source.

    Costs are metric and every lane exists, so shipping directly from source to sink is never
    beaten by relaying through a third warehouse; the DP therefore covers every plan.
    """
    sources = sorted(w for w, q in surplus.items() if q > 0)
    best: dict[tuple[int, ...], tuple[int, tuple[tuple[str, str, int], ...]]] = {
        tuple(0 for _ in sources): (0, ())}
    for sink in sorted(w for w, q in deficit.items() if q > 0):
        nxt: dict[tuple[int, ...], tuple[int, tuple[tuple[str, str, int], ...]]] = {}
        for used, (cost, plan) in best.items():
            room = [surplus[s] - u for s, u in zip(sources, used, strict=True)]
            for split in _splits(deficit[sink], room) if room else ():
                moves = tuple((s, sink, q) for s, q in zip(sources, split, strict=True) if q)
                total = cost + sum(fee * -(-q // cap) + lane[s, t] * q for s, t, q in moves)
                key = tuple(u + q for u, q in zip(used, split, strict=True))
                if key not in nxt or (total, plan + moves) < nxt[key]:
                    nxt[key] = (total, plan + moves)
        best = nxt
    return min(best.values()) if best else None


def _positions(state: State, sku: str, rule: str, incoming: Mapping[str, int],
               received: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(surplus, deficit) per warehouse: what may leave now, and what must arrive."""
    surplus, deficit = {}, {}
    for w, need in _required(state, sku, rule).items():
        on_hand = _row(state, w, sku)["on_hand"] + received.get(w, 0)
        level = on_hand + incoming.get(w, 0)
        surplus[w] = max(0, min(on_hand, level - need))
        deficit[w] = max(0, need - level)
    return surplus, deficit


# ---- the family ----------------------------------------------------------------------------


@register_family
class Inventory(Family[InventoryConfig]):
    name = "inventory"
    summary = "Rebalance multi-warehouse stock by transfers at minimum cost, after receipts."
    config_model = InventoryConfig
    tools = (list_warehouses, get_stock, get_demand, get_lane, lane_table, shipping_policy,
             list_purchase_orders, receive_po, transfer, cancel_transfer)
    variants = (
        Variant("rebalance", ("list_warehouses", "get_stock", "get_demand", "get_lane",
                              "transfer"), ("demand_and_safety", "min_cost")),
        Variant("reorder-points", ("get_stock", "lane_table", "transfer", "cancel_transfer"),
                ("reorder_point", "min_cost"), {"rule": "reorder"}),
        Variant("truck-capacity", ("get_stock", "get_demand", "lane_table", "shipping_policy",
                                   "transfer"),
                ("demand_and_safety", "min_cost", "truck_capacity"), {"truck_capacity": 3}),
        Variant("incoming-orders", ("get_stock", "get_demand", "list_purchase_orders",
                                    "get_lane", "transfer"),
                ("demand_and_safety", "min_cost", "incoming_stock"), {"incoming_pos": True}),
        Variant("receive-then-rebalance", ("get_stock", "get_demand", "list_purchase_orders",
                                           "receive_po", "lane_table", "transfer"),
                ("demand_and_safety", "min_cost", "net_receipt"), {"receipts": True}),
        Variant("network", ("list_warehouses", "get_stock", "get_lane", "lane_table",
                            "shipping_policy", "list_purchase_orders", "transfer",
                            "cancel_transfer"),
                ("reorder_point", "min_cost", "truck_capacity", "incoming_stock"),
                {"warehouses": 6, "skus": 4, "rule": "reorder", "truck_capacity": 4,
                 "incoming_pos": True}),
    )

    def generate_state(self, rng: random.Random, config: InventoryConfig) -> State:
        spots = rng.sample([(x, y) for x in range(0, 31, 3) for y in range(0, 31, 3)],
                           config.warehouses)
        cities = rng.sample(_CITIES, len(spots))
        warehouses: list[dict[str, Any]] = [
            {"id": f"W{i + 1}", "city": city, "x": x, "y": y}
            for i, (city, (x, y)) in enumerate(zip(cities, spots, strict=True))]
        ids: list[str] = [w["id"] for w in warehouses]
        state: State = {
            "warehouses": warehouses, "stock": [], "demand": [], "purchase_orders": [],
            "transfers": [], "receipts": [],
            "shipping": {"handling_fee_cents": rng.randrange(1_500, 4_000, 100),
                         "cents_per_unit_km": rng.randint(8, 20),
                         "truck_capacity": config.truck_capacity},
        }
        for i in range(config.skus):
            sku = f"SKU-{chr(65 + i)}"
            _stock_sku(rng, state, config, sku, ids, sinks=1 if i == 0 else 2)
        return state

    def generate_task(self, rng: random.Random, state: State, config: InventoryConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        skus = sorted({r["sku"] for r in state["stock"]})
        chosen = [skus[0]] if level == 0 else sorted(rng.sample(skus[1:], level))
        receipts, dock = [], []
        if config.receipts:
            for sku in chosen:
                po = next(p for p in state["purchase_orders"]
                          if p["sku"] == sku and p["status"] == "arrived")
                delivered = po["qty_ordered"] - rng.randint(0, 1)
                damaged = rng.randint(1, min(2, delivered - 1))
                receipts.append([po["id"], delivered - damaged])
                dock.append((po, delivered, damaged))
        plan, optimum, required, incoming = [], 0, [], {}
        by_id = {p["id"]: p for p in state["purchase_orders"]}
        for sku in chosen:
            inc = _incoming(state, sku) if config.incoming_pos else {}
            got = {by_id[po]["warehouse"]: q for po, q in receipts if by_id[po]["sku"] == sku}
            surplus, deficit = _positions(state, sku, config.rule, inc, got)
            found = _cheapest(surplus, deficit, _lanes(state), _fee(state),
                              config.truck_capacity)
            if found is None:
                return None
            optimum += found[0]
            plan += [(sku, *move) for move in found[1]]
            required += [[w, sku, need] for w, need in _required(state, sku, config.rule).items()]
            incoming.update({f"{w}|{sku}": q for w, q in inc.items()})
        if not plan:
            return None
        return TaskDraft(
            instruction=_instruction(chosen, config, dock),
            goal={"skus": chosen, "required": required, "incoming": incoming,
                  "receipts": receipts, "optimum_cents": optimum,
                  "plan": [list(m) for m in plan]},
            knobs={"steps": len(plan) + 2 * len(chosen) + len(receipts),
                   "constraints": len(variant.constraints),
                   "distractors": len(state["warehouses"]) - len({m[2] for m in plan})},
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        tools = set(variant.tools)
        calls = [Call("get_stock", {"sku": sku}) for sku in g["skus"]]
        if "get_demand" in tools:
            calls += [Call("get_demand", {"sku": sku}) for sku in g["skus"]]
        if "list_purchase_orders" in tools:
            calls.append(Call("list_purchase_orders"))
        if "lane_table" in tools:
            calls.append(Call("lane_table"))
        calls += [Call("receive_po", {"po_id": po, "qty": q}) for po, q in g["receipts"]]
        cap = state["shipping"]["truck_capacity"]
        for sku, src, dst, qty in g["plan"]:
            if "lane_table" not in tools:
                calls.append(Call("get_lane", {"from_warehouse": src, "to_warehouse": dst}))
            while qty > 0:
                calls.append(Call("transfer", {"sku": sku, "from_warehouse": src,
                                               "to_warehouse": dst, "qty": min(qty, cap)}))
                qty -= cap
        return [*calls, Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        on_hand = {(r["warehouse"], r["sku"]): r["on_hand"] for r in final_state["stock"]}
        short = [f"{w} {sku} {on_hand[w, sku] + goal['incoming'].get(f'{w}|{sku}', 0)}<{need}"
                 for w, sku, need in goal["required"]
                 if on_hand[w, sku] + goal["incoming"].get(f"{w}|{sku}", 0) < need]
        booked = sorted([x["po"], x["qty"]] for x in final_state["receipts"])
        receipts_ok = booked == sorted(goal["receipts"])
        cost = sum(t["cost_cents"] for t in final_state["transfers"])
        cheapest = cost <= goal["optimum_cents"]
        ok = not short and receipts_ok and cheapest
        reasons = ([f"below requirement: {', '.join(short)}"] if short else []) + (
            [f"receipts {booked} != {sorted(goal['receipts'])}"] if not receipts_ok else []) + (
            [f"cost {cost} > optimum {goal['optimum_cents']}"] if not cheapest else [])
        return Verdict(
            reward=float(ok),
            components={"requirements_met": float(not short), "receipts": float(receipts_ok),
                        "cost_efficiency": min(1.0, goal["optimum_cents"] / cost) if cost
                        else float(goal["optimum_cents"] == 0)},
            reason="feasible at the optimal cost" if ok else "; ".join(reasons),
        )

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        moves = [i for i, c in enumerate(reference) if c.name == "transfer"]
        last = reference[moves[-1]]
        short = [*reference[:moves[-1]],
                 *([Call("transfer", {**last.arguments, "qty": last.arguments["qty"] - 1})]
                   if last.arguments["qty"] > 1 else []),
                 *reference[moves[-1] + 1:]]
        wrong = list(reference)
        receipts = [i for i, c in enumerate(reference) if c.name == "receive_po"]
        if receipts:  # booking the damaged units too
            po = next(p for p in state["purchase_orders"]
                      if p["id"] == reference[receipts[0]].arguments["po_id"])
            good = reference[receipts[0]].arguments["qty"]
            wrong[receipts[0]] = Call("receive_po", {"po_id": po["id"],
                                                     "qty": min(good + 1, po["qty_ordered"])})
        else:  # one transfer sent to the wrong warehouse
            first = reference[moves[0]]
            others = [w["id"] for w in state["warehouses"]
                      if w["id"] not in (first.arguments["to_warehouse"],
                                         first.arguments["from_warehouse"])]
            wrong[moves[0]] = Call("transfer", {**first.arguments, "to_warehouse": others[0]})
        return {"constraint_broken": short, "wrong_value": wrong}


def _lanes(state: State) -> dict[tuple[str, str], int]:
    ids = [w["id"] for w in state["warehouses"]]
    return {(a, b): _unit_cost(state, a, b) for a in ids for b in ids if a != b}


def _fee(state: State) -> int:
    return state["shipping"]["handling_fee_cents"]


def _stock_sku(rng: random.Random, state: State, config: InventoryConfig, sku: str,
               ids: list[str], sinks: int) -> None:
    """Stock one SKU: `sinks` warehouses short, up to three with spare units, the rest exact."""
    order = rng.sample(ids, len(ids))
    short, spare = order[:sinks], order[sinks:sinks + 3]
    for w in ids:
        safety = rng.randint(1, 4)
        rop = safety + rng.randint(2, 5)
        demand = rng.randint(0, 12)
        need = rop if config.rule == "reorder" else max(safety, demand)
        if w in short:
            on_hand = max(0, need - rng.randint(2, 6))
        else:
            on_hand = need + (rng.randint(1, 6) if w in spare else 0)
        state["stock"].append({"warehouse": w, "sku": sku, "on_hand": on_hand,
                               "safety_stock": safety, "reorder_point": rop})
        if demand:
            state["demand"].append({"warehouse": w, "sku": sku, "qty": demand})
    pos = _positions(state, sku, config.rule, {}, {})
    gap = sum(pos[1].values()) - sum(pos[0].values())
    if gap > 0:  # keep the problem feasible: top up one warehouse with spare units
        _row(state, spare[0], sku)["on_hand"] += gap + rng.randint(0, 2)
    pos_id = len(state["purchase_orders"])
    orders = []
    if config.incoming_pos:  # one due in time (counts), one due late (a distractor)
        orders += [{"sku": sku, "warehouse": rng.choice(ids), "qty_ordered": rng.randint(1, 4),
                    "due": f"2025-06-0{rng.randint(2, 7)}", "status": "open"},
                   {"sku": sku, "warehouse": short[0], "qty_ordered": rng.randint(2, 6),
                    "due": f"2025-06-{rng.randint(9, 20)}", "status": "open"}]
    if config.receipts:
        orders.append({"sku": sku, "warehouse": rng.choice([*short, *spare]),
                       "qty_ordered": rng.randint(3, 8), "due": "2025-06-01",
                       "status": "arrived"})
    rng.shuffle(orders)
    state["purchase_orders"] += [{"id": f"PO-{pos_id + i + 1}", **p} for i, p in enumerate(orders)]


def _instruction(skus: list[str], config: InventoryConfig,
                 dock: list[tuple[dict[str, Any], int, int]]) -> str:
    parts = []
    for po, delivered, damaged in dock:
        parts.append(f"Purchase order {po['id']} ({po['sku']}) has arrived at "
                     f"{po['warehouse']}: the dock counted {delivered} units, {damaged} of them "
                     "damaged. Receive only the undamaged units first.")
    rule = ("at least its reorder point" if config.rule == "reorder"
            else "at least its forecast demand for next week and at least its safety stock")
    parts.append(f"Rebalance {' and '.join(skus)} across our warehouses with transfers so that "
                 f"afterwards every warehouse holds {rule} of {'each' if len(skus) > 1 else 'it'}.")
    if config.incoming_pos:
        parts.append(f"Open purchase orders due on or before {_HORIZON} count as stock of their "
                     "warehouse already (but their units cannot be shipped before they arrive); "
                     "later orders do not count.")
    parts.append("Each transfer costs the handling fee plus the lane's per-unit cost for every "
                 f"unit, and carries at most {config.truck_capacity} units. Use the plan with "
                 "the lowest total cost, move nothing else, then submit.")
    return " ".join(parts)
