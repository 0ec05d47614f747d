"""Warehouse packing: pack an order's items into boxes at the least total box cost.

The state is a warehouse's pending orders (items with weight, volume and fragile or
hazardous flags), the box types on the shelf (volume, weight limit, price) and the boxes
opened so far. Packing rules vary by variant: fragile items may not share a box with heavy
ones, a box holds a limited number of items, hazardous items travel alone. The agent packs
boxes with state-changing tools (or quotes a packing plan); the verifier checks every box
against the rules and the total cost against the optimum of an exact subset DP over the
order's items, computed when the task was generated.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

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
    register_family,
)
from pipelines.general.tools import State, find_record, tool

_GOODS = ["vase", "kettle", "lamp", "drill", "books", "mirror", "printer", "glasses", "rug",
          "speaker", "monitor", "paint", "tiles", "plant pot", "blender", "helmet", "toolbox",
          "cushion", "battery pack", "solvent"]
BOX_TYPES = [{"code": "S", "max_volume_l": 20, "max_weight_kg": 8, "cost_cents": 300},
             {"code": "M", "max_volume_l": 40, "max_weight_kg": 15, "cost_cents": 450},
             {"code": "L", "max_volume_l": 70, "max_weight_kg": 25, "cost_cents": 650},
             {"code": "XL", "max_volume_l": 110, "max_weight_kg": 35, "cost_cents": 900}]

Packing = list[tuple[str, list[str]]]
"""Boxes as (box type code, item ids)."""


OrderSize = Annotated[int, Field(ge=2, le=8)]
"""Items in one order: at most 8, as the exact DP costs 3^n."""


class PackingConfig(FamilyConfig):
    order_sizes: tuple[OrderSize, OrderSize, OrderSize] = (5, 6, 7)
    """Items in the order of each difficulty level."""
    fragile_rule: bool = False
    """Fragile items may not share a box with an item of `heavy_kg` or more."""
    heavy_kg: int = Field(8, ge=3, le=20)
    max_items: int | None = Field(None, ge=2, le=6)
    """Most items one box may hold (no limit when None)."""
    hazmat: bool = False
    """Some items are hazardous and must travel alone in their box."""
    details_in_list: bool = True
    """`list_order_items` shows weights and volumes; otherwise only `get_item` does."""


class PackingPlan(Answer):
    boxes: list[str] | None = Field(
        None, description='one entry per box, "TYPE: ITEM, ITEM", e.g. "M: I3, I7" (quotes only)')
    total_cents: int | None = Field(None, description="the plan's total box cost (quotes only)")


# ---- rules and the exact optimum -----------------------------------------------------------------


def _box_problem(state: State, code: str, item_ids: Sequence[str]) -> str | None:
    """Why a box of type `code` cannot hold these items, or None."""
    types = {b["code"]: b for b in state["box_types"]}
    items = {i["id"]: i for i in state["items"]}
    rules = state["rules"]
    box = types.get(code)
    if box is None:
        return f"unknown box type {code!r}"
    if any(i not in items for i in item_ids):
        return "a box holds an unknown item"
    chosen = [items[i] for i in item_ids]
    volume, weight = sum(i["volume_l"] for i in chosen), sum(i["weight_kg"] for i in chosen)
    if volume > box["max_volume_l"] or weight > box["max_weight_kg"]:
        return f"a {code} box cannot take {volume} l / {weight} kg"
    if rules["max_items"] and len(chosen) > rules["max_items"]:
        return f"a box holds {len(chosen)} items, over the limit of {rules['max_items']}"
    if rules["fragile_rule"]:
        for a, first in enumerate(chosen):
            if first["fragile"] and any(b != a and other["weight_kg"] >= rules["heavy_kg"]
                                        for b, other in enumerate(chosen)):
                return f"fragile {first['id']} shares a box with a heavy item"
    if rules["hazmat_alone"] and len(chosen) > 1 and any(i.get("hazmat") for i in chosen):
        return "a hazmat item shares its box"
    return None


def _cheapest_box(state: State, item_ids: Sequence[str]) -> tuple[int, str] | None:
    for box in sorted(state["box_types"], key=lambda b: b["cost_cents"]):
        if _box_problem(state, box["code"], item_ids) is None:
            return box["cost_cents"], box["code"]
    return None


def _optimum(state: State, item_ids: Sequence[str]) -> tuple[int, Packing] | None:
    """Exact cheapest packing by DP over subsets: best[mask] = min over the sub-box holding
    mask's lowest item of box[sub] + best[mask - sub]. Box feasibility is worked out on bit
    masks (the same rules as `_box_problem`, which the verifier uses) to stay fast."""
    n, rules = len(item_ids), state["rules"]
    items = {i["id"]: i for i in state["items"]}
    chosen = [items[i] for i in item_ids]
    bits = [1 << k for k in range(n)]
    fragile = sum(b for b, i in zip(bits, chosen, strict=True) if i["fragile"])
    heavy = sum(b for b, i in zip(bits, chosen, strict=True) if i["weight_kg"] >= rules["heavy_kg"])
    hazmat = sum(b for b, i in zip(bits, chosen, strict=True) if i.get("hazmat"))
    boxes = sorted(state["box_types"], key=lambda b: b["cost_cents"])
    vol, wt, count = [0] * (1 << n), [0] * (1 << n), [0] * (1 << n)
    single: dict[int, tuple[int, str]] = {}
    for mask in range(1, 1 << n):
        low = mask & -mask
        k = low.bit_length() - 1
        vol[mask] = vol[mask ^ low] + chosen[k]["volume_l"]
        wt[mask] = wt[mask ^ low] + chosen[k]["weight_kg"]
        count[mask] = count[mask ^ low] + 1
        f, h = fragile & mask, heavy & mask
        if rules["max_items"] and count[mask] > rules["max_items"]:
            continue
        # A fragile item clashes with any other heavy item in the box.
        if rules["fragile_rule"] and f and h and (h & (h - 1) or f & ~h):
            continue
        if rules["hazmat_alone"] and hazmat & mask and count[mask] > 1:
            continue
        for box in boxes:
            if vol[mask] <= box["max_volume_l"] and wt[mask] <= box["max_weight_kg"]:
                single[mask] = (box["cost_cents"], box["code"])
                break
    best: dict[int, tuple[int, int]] = {0: (0, 0)}
    for mask in range(1, 1 << n):
        low = mask & -mask
        sub, choice = mask, None
        while sub:
            if sub & low and sub in single and mask ^ sub in best:
                cost = single[sub][0] + best[mask ^ sub][0]
                if choice is None or cost < choice[0]:
                    choice = (cost, sub)
            sub = (sub - 1) & mask
        if choice is not None:
            best[mask] = choice
    full = (1 << n) - 1
    if full not in best:
        return None
    packing: Packing = []
    mask = full
    while mask:
        sub = best[mask][1]
        packing.append((single[sub][1], [item_ids[i] for i in range(n) if sub >> i & 1]))
        mask ^= sub
    return best[full][0], packing


def _packing_cost(state: State, packing: Packing) -> int:
    types = {b["code"]: b["cost_cents"] for b in state["box_types"]}
    return sum(types[code] for code, _ in packing)


def _packing_problem(state: State, packing: Packing, order: Sequence[str]) -> str | None:
    packed = [i for _, items in packing for i in items]
    if sorted(packed) != sorted(order):
        return "every item of the order must be packed exactly once, and nothing else"
    for code, items in packing:
        problem = _box_problem(state, code, items)
        if problem:
            return problem
    return None


# ---- tools ------------------------------------------------------------------------------------


def _box(state: State, box_id: str) -> dict[str, Any]:
    return find_record(
        state["boxes"], box_id, f"no open box {box_id!r}; open_box gives ids like 'B1'"
    )


def _item(state: State, item_id: str) -> dict[str, Any]:
    return find_record(state["items"], item_id, f"no item {item_id!r}; item ids look like 'I4'")


@tool()
def list_order_items(state: State, order_id: str) -> list[dict[str, Any]]:
    """The items of an order (with weight_kg, volume_l and flags where shown).

    Args:
        order_id: the order's id, e.g. "O2".
    """
    order = find_record(
        state["orders"], order_id, f"no order {order_id!r}; order ids look like 'O1'"
    )
    items = [_item(state, i) for i in order["items"]]
    return items if state["details_in_list"] else [{"id": i["id"], "name": i["name"]}
                                                   for i in items]


@tool()
def get_item(state: State, item_id: str) -> dict[str, Any]:
    """One item: weight_kg, volume_l, fragile and (where used) hazmat.

    Args:
        item_id: the item's id, e.g. "I4".
    """
    return _item(state, item_id)


@tool()
def list_box_types(state: State) -> list[dict[str, Any]]:
    """The box types: code, max_volume_l, max_weight_kg and cost_cents (paid per box used)."""
    return state["box_types"]


@tool()
def packing_rules(state: State) -> dict[str, Any]:
    """The packing rules: whether fragile items may not share a box with items of heavy_kg or
    more, the most items per box (null: no limit), and whether hazmat items travel alone."""
    return state["rules"]


@tool(writes=True)
def open_box(state: State, box_type: str) -> str:
    """Open a new empty box of a type; returns its id. Every opened box is paid for.

    Args:
        box_type: a box type code, e.g. "M".
    """
    if box_type not in {b["code"] for b in state["box_types"]}:
        raise ToolError(f"no box type {box_type!r}; see list_box_types")
    state["next_box"] += 1
    box_id = f"B{state['next_box']}"
    state["boxes"].append({"id": box_id, "type": box_type, "items": []})
    return box_id


@tool(writes=True)
def pack_item(state: State, item_id: str, box_id: str) -> str:
    """Put an item into an open box. The tool does not check sizes or rules.

    Args:
        item_id: the item, e.g. "I4".
        box_id: an open box, e.g. "B1".
    """
    _item(state, item_id)
    box = _box(state, box_id)
    holder = next((b["id"] for b in state["boxes"] if item_id in b["items"]), None)
    if holder:
        raise ToolError(f"{item_id} is already in {holder}; unpack it first")
    box["items"].append(item_id)
    return f"{item_id} is in {box_id}"


@tool(writes=True)
def unpack_item(state: State, item_id: str) -> str:
    """Take an item out of the box it is in.

    Args:
        item_id: the item, e.g. "I4".
    """
    for b in state["boxes"]:
        if item_id in b["items"]:
            b["items"].remove(item_id)
            return f"{item_id} taken out of {b['id']}"
    raise ToolError(f"{item_id} is not in any box")


@tool(writes=True)
def remove_box(state: State, box_id: str) -> str:
    """Put an empty box back on the shelf (it is then not paid for).

    Args:
        box_id: an open, empty box.
    """
    box = _box(state, box_id)
    if box["items"]:
        raise ToolError(f"{box_id} still holds {box['items']}; unpack them first")
    state["boxes"].remove(box)
    return f"{box_id} removed"


@tool()
def view_boxes(state: State) -> dict[str, Any]:
    """The open boxes with their items, volume and weight used, and the total box cost."""
    items = {i["id"]: i for i in state["items"]}
    types = {b["code"]: b for b in state["box_types"]}
    boxes = [{**b, "volume_l": sum(items[i]["volume_l"] for i in b["items"]),
              "weight_kg": sum(items[i]["weight_kg"] for i in b["items"])}
             for b in state["boxes"]]
    return {"boxes": boxes, "total_cents": sum(types[b["type"]]["cost_cents"]
                                               for b in state["boxes"])}


# ---- the family -------------------------------------------------------------------------------


def _parse_box(text: str) -> tuple[str, list[str]] | None:
    code, sep, rest = text.partition(":")
    if not sep:
        return None
    return code.strip(), [i.strip() for i in rest.split(",") if i.strip()]


@register_family
class BinPacking(Family[PackingConfig]):
    name = "bin_packing"
    summary = "Pack an order into boxes at least cost under size, fragile and hazmat rules."
    config_model = PackingConfig
    answer_model = PackingPlan
    submit_description = ("End the task. Quotes pass `boxes` and `total_cents`; when you packed "
                          "real boxes, pass no arguments.")
    tools = (list_order_items, get_item, list_box_types, packing_rules, open_box, pack_item,
             unpack_item, remove_box, view_boxes)
    variants = (
        Variant("pack", ("list_order_items", "list_box_types", "open_box", "pack_item",
                         "view_boxes"), ("volume", "weight")),
        Variant("fragile", ("list_order_items", "list_box_types", "packing_rules", "open_box",
                            "pack_item", "unpack_item"),
                ("volume", "weight", "fragile"), {"fragile_rule": True}),
        Variant("quote", ("list_order_items", "list_box_types", "packing_rules"),
                ("volume", "weight", "fragile", "max_items"),
                {"fragile_rule": True, "max_items": 3}),
        Variant("hazmat", ("list_order_items", "get_item", "list_box_types", "packing_rules",
                           "open_box", "pack_item", "remove_box", "view_boxes"),
                ("volume", "weight", "hazmat"), {"hazmat": True, "details_in_list": False}),
        Variant("max-items", ("list_order_items", "list_box_types", "packing_rules", "open_box",
                              "pack_item", "unpack_item", "remove_box", "view_boxes"),
                ("volume", "weight", "fragile", "max_items"),
                {"fragile_rule": True, "max_items": 2, "heavy_kg": 6}),
    )

    def generate_state(self, rng: random.Random, config: PackingConfig) -> State:
        items: list[dict[str, Any]] = []
        orders: list[dict[str, Any]] = []
        names = rng.sample(_GOODS, len(_GOODS))
        for o, size in enumerate((*config.order_sizes, 3)):  # the last order is a distractor
            ids: list[str] = []
            for _ in range(size):
                n = len(items)
                item: dict[str, Any] = {
                    "id": f"I{n + 1}", "name": names[n % len(names)],
                    "weight_kg": rng.randint(1, 14), "volume_l": rng.randint(3, 45),
                    "fragile": rng.random() < 0.3}
                if config.hazmat:
                    item["hazmat"] = rng.random() < 0.15
                items.append(item)
                ids.append(item["id"])
            orders.append({"id": f"O{o + 1}", "items": ids})
        rules = {"fragile_rule": config.fragile_rule, "heavy_kg": config.heavy_kg,
                 "max_items": config.max_items, "hazmat_alone": config.hazmat}
        return {"items": items, "orders": orders, "box_types": BOX_TYPES, "rules": rules,
                "boxes": [], "next_box": 0, "details_in_list": config.details_in_list}

    def generate_task(self, rng: random.Random, state: State, config: PackingConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        order = state["orders"][level]
        best = _optimum(state, order["items"])
        if best is None:
            return None
        quote = "open_box" not in variant.tools
        rules = state["rules"]
        said = ["each box's total volume and weight must stay within its type's limits"]
        if rules["fragile_rule"]:
            said.append(f"a fragile item may not share a box with an item of {rules['heavy_kg']} "
                        "kg or more")
        if rules["max_items"]:
            said.append(f"a box holds at most {rules['max_items']} items")
        if rules["hazmat_alone"]:
            said.append("a hazmat item travels alone in its box")
        how = ("Do not pack anything: submit the plan as `boxes` (\"TYPE: ITEM, ITEM\" per box) "
               "and its `total_cents`." if quote else
               "Pack them with the box tools (leave no empty box open), then submit.")
        return TaskDraft(
            instruction=(f"Pack every item of order {order['id']} into boxes so that the total "
                         f"box cost is as low as possible. Rules: {'; '.join(said)}. {how}"),
            goal={"mode": "quote" if quote else "boxes", "order": order["items"],
                  "optimum_cents": best[0]},
            knobs={"items": len(order["items"]), "boxes": len(best[1]),
                   "rules": 1 + sum(bool(rules[k]) for k in ("fragile_rule", "max_items",
                                                              "hazmat_alone")),
                   "steps": 3 + 2 * len(order["items"])},
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        best = _optimum(state, draft.goal["order"])
        if best is None:
            raise ValueError("generate_task only emits packable orders")
        return self._calls(state, draft.goal, best[1], variant)

    @staticmethod
    def _calls(state: State, goal: Mapping[str, Any], packing: Packing, variant: Variant
               ) -> list[Call]:
        order_id = next(o["id"] for o in state["orders"] if o["items"] == goal["order"])
        calls = [Call("list_order_items", {"order_id": order_id}), Call("list_box_types")]
        if "get_item" in variant.tools:
            calls += [Call("get_item", {"item_id": i}) for i in goal["order"]]
        if "packing_rules" in variant.tools:
            calls.append(Call("packing_rules"))
        if goal["mode"] == "quote":
            return [*calls, Call("submit", {
                "boxes": [f"{code}: {', '.join(items)}" for code, items in packing],
                "total_cents": _packing_cost(state, packing)})]
        for n, (code, items) in enumerate(packing, start=state["next_box"] + 1):
            calls.append(Call("open_box", {"box_type": code}))
            calls += [Call("pack_item", {"item_id": i, "box_id": f"B{n}"}) for i in items]
        if "view_boxes" in variant.tools:
            calls.append(Call("view_boxes"))
        return [*calls, Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        if goal["mode"] == "quote":
            if not answer or answer.get("boxes") is None or answer.get("total_cents") is None:
                return Verdict(reward=0.0, reason="no plan and total were submitted")
            parsed = [_parse_box(b) for b in answer["boxes"]]
            if any(p is None for p in parsed):
                return Verdict(reward=0.0, reason='a box entry is not "TYPE: ITEM, ITEM"')
            packing = [p for p in parsed if p is not None]
        else:
            packing = [(b["type"], b["items"]) for b in final_state["boxes"]]
        problem = _packing_problem(final_state, packing, goal["order"])
        if problem:
            return Verdict(reward=0.0, components={"valid": 0.0}, reason=problem)
        cost = _packing_cost(final_state, packing)
        optimal = cost == goal["optimum_cents"]
        total_ok = goal["mode"] != "quote" or (answer or {}).get("total_cents") == cost
        return Verdict(reward=float(optimal and total_ok),
                       components={"valid": 1.0, "optimal": float(optimal),
                                   "total": float(total_ok)},
                       reason=f"valid; cost {cost}, optimum {goal['optimum_cents']}"
                       + ("" if total_ok else "; the stated total is not the plan's cost"))

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft, reference: list[Call],
                variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        best = _optimum(state, g["order"])
        if best is None:
            raise ValueError("generate_task only emits packable orders")
        packing = best[1]
        out = {"constraint_broken": self._calls(state, g, _broken(state, packing), variant),
               "wrong_value": self._calls(state, g, _costlier(state, packing), variant)}
        if g["mode"] == "quote":
            good = self._calls(state, g, packing, variant)
            args = dict(good[-1].arguments)
            out["wrong_total"] = [*good[:-1], Call("submit", {**args, "total_cents":
                                                              args["total_cents"] - 50})]
        return out


def _broken(state: State, packing: Packing) -> Packing:
    """A packing with fewer or fuller boxes that breaks a rule: two boxes merged into the
    largest type, or one item moved into another box. A break of a packing rule (fragile,
    item count, hazmat) is preferred to plain overfilling: it is the tempting mistake."""
    largest = max(state["box_types"], key=lambda b: b["max_volume_l"])["code"]
    candidates: list[Packing] = []
    for i in range(len(packing)):
        for j in range(i + 1, len(packing)):
            rest = [b for k, b in enumerate(packing) if k not in (i, j)]
            candidates.append([*rest, (largest, packing[i][1] + packing[j][1])])
    for i, (_, items) in enumerate(packing):
        for j, (other, others) in enumerate(packing):
            for item in items if i != j else ():
                moved = [(c, [x for x in its if x != item]) for c, its in packing]
                moved[j] = (other, [*others, item])
                candidates.append([b for b in moved if b[1]])
    problems = [(_packing_problem(state, c, [i for _, its in packing for i in its]), c)
                for c in candidates]
    bad = sorted(((p, c) for p, c in problems if p), key=lambda pc: "cannot take" in pc[0])
    if bad:
        return bad[0][1]
    return packing[1:] or [(packing[0][0], packing[0][1][1:])]


def _costlier(state: State, packing: Packing) -> Packing:
    """A valid packing that costs more: one box one size up, or one item in a box of its own."""
    types = sorted(state["box_types"], key=lambda b: b["cost_cents"])
    codes = [b["code"] for b in types]
    for k, (code, items) in enumerate(packing):
        if codes.index(code) + 1 < len(codes):
            return [*packing[:k], (codes[codes.index(code) + 1], items), *packing[k + 1:]]
    code, items = packing[0]
    alone = _cheapest_box(state, items[:1])
    return [(code, items[1:]), (alone[1] if alone else code, items[:1]), *packing[1:]]
