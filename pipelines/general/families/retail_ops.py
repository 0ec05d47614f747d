"""Retail back-office: cancel, refund and re-address orders under the store's policies.

Graded like tau-bench: the reference solution is replayed on a fresh copy of the state and
the agent's final `orders` and `refunds` tables must hash to the same value.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from envsynth.errors import ToolError
from envsynth.schema import Verdict
from pipelines.general.family import (
    Call,
    Family,
    FamilyConfig,
    TaskDraft,
    Variant,
    check_state_hash,
    register_family,
)
from pipelines.general.names import FIRST_NAMES, LAST_NAMES
from pipelines.general.tools import State, find_record, tool

_FIRST = list(FIRST_NAMES[:12])
_LAST = list(LAST_NAMES[:10])
_GOODS = ["kettle", "lamp", "mug", "scarf", "drone", "tent", "chair", "clock", "jacket", "router"]
_CITIES = ["Lyon", "Porto", "Graz", "Turku", "Ghent", "Split", "Brno", "Cork"]


class RetailConfig(FamilyConfig):
    customers: int = Field(8, ge=3, le=60)
    products: int = Field(10, ge=4, le=60)
    orders_per_customer: int = Field(3, ge=2, le=8)
    refund_cap_cents: int = Field(20_000, ge=1_000)
    """Largest refund one order may receive; the agent must respect it."""


# ---- tools ------------------------------------------------------------------------------


def _order(state: State, order_id: str) -> dict[str, Any]:
    return find_record(state["orders"], order_id, f"no order {order_id!r}")


@tool()
def find_customer(state: State, email: str) -> dict[str, Any]:
    """Look up a customer by email address.

    Args:
        email: the customer's email, exactly as given.
    """
    return find_record(state["customers"], email, f"no customer with email {email!r}", key="email")


@tool()
def list_orders(state: State, customer_id: str, status: str | None = None) -> list[dict[str, Any]]:
    """List a customer's orders (id, status, placed_on, total_cents), optionally by status.

    Args:
        customer_id: the customer's id, e.g. "c3".
        status: one of pending, shipped, delivered, cancelled; all statuses when omitted.
    """
    return [
        {k: o[k] for k in ("id", "status", "placed_on", "total_cents")}
        for o in state["orders"]
        if o["customer_id"] == customer_id and (status is None or o["status"] == status)
    ]


@tool()
def get_order(state: State, order_id: str) -> dict[str, Any]:
    """Full details of one order: items with product ids, quantities and unit prices.

    Args:
        order_id: the order's id, e.g. "o12".
    """
    return _order(state, order_id)


@tool()
def get_product(state: State, product_id: str) -> dict[str, Any]:
    """A product's name, price and stock.

    Args:
        product_id: the product's id, e.g. "p4".
    """
    return find_record(state["products"], product_id, f"no product {product_id!r}")


@tool(writes=True)
def cancel_order(state: State, order_id: str) -> str:
    """Cancel a pending order and put its items back in stock. Only pending orders can be cancelled.

    Args:
        order_id: the order to cancel.
    """
    order = _order(state, order_id)
    if order["status"] != "pending":
        raise ToolError(
            f"order {order_id} is {order['status']}; only pending orders can be cancelled"
        )
    order["status"] = "cancelled"
    stock = {p["id"]: p for p in state["products"]}
    for item in order["items"]:
        stock[item["product_id"]]["stock"] += item["qty"]
    return f"order {order_id} cancelled"


@tool(writes=True)
def refund_item(state: State, order_id: str, product_id: str, qty: int) -> str:
    """Refund `qty` units of one item of a delivered order, at the unit price paid.

    Args:
        order_id: a delivered order.
        product_id: the item's product id.
        qty: how many units to refund (at most the number bought, less earlier refunds).
    """
    order = _order(state, order_id)
    if order["status"] != "delivered":
        raise ToolError(
            f"order {order_id} is {order['status']}; only delivered orders are refunded"
        )
    item = find_record(
        order["items"], product_id, f"order {order_id} has no item {product_id}", key="product_id"
    )
    done = sum(
        r["qty"]
        for r in state["refunds"]
        if r["order_id"] == order_id and r["product_id"] == product_id
    )
    if qty < 1 or qty + done > item["qty"]:
        raise ToolError(f"can refund 1..{item['qty'] - done} units of {product_id} on {order_id}")
    state["refunds"].append(
        {
            "order_id": order_id,
            "product_id": product_id,
            "qty": qty,
            "cents": qty * item["unit_cents"],
        }
    )
    return f"refunded {qty} x {product_id} ({qty * item['unit_cents']} cents)"


@tool(writes=True)
def set_address(state: State, order_id: str, city: str) -> str:
    """Change the delivery city of a pending order.

    Args:
        order_id: a pending order.
        city: the new delivery city.
    """
    order = _order(state, order_id)
    if order["status"] != "pending":
        raise ToolError(
            f"order {order_id} is {order['status']}; only pending orders can be re-addressed"
        )
    order["city"] = city
    return f"order {order_id} will be delivered to {city}"


@tool()
def refund_policy(state: State) -> dict[str, Any]:
    """The store's refund rules (the cap per order, in cents)."""
    return {"refund_cap_cents_per_order": state["refund_cap_cents"]}


