"""Procurement: buy a required basket from suppliers at the lowest total cost.

Suppliers sell items in packs, with minimum pack counts, limited stock, a shipping fee that
may be waived above a threshold, and a volume discount. The agent reads the catalogs and
either fills a cart (state-graded) or submits a purchase plan (answer-graded). Either way
the verifier checks the house rules (one supplier per item, the fewest packs that cover the
need) and that the plan's cost equals the optimum that an exhaustive search over every
supplier assignment found when the task was generated.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from typing import Any

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

_ITEMS = ["bolt-m6", "hinge", "gasket", "cable-tie", "fuse-5a", "washer", "drill-bit", "sealant",
          "bracket", "rivet", "spring", "valve"]
_VENDORS = ["Acme", "Borealis", "Castell", "Dunmore", "Elbe", "Fjord", "Gantry", "Halden"]

Line = tuple[str, str, int]
"""One purchase line: (supplier id, item, packs)."""


class ProcurementConfig(FamilyConfig):
    suppliers: int = Field(5, ge=3, le=8)
    items: int = Field(6, ge=4, le=12)
    coverage: float = Field(0.7, ge=0.4, le=1.0)
    """Probability that a supplier sells a given item."""
    min_packs: bool = True
    """Offers carry a minimum number of packs per order."""
    shipping: bool = True
    free_shipping: bool = False
    """Shipping is waived once a supplier's (discounted) subtotal reaches a threshold."""
    discounts: bool = False
    """Suppliers give a percentage off above a subtotal threshold."""
    stock_limits: bool = False


class PurchasePlan(Answer):
    lines: list[str] | None = Field(
        None, description='plan lines "SUPPLIER/ITEM/PACKS", e.g. "S2/hinge/3" (plan tasks only)')
    total_cents: int | None = Field(
        None, description="the plan's total cost in cents (plan tasks only)")


# ---- pricing: the one definition of cost, shared by tools and verifier -----------------------


def _offer(state: State, supplier_id: str, item: str) -> dict[str, Any]:
    for o in state["offers"]:
        if o["supplier"] == supplier_id and o["item"] == item:
            return o
    raise ToolError(f"supplier {supplier_id} does not sell {item!r}; see its catalog")


def _supplier(state: State, supplier_id: str) -> dict[str, Any]:
    known = ", ".join(s["id"] for s in state["suppliers"])
    return find_record(
        state["suppliers"], supplier_id, f"no supplier {supplier_id!r}; known suppliers: {known}"
    )


def _supplier_cost(supplier: Mapping[str, Any], subtotal: int) -> int:
    """Goods after the volume discount, plus shipping unless waived."""
    disc = supplier.get("discount")
    if disc and subtotal >= disc["min_subtotal_cents"]:
        subtotal -= subtotal * disc["percent"] // 100
    free_over = supplier.get("free_shipping_over_cents")
    waived = free_over is not None and subtotal >= free_over
    return subtotal + (0 if waived else supplier["shipping_cents"])


def _plan_cost(state: State, lines: Sequence[Line]) -> int:
    subtotals: dict[str, int] = {}
    for sup, item, packs in lines:
        subtotals[sup] = subtotals.get(sup, 0) + packs * _offer(state, sup, item)["pack_cents"]
    return sum(_supplier_cost(_supplier(state, s), sub) for s, sub in subtotals.items())