# ---- the family -------------------------------------------------------------------------

_READ = ("find_customer", "list_orders", "get_order")


@register_family
class RetailOps(Family[RetailConfig]):
    name = "retail_ops"
    summary = "Retail back office: cancel, refund and re-address orders within store policy."
    config_model = RetailConfig
    tools = (
        find_customer,
        list_orders,
        get_order,
        get_product,
        cancel_order,
        refund_item,
        set_address,
        refund_policy,
    )
    variants = (
        Variant("cancel", (*_READ, "cancel_order"), ("pending_only",)),
        Variant("refund", (*_READ, "refund_item", "refund_policy"), ("refund_cap",)),
        Variant("readdress", (*_READ, "set_address"), ("pending_only",)),
        Variant(
            "full",
            (*_READ, "get_product", "cancel_order", "refund_item", "set_address", "refund_policy"),
            ("pending_only", "refund_cap"),
        ),
        Variant(
            "big-store",
            (*_READ, "cancel_order", "refund_item", "refund_policy"),
            ("pending_only", "refund_cap"),
            {"customers": 30, "products": 30},
        ),
    )

    def generate_state(self, rng: random.Random, config: RetailConfig) -> State:
        products: list[dict[str, Any]] = [
            {
                "id": f"p{i}",
                "name": f"{rng.choice(_GOODS)} {chr(65 + i % 26)}{i}",
                "price_cents": rng.randrange(500, 15_000, 50),
                "stock": rng.randint(0, 40),
            }
            for i in range(config.products)
        ]
        names = rng.sample([(f, la) for f in _FIRST for la in _LAST], config.customers)
        customers = [
            {"id": f"c{i}", "name": f"{f} {la}", "email": f"{f.lower()}.{la.lower()}{i}@mail.test"}
            for i, (f, la) in enumerate(names)
        ]
        orders: list[dict[str, Any]] = []
        for c in customers:
            for _ in range(rng.randint(2, config.orders_per_customer)):
                items = [
                    {
                        "product_id": p["id"],
                        "qty": rng.randint(1, 4),
                        "unit_cents": p["price_cents"],
                    }
                    for p in rng.sample(products, rng.randint(1, 3))
                ]
                orders.append(
                    {
                        "id": f"o{len(orders)}",
                        "customer_id": c["id"],
                        "status": rng.choice(
                            ["pending", "shipped", "delivered", "delivered", "cancelled"]
                        ),
                        "placed_on": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                        "city": rng.choice(_CITIES),
                        "items": items,
                        "total_cents": sum(i["qty"] * i["unit_cents"] for i in items),
                    }
                )
        return {
            "customers": customers,
            "products": products,
            "orders": orders,
            "refunds": [],
            "refund_cap_cents": config.refund_cap_cents,
        }

    def generate_task(
        self, rng: random.Random, state: State, config: RetailConfig, variant: Variant, level: int
    ) -> TaskDraft | None:
        kind = {"cancel": "cancel", "refund": "refund", "readdress": "readdress"}.get(
            variant.name, rng.choice(["cancel", "refund"])
        )
        by_customer: dict[str, list[dict[str, Any]]] = {}
        for o in state["orders"]:
            by_customer.setdefault(o["customer_id"], []).append(o)
        customers = list(state["customers"])
        rng.shuffle(customers)
        for c in customers:
            orders = by_customer.get(c["id"], [])
            draft = getattr(self, f"_task_{kind}")(rng, state, c, orders, level)
            if draft is not None:
                return draft
        return None

    def _task_cancel(self, rng, state, customer, orders, level) -> TaskDraft | None:
        pending = [o for o in orders if o["status"] == "pending"]
        if not pending:
            return None
        if level == 0:
            target = [min(pending, key=lambda o: o["placed_on"])]
            text = "their oldest pending order"
        else:
            # "except those containing product X": a constraint a careless agent breaks.
            keep = rng.choice([i["product_id"] for o in pending for i in o["items"]])
            target = [o for o in pending if all(i["product_id"] != keep for i in o["items"])]
            if not target or len(target) == len(pending):
                return None
            text = f"every pending order except any that contains product {keep}"
        return TaskDraft(
            instruction=(
                f"Customer {customer['email']} asks us to cancel {text}. Do it, then submit."
            ),
            goal={"orders": [o["id"] for o in target]},
            knobs={
                "steps": 3 + len(target),
                "constraints": level,
                "distractors": len(orders) - len(target),
            },
            hash_tables=("orders", "products", "refunds"),
        )

    def _task_refund(self, rng, state, customer, orders, level) -> TaskDraft | None:
        delivered = [o for o in orders if o["status"] == "delivered"]
        if not delivered:
            return None
        order = rng.choice(delivered)
        item = max(order["items"], key=lambda i: i["qty"] * i["unit_cents"])
        cap = state["refund_cap_cents"]
        if level == 0:
            qty = 1
            ask = f"one unit of product {item['product_id']}"
        else:
            # Ask for everything; the agent must refund only as many units as the cap allows.
            qty = min(item["qty"], cap // item["unit_cents"])
            if qty < 1 or qty == item["qty"] and level == 2:
                return None
            ask = f"all units of product {item['product_id']}, as far as store policy allows"
        return TaskDraft(
            instruction=(
                f"Customer {customer['email']} wants a refund for {ask} from their "
                f"order placed on {order['placed_on']}. Process it, then submit."
            ),
            goal={"order": order["id"], "product": item["product_id"], "qty": qty},
            knobs={"steps": 4, "constraints": level, "distractors": len(orders) - 1},
            hash_tables=("orders", "refunds"),
        )

    def _task_readdress(self, rng, state, customer, orders, level) -> TaskDraft | None:
        pending = [o for o in orders if o["status"] == "pending"]
        if not pending:
            return None
        city = rng.choice(_CITIES)
        targets = pending if level > 0 else [max(pending, key=lambda o: o["placed_on"])]
        if any(o["city"] == city for o in targets):
            return None
        which = "all their pending orders" if level > 0 else "their most recent pending order"
        return TaskDraft(
            instruction=(
                f"Customer {customer['email']} has moved to {city}. "
                f"Send {which} there, then submit."
            ),
            goal={"orders": [o["id"] for o in targets], "city": city},
            knobs={
                "steps": 3 + len(targets),
                "constraints": level,
                "distractors": len(orders) - len(targets),
            },
            hash_tables=("orders",),
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        cust = next(c for c in state["customers"] if c["email"] in draft.instruction)
        calls = [
            Call("find_customer", {"email": cust["email"]}),
            Call("list_orders", {"customer_id": cust["id"]}),
        ]
        if "qty" in g:
            calls += [
                Call("get_order", {"order_id": g["order"]}),
                Call(
                    "refund_item",
                    {"order_id": g["order"], "product_id": g["product"], "qty": g["qty"]},
                ),
            ]
        elif "city" in g:
            calls += [Call("set_address", {"order_id": o, "city": g["city"]}) for o in g["orders"]]
        else:
            calls += [Call("cancel_order", {"order_id": o}) for o in g["orders"]]
        return [*calls, Call("submit")]

    def verify(
        self, final_state: State, answer: Mapping[str, Any] | None, goal: Mapping[str, Any]
    ) -> Verdict:
        return check_state_hash(final_state, goal)

    def perturb(
        self,
        rng: random.Random,
        state: State,
        draft: TaskDraft,
        reference: list[Call],
        variant: Variant,
    ) -> dict[str, list[Call]]:
        g = draft.goal
        head = reference[:2]
        if "qty" in g:
            order = next(o for o in state["orders"] if o["id"] == g["order"])
            bought = next(i["qty"] for i in order["items"] if i["product_id"] == g["product"])
            over = [
                Call(
                    "refund_item",
                    {"order_id": g["order"], "product_id": g["product"], "qty": bought},
                )
            ]
            if bought == g["qty"]:  # nothing to overdo: refund a different item instead
                other = [i for i in order["items"] if i["product_id"] != g["product"]]
                over += (
                    [
                        Call(
                            "refund_item",
                            {
                                "order_id": g["order"],
                                "product_id": other[0]["product_id"],
                                "qty": 1,
                            },
                        )
                    ]
                    if other
                    else []
                )
            wrong = [
                Call(
                    "refund_item",
                    {
                        "order_id": g["order"],
                        "product_id": g["product"],
                        "qty": g["qty"] - 1 if g["qty"] > 1 else g["qty"] + 1,
                    },
                )
            ]
            return {
                "constraint_broken": head + over + [Call("submit")],
                "wrong_value": head + wrong + [Call("submit")],
            }
        cust = next(c for c in state["customers"] if c["email"] in draft.instruction)
        others = [
            o["id"]
            for o in state["orders"]
            if o["customer_id"] == cust["id"]
            and o["status"] == "pending"
            and o["id"] not in g["orders"]
        ]
        if "city" in g:
            wrong_city = next(c for c in _CITIES if c != g["city"])
            return {
                "constraint_broken": head
                + [
                    Call("set_address", {"order_id": o, "city": g["city"]})
                    for o in g["orders"][:-1]
                ]
                + [Call("submit")],
                "wrong_value": head
                + [Call("set_address", {"order_id": o, "city": wrong_city}) for o in g["orders"]]
                + [Call("submit")],
            }
        victims = (
            others
            or [
                o["id"]
                for o in state["orders"]
                if o["status"] == "pending" and o["id"] not in g["orders"]
            ][:1]
        )
        return {
            "constraint_broken": reference[:-1]
            + [Call("cancel_order", {"order_id": o}) for o in victims]
            + [Call("submit")],
            "wrong_value": head
            + [Call("cancel_order", {"order_id": o}) for o in g["orders"][1:]]
            + [Call("cancel_order", {"order_id": v}) for v in victims[:1]]
            + [Call("submit")],
        }