def _packs_needed(offer: Mapping[str, Any], qty: int) -> int:
    return max(-(-qty // offer["pack_size"]), offer.get("min_packs", 1))


def _options(state: State, basket: Mapping[str, int]) -> dict[str, list[Line]]:
    """Per item, every supplier line that may legally cover it."""
    out: dict[str, list[Line]] = {}
    for item, qty in basket.items():
        out[item] = []
        for o in state["offers"]:
            packs = _packs_needed(o, qty)
            if o["item"] == item and packs <= o.get("stock_packs", packs):
                out[item].append((o["supplier"], item, packs))
    return out


def _all_plans(state: State, basket: Mapping[str, int]) -> list[tuple[int, tuple[Line, ...]]]:
    """Exhaustive search: every single-sourced plan with its cost, cheapest first.

    Line prices are looked up once; each plan then only sums per supplier (the same
    arithmetic as `_plan_cost`, which prices carts and submitted plans).
    """
    options = _options(state, basket)
    price = {ln: ln[2] * _offer(state, ln[0], ln[1])["pack_cents"]
             for opts in options.values() for ln in opts}
    suppliers = {s["id"]: s for s in state["suppliers"]}
    plans = []
    for plan in itertools.product(*options.values()):
        subtotals: dict[str, int] = {}
        for ln in plan:
            subtotals[ln[0]] = subtotals.get(ln[0], 0) + price[ln]
        plans.append((sum(_supplier_cost(suppliers[k], v) for k, v in subtotals.items()), plan))
    return sorted(plans)


def _check_plan(state: State, lines: Sequence[Line], basket: Mapping[str, int]) -> str | None:
    """Why `lines` breaks the house rules, or None if they hold."""
    seen: dict[str, str] = {}
    for sup, item, packs in lines:
        if item not in basket:
            return f"{item} is not in the basket"
        if item in seen:
            return f"{item} is bought twice ({seen[item]} and {sup}); use one supplier per item"
        seen[item] = sup
        try:
            offer = _offer(state, sup, item)
        except ToolError as e:
            return str(e)
        if packs < offer.get("min_packs", 1) or packs > offer.get("stock_packs", packs):
            return f"{packs} packs of {item} from {sup} break its minimum or stock"
        if packs != _packs_needed(offer, basket[item]):
            return f"{packs} packs of {item} from {sup} is not the fewest that cover {basket[item]}"
    missing = sorted(set(basket) - set(seen))
    return f"basket items not bought: {missing}" if missing else None


# ---- tools ------------------------------------------------------------------------------------


@tool()
def list_suppliers(state: State) -> list[dict[str, Any]]:
    """List the suppliers (id and name)."""
    return [{"id": s["id"], "name": s["name"]} for s in state["suppliers"]]


@tool()
def get_catalog(state: State, supplier_id: str) -> list[dict[str, Any]]:
    """A supplier's offers: item, pack_size (units per pack), pack_cents (price of one pack),
    and where they apply min_packs (fewest packs per order) and stock_packs (packs available).

    Args:
        supplier_id: the supplier's id, e.g. "S2".
    """
    _supplier(state, supplier_id)
    return [dict(o) for o in state["offers"] if o["supplier"] == supplier_id]


@tool()
def find_offers(state: State, item: str) -> list[dict[str, Any]]:
    """Every supplier's offer for one item (same fields as a catalog entry, with the supplier).

    Args:
        item: the item name, e.g. "hinge".
    """
    found = [dict(o) for o in state["offers"] if o["item"] == item]
    if not found:
        raise ToolError(f"no supplier sells {item!r}; item names are like {_ITEMS[0]!r}")
    return found


@tool()
def get_terms(state: State, supplier_id: str) -> dict[str, Any]:
    """A supplier's order terms. An order's cost at one supplier is computed so: subtotal =
    sum of packs x pack_cents; if a discount applies and subtotal >= its min_subtotal_cents,
    subtract floor(subtotal x percent / 100); then add shipping_cents unless
    free_shipping_over_cents is set and the discounted subtotal is at least that much. The
    total cost of a purchase is the sum over the suppliers ordered from.

    Args:
        supplier_id: the supplier's id, e.g. "S2".
    """
    s = _supplier(state, supplier_id)
    return {k: s.get(k) for k in ("id", "shipping_cents", "free_shipping_over_cents", "discount")}


def _cart_lines(state: State) -> list[Line]:
    return [(c["supplier"], c["item"], c["packs"]) for c in state["cart"]]


@tool(writes=True)
def add_to_cart(state: State, supplier_id: str, item: str, packs: int) -> str:
    """Add packs of an item from a supplier to the cart (adds to an existing line).

    Args:
        supplier_id: the supplier's id, e.g. "S2".
        item: the item name.
        packs: number of packs to add (the line's total must meet min_packs and stock).
    """
    offer = _offer(state, supplier_id, item)
    line = next((c for c in state["cart"] if c["supplier"] == supplier_id and c["item"] == item),
                None)
    total = packs + (line["packs"] if line else 0)
    if packs < 1:
        raise ToolError("packs must be at least 1")
    if total < offer.get("min_packs", 1):
        raise ToolError(f"{supplier_id} sells {item} in orders of {offer['min_packs']}+ packs")
    if total > offer.get("stock_packs", total):
        raise ToolError(f"{supplier_id} has only {offer['stock_packs']} packs of {item} in stock")
    if line:
        line["packs"] = total
    else:
        state["cart"].append({"supplier": supplier_id, "item": item, "packs": total})
    return f"cart: {total} packs of {item} from {supplier_id}"


@tool(writes=True)
def remove_from_cart(state: State, supplier_id: str, item: str) -> str:
    """Remove the whole cart line for an item from a supplier.

    Args:
        supplier_id: the supplier's id.
        item: the item name.
    """
    before = len(state["cart"])
    state["cart"][:] = [c for c in state["cart"]
                        if not (c["supplier"] == supplier_id and c["item"] == item)]
    if len(state["cart"]) == before:
        raise ToolError(f"the cart has no line for {item} from {supplier_id}")
    return f"removed {item} from {supplier_id}"


@tool()
def view_cart(state: State) -> dict[str, Any]:
    """The cart's lines and its total cost in cents (shipping and discounts included)."""
    return {"lines": list(state["cart"]), "total_cents": _plan_cost(state, _cart_lines(state))}


# ---- the family -------------------------------------------------------------------------------


def _parse_line(text: str) -> Line | None:
    parts = text.split("/")
    if len(parts) != 3 or not parts[2].strip().isdigit():
        return None
    return parts[0].strip(), parts[1].strip(), int(parts[2])


@register_family
class Procurement(Family[ProcurementConfig]):
    name = "procurement"
    summary = "Buy a basket from supplier catalogs at the exact minimum cost under pack rules."
    config_model = ProcurementConfig
    answer_model = PurchasePlan
    submit_description = ("End the task. Plan tasks pass `lines` and `total_cents`; cart tasks "
                          "pass no arguments.")
    tools = (list_suppliers, get_catalog, find_offers, get_terms, add_to_cart, remove_from_cart,
             view_cart)
    variants = (
        Variant("cart", ("list_suppliers", "get_catalog", "get_terms", "add_to_cart", "view_cart"),
                ("min_packs", "shipping")),
        Variant("free-shipping", ("list_suppliers", "get_catalog", "get_terms", "add_to_cart",
                                  "remove_from_cart"),
                ("min_packs", "free_shipping"), {"free_shipping": True}),
        Variant("volume-discount", ("find_offers", "get_terms", "add_to_cart", "remove_from_cart",
                                    "view_cart"),
                ("min_packs", "discount"), {"discounts": True}),
        Variant("stock", ("list_suppliers", "find_offers", "get_terms", "add_to_cart",
                          "view_cart"),
                ("min_packs", "stock"), {"stock_limits": True, "coverage": 0.85}),
        Variant("plan", ("list_suppliers", "get_catalog", "get_terms"),
                ("min_packs", "free_shipping", "discount"),
                {"free_shipping": True, "discounts": True}),
        Variant("big-market", ("list_suppliers", "get_catalog", "find_offers", "get_terms",
                               "add_to_cart", "remove_from_cart", "view_cart"),
                ("min_packs", "free_shipping", "discount", "stock"),
                {"suppliers": 7, "items": 10, "free_shipping": True, "discounts": True,
                 "stock_limits": True}),
    )

    def generate_state(self, rng: random.Random, config: ProcurementConfig) -> State:
        items = rng.sample(_ITEMS, config.items)
        suppliers, offers = [], []
        for i, vendor in enumerate(rng.sample(_VENDORS, config.suppliers)):
            sid = f"S{i + 1}"
            free = rng.randrange(6_000, 20_000, 500) if config.free_shipping else None
            disc = ({"min_subtotal_cents": rng.randrange(5_000, 15_000, 500),
                     "percent": rng.choice([5, 8, 10, 12])} if config.discounts else None)
            fee = rng.randrange(500, 2_500, 50) if config.shipping else 0
            suppliers.append({"id": sid, "name": f"{vendor} Supply", "shipping_cents": fee,
                              "free_shipping_over_cents": free, "discount": disc})
            for item in items:
                if rng.random() > config.coverage:
                    continue
                size = rng.choice([1, 5, 10, 12, 20, 25])
                offer: dict[str, Any] = {"supplier": sid, "item": item, "pack_size": size,
                                         "pack_cents": size * rng.randint(40, 160)}
                if config.min_packs:
                    offer["min_packs"] = rng.choice([1, 1, 2, 3])
                if config.stock_limits:
                    offer["stock_packs"] = rng.randint(1, 12)
                offers.append(offer)
        return {"suppliers": suppliers, "offers": offers, "cart": []}

    def generate_task(self, rng: random.Random, state: State, config: ProcurementConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        n_items = 2 + level
        sold = sorted({o["item"] for o in state["offers"]})
        if len(sold) < n_items:
            return None
        best: tuple[dict[str, int], list[tuple[int, tuple[Line, ...]]], bool] | None = None
        # Prefer a basket where buying each item at its cheapest line is not optimal: the
        # shared shipping fees and thresholds are then what makes the task hard.
        for _ in range(4 if level else 1):
            basket = {i: rng.randrange(5, 80) for i in rng.sample(sold, n_items)}
            plans = _all_plans(state, basket)
            if len(plans) < 2 or plans[0][0] == plans[-1][0]:
                continue
            trap = _greedy_cost(state, basket) != plans[0][0]
            best = (basket, plans, trap)
            if trap:
                break
        if best is None:
            return None
        basket, plans, trap = best
        plan_mode = variant.name == "plan"
        need = ", ".join(f"{q} units of {i}" for i, q in basket.items())
        how = ("Do not order anything: submit the plan as lines \"SUPPLIER/ITEM/PACKS\" with its "
               "total cost in cents." if plan_mode else
               "Place the order by filling the cart, then submit with no arguments.")
        instruction = (
            f"We need {need}. Source each item from exactly one supplier and order the fewest "
            "packs of it that cover the needed units (while meeting that supplier's minimum "
            "packs and stock). Among all such purchases choose one with the lowest total cost, "
            f"shipping and discounts included (see the supplier terms). {how}")
        return TaskDraft(
            instruction=instruction,
            goal={"mode": "plan" if plan_mode else "cart", "basket": basket,
                  "optimum_cents": plans[0][0]},
            knobs={"items": n_items, "steps": 2 * n_items + 2, "plans": len(plans),
                   "greedy_trap": int(trap), "distractors": len(state["suppliers"])},
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        basket = draft.goal["basket"]
        cost, plan = _all_plans(state, basket)[0]
        calls = self._reads(state, basket, variant)
        if draft.goal["mode"] == "plan":
            return [*calls, Call("submit", {"lines": [f"{s}/{i}/{p}" for s, i, p in plan],
                                            "total_cents": cost})]
        calls += [Call("add_to_cart", {"supplier_id": s, "item": i, "packs": p})
                  for s, i, p in plan]
        if "view_cart" in variant.tools:
            calls.append(Call("view_cart"))
        return [*calls, Call("submit")]

    @staticmethod
    def _reads(state: State, basket: Mapping[str, int], variant: Variant) -> list[Call]:
        sids = [s["id"] for s in state["suppliers"]]
        calls = [Call("list_suppliers")] if "list_suppliers" in variant.tools else []
        if "get_catalog" in variant.tools:
            calls += [Call("get_catalog", {"supplier_id": s}) for s in sids]
        else:
            calls += [Call("find_offers", {"item": i}) for i in basket]
        return calls + [Call("get_terms", {"supplier_id": s}) for s in sids]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        if goal["mode"] == "plan":
            if not answer or answer.get("lines") is None or answer.get("total_cents") is None:
                return Verdict(reward=0.0, reason="no plan and total were submitted")
            parsed = [_parse_line(t) for t in answer["lines"]]
            if any(p is None for p in parsed):
                return Verdict(reward=0.0, reason="a plan line is not SUPPLIER/ITEM/PACKS")
            lines = [p for p in parsed if p is not None]
        else:
            lines = _cart_lines(final_state)
        problem = _check_plan(final_state, lines, goal["basket"])
        if problem:
            return Verdict(reward=0.0, components={"valid": 0.0}, reason=problem)
        cost = _plan_cost(final_state, lines)
        optimal = cost == goal["optimum_cents"]
        total_ok = goal["mode"] != "plan" or answer is not None and answer["total_cents"] == cost
        if not optimal:
            reason = f"valid, but cost {cost} is not the optimum {goal['optimum_cents']}"
        else:
            reason = "valid and optimal" if total_ok else "stated total is not the plan's cost"
        return Verdict(reward=float(optimal and total_ok), reason=reason,
                       components={"valid": 1.0, "optimal": float(optimal),
                                   "total": float(total_ok)})

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft, reference: list[Call],
                variant: Variant) -> dict[str, list[Call]]:
        basket = draft.goal["basket"]
        plans = _all_plans(state, basket)
        cost, best = plans[0]
        # The nearest costlier plan: fewest items sourced differently from the optimum.
        worse = min((p for c, p in plans if c > cost),
                    key=lambda p: sum(a != b for a, b in zip(p, best, strict=True)))
        # Under-buy one item by a pack where the tools allow it; else leave an item out.
        short = next((i for i, (s, it, p) in enumerate(best)
                      if p - 1 >= _offer(state, s, it).get("min_packs", 1) and p > 1), None)
        broken = ([(s, it, p - int(i == short)) for i, (s, it, p) in enumerate(best)]
                  if short is not None else list(best[1:]))
        head = self._reads(state, basket, variant)
        if draft.goal["mode"] == "plan":
            def plan(lines: Sequence[Line], total: int) -> list[Call]:
                return [*head, Call("submit", {"lines": [f"{s}/{i}/{p}" for s, i, p in lines],
                                               "total_cents": total})]
            return {"constraint_broken": plan(broken, _plan_cost(state, broken)),
                    "wrong_value": plan(worse, _plan_cost(state, worse)),
                    "wrong_total": plan(best, cost + 100)}

        def cart(lines: Sequence[Line]) -> list[Call]:
            return [*head, *(Call("add_to_cart", {"supplier_id": s, "item": i, "packs": p})
                             for s, i, p in lines), Call("submit")]
        return {"constraint_broken": cart(broken), "wrong_value": cart(worse)}


def _greedy_cost(state: State, basket: Mapping[str, int]) -> int:
    """Cost of buying each item at its cheapest line, ignoring shared fees and thresholds."""
    options = _options(state, basket)
    pick = [min(opts, key=lambda ln: ln[2] * _offer(state, ln[0], ln[1])["pack_cents"])
            for opts in options.values()]
    return _plan_cost(state, pick)
