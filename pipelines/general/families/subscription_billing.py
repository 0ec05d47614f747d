"""SaaS subscription billing: plan changes with proration, coupons, credits and invoices.

The state holds plans, customers with account credit, subscriptions in their current billing
cycle, coupons with expiry dates, and each subscription's draft invoice for the next cycle.
The agent processes a customer's request: an upgrade (immediate, prorated by the day onto
the next invoice), a downgrade (at renewal, or prorated immediately in some variants), then
finishes the next invoice: its plan line, the coupon if still valid on the invoice date, the
account credit, and finalisation. It submits the amount due.

Graded on both: the hash of the subscriptions, invoices and customers tables after the
reference is replayed, and the submitted amount due (integer cents, exact).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Literal

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
    check_state_hash,
    register_family,
)
from pipelines.general.names import FIRST_NAMES, LAST_NAMES
from pipelines.general.tools import State, find_record, tool

_PLANS = [("starter", 1_900), ("basic", 2_900), ("pro", 9_900), ("team", 24_900),
          ("business", 44_900), ("enterprise", 89_900)]
_FIRST = list(FIRST_NAMES[:10])
_LAST = list(LAST_NAMES[:8])
LineKind = Literal["plan", "proration_credit", "proration_charge"]


class BillingConfig(FamilyConfig):
    customers: int = Field(6, ge=3, le=12)
    annual: bool = False
    """Yearly billing cycles (prices are per year) instead of monthly ones."""
    downgrade: Literal["renewal", "immediate"] = "renewal"
    coupons: bool = True
    credits: bool = True


class BillingAnswer(Answer):
    amount_due_cents: int = Field(description="the finalized invoice's amount due, in cents")


def _prorate(price: int, days: int, cycle_days: int) -> int:
    """price x days / cycle_days, rounded half up to the cent (integer arithmetic)."""
    return (2 * price * days + cycle_days) // (2 * cycle_days)


def _rules(config_downgrade: str, annual: bool) -> list[str]:
    period = "year" if annual else "month"
    downgrade = ("A downgrade takes effect at renewal: no proration, the subscription keeps "
                 "its plan until then and the next invoice bills the new plan." if
                 config_downgrade == "renewal" else
                 "A downgrade takes effect today and is prorated like an upgrade.")
    return [
        f"Plan prices are per {period}; a billing cycle runs from cycle_start (inclusive) to "
        "cycle_end (exclusive), and the next invoice bills the cycle starting at cycle_end.",
        "An upgrade takes effect today: on the next invoice add a proration_credit of minus the "
        "old price x remaining days / days in the cycle, and a proration_charge of the new "
        "price x remaining days / days in the cycle, where remaining days run from today "
        "(inclusive) to cycle_end; each rounded half up to the cent.",
        downgrade,
        "The next invoice's plan line must bill the plan the subscription will have at renewal.",
        "A subscription's coupon applies to the next invoice only if it has not expired on the "
        "invoice's period_start (expires on or after it); its percent_off discounts the plan "
        "line only, rounded half up to the cent.",
        "Then apply as much of the customer's account credit as the invoice total allows, and "
        "finalize the invoice.",
    ]


# ---- tools ---------------------------------------------------------------------------------


def _find(state: State, table: str, key: str, value: str, what: str) -> dict[str, Any]:
    return find_record(state[table], value, f"no {what} {value!r}", key=key)


def _draft(state: State, invoice_id: str) -> dict[str, Any]:
    inv = _find(state, "invoices", "id", invoice_id, "invoice")
    if inv["status"] != "draft":
        raise ToolError(f"invoice {invoice_id} is {inv['status']}; only drafts can be changed")
    return inv


def _recompute(state: State, inv: dict[str, Any]) -> None:
    """Keep lines canonical (sorted) and the discount and total consistent after any edit."""
    inv["lines"].sort(key=lambda line: (line["kind"], line["amount_cents"]))
    discount = 0
    if inv["coupon"] is not None:
        pct = _find(state, "coupons", "code", inv["coupon"], "coupon")["percent_off"]
        plan = sum(x["amount_cents"] for x in inv["lines"] if x["kind"] == "plan")
        discount = (2 * plan * pct + 100) // 200
    inv["discount_cents"] = discount
    inv["total_cents"] = (sum(x["amount_cents"] for x in inv["lines"]) - discount
                          - inv["credit_applied_cents"])


@tool()
def find_customer(state: State, email: str) -> dict[str, Any]:
    """Look up a customer (id, name, credit_cents) by email.

    Args:
        email: the customer's email address.
    """
    return _find(state, "customers", "email", email, "customer with email")


@tool()
def list_subscriptions(state: State, customer_id: str) -> list[dict[str, Any]]:
    """A customer's subscriptions.

    Args:
        customer_id: the customer id, e.g. "C02".
    """
    return [s for s in state["subscriptions"] if s["customer_id"] == customer_id]


@tool()
def get_subscription(state: State, subscription_id: str) -> dict[str, Any]:
    """One subscription: plan, current cycle, coupon, pending plan and its next invoice id.

    Args:
        subscription_id: the subscription id, e.g. "S02".
    """
    return _find(state, "subscriptions", "id", subscription_id, "subscription")


@tool()
def list_plans(state: State) -> list[dict[str, Any]]:
    """The plans with their prices in cents per billing period."""
    return state["plans"]


@tool()
def list_invoices(state: State, customer_id: str) -> list[dict[str, Any]]:
    """A customer's invoices (past finalized ones and the next draft).

    Args:
        customer_id: the customer id.
    """
    return [i for i in state["invoices"] if i["customer_id"] == customer_id]


@tool()
def get_invoice(state: State, invoice_id: str) -> dict[str, Any]:
    """One invoice with its lines, coupon, discount, credit applied and total.

    Args:
        invoice_id: the invoice id, e.g. "INV-104".
    """
    return _find(state, "invoices", "id", invoice_id, "invoice")


@tool()
def get_coupon(state: State, code: str) -> dict[str, Any]:
    """A coupon's percent_off and expiry date.

    Args:
        code: the coupon code.
    """
    return _find(state, "coupons", "code", code, "coupon")


@tool()
def billing_policy(state: State) -> dict[str, Any]:
    """Today's date and the billing rules (proration, downgrades, coupons, credit)."""
    return {"today": state["today"], "rules": state["rules"]}


@tool(writes=True)
def change_plan(state: State, subscription_id: str, plan_id: str,
                when: Literal["now", "renewal"]) -> str:
    """Move a subscription to another plan now, or schedule the move for its renewal.

    This changes the subscription only; invoices are not touched.

    Args:
        subscription_id: the subscription id.
        plan_id: the new plan's id.
        when: "now" to switch today, "renewal" to switch at the end of the current cycle.
    """
    sub = _find(state, "subscriptions", "id", subscription_id, "subscription")
    _find(state, "plans", "id", plan_id, "plan")
    if plan_id == sub["plan_id"] and sub["pending_plan_id"] is None:
        raise ToolError(f"{subscription_id} is already on {plan_id}")
    if when == "now":
        sub["plan_id"], sub["pending_plan_id"] = plan_id, None
    else:
        sub["pending_plan_id"] = plan_id
    return f"{subscription_id}: plan {plan_id} {'from today' if when == 'now' else 'at renewal'}"


@tool(writes=True)
def add_invoice_line(state: State, invoice_id: str, kind: LineKind, amount_cents: int) -> str:
    """Add a line to a draft invoice. Credits are negative, charges positive.

    Args:
        invoice_id: a draft invoice.
        kind: plan, proration_credit (negative) or proration_charge (positive).
        amount_cents: the signed amount in cents.
    """
    inv = _draft(state, invoice_id)
    if (amount_cents < 0) != (kind == "proration_credit") or amount_cents == 0:
        raise ToolError("a proration_credit is negative; plan and proration_charge are positive")
    inv["lines"].append({"kind": kind, "amount_cents": amount_cents})
    _recompute(state, inv)
    return f"line added; invoice total now {inv['total_cents']}"


@tool(writes=True)
def remove_invoice_line(state: State, invoice_id: str, kind: LineKind, amount_cents: int) -> str:
    """Remove one line of a draft invoice, identified by its kind and amount.

    Args:
        invoice_id: a draft invoice.
        kind: the line's kind.
        amount_cents: the line's amount.
    """
    inv = _draft(state, invoice_id)
    for line in inv["lines"]:
        if line["kind"] == kind and line["amount_cents"] == amount_cents:
            inv["lines"].remove(line)
            _recompute(state, inv)
            return f"line removed; invoice total now {inv['total_cents']}"
    raise ToolError(f"invoice {invoice_id} has no {kind} line of {amount_cents}")


@tool(writes=True)
def apply_coupon(state: State, invoice_id: str, code: str) -> str:
    """Apply a coupon to a draft invoice; it discounts the plan line by its percent_off.

    Args:
        invoice_id: a draft invoice.
        code: the coupon code.
    """
    inv = _draft(state, invoice_id)
    _find(state, "coupons", "code", code, "coupon")
    if inv["coupon"] is not None:
        raise ToolError(f"invoice {invoice_id} already has coupon {inv['coupon']}")
    inv["coupon"] = code
    _recompute(state, inv)
    return f"coupon applied; discount {inv['discount_cents']}, total {inv['total_cents']}"


@tool(writes=True)
def apply_credit(state: State, invoice_id: str, amount_cents: int) -> str:
    """Pay part of a draft invoice from the customer's account credit.

    Args:
        invoice_id: a draft invoice.
        amount_cents: at least 1, at most the customer's credit and the invoice total.
    """
    inv = _draft(state, invoice_id)
    customer = _find(state, "customers", "id", inv["customer_id"], "customer")
    top = min(customer["credit_cents"], inv["total_cents"])
    if not 1 <= amount_cents <= top:
        raise ToolError(f"amount_cents must be between 1 and {top}")
    customer["credit_cents"] -= amount_cents
    inv["credit_applied_cents"] += amount_cents
    _recompute(state, inv)
    return f"credit applied; total {inv['total_cents']}, credit left {customer['credit_cents']}"


@tool(writes=True)
def finalize_invoice(state: State, invoice_id: str) -> dict[str, Any]:
    """Finalize a draft invoice: no more changes; returns it with its amount due.

    Args:
        invoice_id: a draft invoice.
    """
    inv = _draft(state, invoice_id)
    if inv["total_cents"] < 0:
        raise ToolError("the total is negative; fix the lines before finalizing")
    inv["status"] = "finalized"
    return inv


# ---- what a request should produce ---------------------------------------------------------

_TRAPS = ("expired_coupon", "timing", "no_credit_line", "skip_credit")


def _outcome(state: State, sub_id: str, to_plan: str | None, downgrade: str,
             trap: str = "", day_error: int = 0) -> dict[str, Any]:
    """The changes a request calls for and the amount due; `trap` names one rule to break."""
    sub = _find(state, "subscriptions", "id", sub_id, "subscription")
    inv = _find(state, "invoices", "id", sub["next_invoice_id"], "invoice")
    price = {p["id"]: p["price_cents"] for p in state["plans"]}
    start, end = date.fromisoformat(sub["cycle_start"]), date.fromisoformat(sub["cycle_end"])
    remaining = (end - date.fromisoformat(state["today"])).days + day_error
    out: dict[str, Any] = {"change": None, "plan_line": None, "proration": [], "coupon": None}
    if to_plan is not None:
        old, new = price[sub["plan_id"]], price[to_plan]
        now = new > old or downgrade == "immediate"
        if trap == "timing" and new < old:
            now = not now
        out["change"] = [to_plan, "now" if now else "renewal"]
        out["plan_line"] = [old, new]
        if now:
            cycle = (end - start).days
            if trap != "no_credit_line":
                out["proration"].append(["proration_credit", -_prorate(old, remaining, cycle)])
            out["proration"].append(["proration_charge", _prorate(new, remaining, cycle)])
    plan_line = out["plan_line"][1] if out["plan_line"] else price[sub["plan_id"]]
    discount = 0
    if sub["coupon"] is not None:
        coupon = _find(state, "coupons", "code", sub["coupon"], "coupon")
        if coupon["expires"] >= inv["period_start"] or trap == "expired_coupon":
            out["coupon"] = coupon["code"]
            discount = (2 * plan_line * coupon["percent_off"] + 100) // 200
    subtotal = plan_line + sum(a for _, a in out["proration"]) - discount
    credit = _find(state, "customers", "id", sub["customer_id"], "customer")["credit_cents"]
    out["credit"] = 0 if trap == "skip_credit" else max(0, min(credit, subtotal))
    out["total"] = subtotal - out["credit"]
    return out


def _calls(state: State, sub_id: str, out: Mapping[str, Any]) -> list[Call]:
    """The write calls carrying out an outcome, in a valid order, ending with finalize."""
    inv = _find(state, "subscriptions", "id", sub_id, "subscription")["next_invoice_id"]
    calls = []
    if out["change"] is not None:
        calls.append(Call("change_plan", {"subscription_id": sub_id, "plan_id": out["change"][0],
                                          "when": out["change"][1]}))
        old, new = out["plan_line"]
        calls += [Call("remove_invoice_line", {"invoice_id": inv, "kind": "plan",
                                               "amount_cents": old}),
                  Call("add_invoice_line", {"invoice_id": inv, "kind": "plan",
                                            "amount_cents": new})]
    calls += [Call("add_invoice_line", {"invoice_id": inv, "kind": k, "amount_cents": a})
              for k, a in out["proration"]]
    if out["coupon"] is not None:
        calls.append(Call("apply_coupon", {"invoice_id": inv, "code": out["coupon"]}))
    if out["credit"]:
        calls.append(Call("apply_credit", {"invoice_id": inv, "amount_cents": out["credit"]}))
    return [*calls, Call("finalize_invoice", {"invoice_id": inv})]


# ---- generation ----------------------------------------------------------------------------


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return d.replace(year=d.year + m // 12, month=m % 12 + 1)


def _cycle(rng: random.Random, today: date, annual: bool) -> tuple[date, date]:
    if annual:
        start = today - timedelta(days=rng.randrange(1, 360))
        start = start.replace(day=min(start.day, 28))
        return start, start.replace(year=start.year + 1)
    anchor = rng.randint(1, 28)
    start = today.replace(day=anchor) if today.day >= anchor else _add_months(
        today.replace(day=anchor), -1)
    return start, _add_months(start, 1)


def _invoice(iid: str, sub: Mapping[str, Any], start: date, end: date, price: int,
             status: str) -> dict[str, Any]:
    return {"id": iid, "customer_id": sub["customer_id"], "subscription_id": sub["id"],
            "status": status, "period_start": start.isoformat(), "period_end": end.isoformat(),
            "lines": [{"kind": "plan", "amount_cents": price}], "coupon": None,
            "discount_cents": 0, "credit_applied_cents": 0, "total_cents": price}


def _subscriptions(rng: random.Random, config: BillingConfig, today: date,
                   customers: list[dict[str, Any]], plans: list[dict[str, Any]],
                   codes: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    subs, invoices = [], []
    step = 12 if config.annual else 1
    for i, c in enumerate(customers):
        start, end = _cycle(rng, today, config.annual)
        plan = plans[rng.randint(1, len(plans) - 2)]
        sub = {"id": f"S{i + 1:02d}", "customer_id": c["id"], "plan_id": plan["id"],
               "cycle_start": start.isoformat(), "cycle_end": end.isoformat(),
               "coupon": rng.choice(codes) if config.coupons and rng.random() < 0.7 else None,
               "pending_plan_id": None, "next_invoice_id": f"INV-{201 + i}"}
        subs.append(sub)
        invoices += [_invoice(f"INV-{101 + i}", sub, _add_months(start, -step), start,
                              plan["price_cents"], "finalized"),
                     _invoice(sub["next_invoice_id"], sub, end, _add_months(end, step),
                              plan["price_cents"], "draft")]
    return subs, invoices


# ---- the family ----------------------------------------------------------------------------

_EDIT = ("change_plan", "add_invoice_line", "remove_invoice_line")


@register_family
class SubscriptionBilling(Family[BillingConfig]):
    name = "subscription_billing"
    summary = "Process SaaS plan changes: prorate, fix the next invoice, coupon, credit, finalize."
    config_model = BillingConfig
    answer_model = BillingAnswer
    tools = (find_customer, list_subscriptions, get_subscription, list_plans, list_invoices,
             get_invoice, get_coupon, billing_policy, change_plan, add_invoice_line,
             remove_invoice_line, apply_coupon, apply_credit, finalize_invoice)
    variants = (
        Variant("proration", ("find_customer", "list_subscriptions", "list_plans", "get_invoice",
                              *_EDIT, "finalize_invoice"),
                ("daily_proration", "downgrade_at_renewal"), {"coupons": False, "credits": False}),
        Variant("coupons-and-credit", ("find_customer", "list_subscriptions", "list_invoices",
                                       "get_coupon", "apply_coupon", "apply_credit",
                                       "finalize_invoice"),
                ("coupon_expiry", "credit_cap")),
        Variant("immediate-downgrades", ("find_customer", "get_subscription", "list_plans",
                                         "get_invoice", "billing_policy", *_EDIT,
                                         "apply_credit", "finalize_invoice"),
                ("daily_proration", "downgrade_immediate", "credit_cap"),
                {"downgrade": "immediate", "coupons": False}),
        Variant("annual-plans", ("find_customer", "list_subscriptions", "list_plans",
                                 "get_invoice", "get_coupon", "billing_policy", *_EDIT,
                                 "apply_coupon", "apply_credit", "finalize_invoice"),
                ("daily_proration", "downgrade_at_renewal", "coupon_expiry", "credit_cap"),
                {"annual": True}),
        Variant("quote", ("find_customer", "list_subscriptions", "list_plans", "list_invoices",
                          "get_coupon", "billing_policy"),
                ("daily_proration", "downgrade_at_renewal", "coupon_expiry", "credit_cap",
                 "read_only")),
        Variant("full-desk", ("find_customer", "list_subscriptions", "get_subscription",
                              "list_plans", "list_invoices", "get_invoice", "get_coupon",
                              "billing_policy", *_EDIT, "apply_coupon", "apply_credit",
                              "finalize_invoice"),
                ("daily_proration", "downgrade_at_renewal", "coupon_expiry", "credit_cap"),
                {"customers": 10}),
    )

    def generate_state(self, rng: random.Random, config: BillingConfig) -> State:
        today = date(2025, 6, 1) + timedelta(days=rng.randrange(30))
        scale = 10 if config.annual else 1
        plans = [{"id": pid, "price_cents": price * scale} for pid, price in _PLANS]
        codes = rng.sample(["SPRING15", "LOYAL20", "WELCOME10", "PARTNER25", "EDU30"], 4)
        horizon = 400 if config.annual else 45
        coupons = [{"code": code, "percent_off": int(code[-2:]),
                    "expires": (today + timedelta(days=rng.randrange(-10, horizon))).isoformat()}
                   for code in codes]
        names = rng.sample([(f, la) for f in _FIRST for la in _LAST], config.customers)
        customers = [{"id": f"C{i + 1:02d}", "name": f"{f} {la}",
                      "email": f"{f.lower()}.{la.lower()}@corp.test",
                      "credit_cents": rng.choice([0, 0, 800, 2_500, 6_000, 40_000])
                      if config.credits else 0} for i, (f, la) in enumerate(names)]
        subs, invoices = _subscriptions(rng, config, today, customers, plans, codes)
        return {"today": today.isoformat(), "plans": plans, "coupons": coupons,
                "customers": customers, "subscriptions": subs, "invoices": invoices,
                "rules": _rules(config.downgrade, config.annual)}

    def generate_task(self, rng: random.Random, state: State, config: BillingConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        # The quote variant prices plan changes without the tools to make them.
        can_change = "change_plan" in variant.tools or "finalize_invoice" not in variant.tools
        finalize = not can_change or level == 0 and (config.coupons or config.credits)
        order = [p["id"] for p in state["plans"]]
        for sub in rng.sample(state["subscriptions"], len(state["subscriptions"])):
            to_plan = None
            if not finalize:
                here = order.index(sub["plan_id"])
                up = level == 1 or level == 2 and rng.random() < 0.5
                to_plan = rng.choice(order[here + 1:] if up else order[:here])
            truth = _outcome(state, sub["id"], to_plan, config.downgrade)
            quote = "finalize_invoice" not in variant.tools
            # A broken rule must show: in the state, or (for a quote) in the amount.
            traps = [t for t in _TRAPS if _differs(
                _outcome(state, sub["id"], to_plan, config.downgrade, t), truth, quote)]
            # The hardest level stacks two rules that matter, where the variant has them.
            need = 2 if level == 2 and config.coupons and config.credits else 1
            if truth["total"] < 0 or len(traps) < need:
                continue
            return TaskDraft(
                instruction=_instruction(state, sub, to_plan, variant, quote),
                goal={"subscription": sub["id"], "to_plan": to_plan, "quote": quote,
                      "downgrade": config.downgrade, "traps": traps,
                      "amount_due_cents": truth["total"]},
                knobs={"steps": 4 + len(_calls(state, sub["id"], truth)),
                       "constraints": len(traps), "distractors": len(state["subscriptions"]) - 1},
                hash_tables=("subscriptions", "invoices", "customers"),
            )
        return None

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        return [*_reads(state, g["subscription"], variant), *self._writes(state, g, "", 0),
                Call("submit", {"amount_due_cents": g["amount_due_cents"]})]

    @staticmethod
    def _writes(state: State, goal: Mapping[str, Any], trap: str, day_error: int) -> list[Call]:
        if goal["quote"]:
            return []
        out = _outcome(state, goal["subscription"], goal["to_plan"], goal["downgrade"], trap,
                       day_error)
        return _calls(state, goal["subscription"], out)

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        state = check_state_hash(final_state, goal)
        got = (answer or {}).get("amount_due_cents")
        amount_ok = got == goal["amount_due_cents"]
        ok = state.reward == 1.0 and amount_ok
        return Verdict(reward=float(ok),
                       components={"state_match": state.reward, "amount_match": float(amount_ok)},
                       reason=f"{state.reason}; amount due {got} vs {goal['amount_due_cents']}")

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        reads = _reads(state, g["subscription"], variant)
        trap = g["traps"][0]
        careless = _outcome(state, g["subscription"], g["to_plan"], g["downgrade"], trap)
        broken = [*reads, *self._writes(state, g, trap, 0),
                  Call("submit", {"amount_due_cents": careless["total"]})]
        if g["to_plan"] is not None and not g["quote"]:  # today counted twice in the proration
            off = _outcome(state, g["subscription"], g["to_plan"], g["downgrade"], "", 1)
            wrong = [*reads, *self._writes(state, g, "", 1),
                     Call("submit", {"amount_due_cents": off["total"]})]
            if off == _outcome(state, g["subscription"], g["to_plan"], g["downgrade"]):
                wrong = []
        else:
            wrong = []
        if not wrong:  # the right work, but the amount before credit is reported
            credit = _outcome(state, g["subscription"], g["to_plan"], g["downgrade"])["credit"]
            wrong = [*reference[:-1], Call("submit", {"amount_due_cents": g["amount_due_cents"]
                                                      + (credit or 100)})]
        return {"constraint_broken": broken, "wrong_value": wrong}


def _differs(a: Mapping[str, Any], b: Mapping[str, Any], quote: bool) -> bool:
    return a["total"] != b["total"] if quote else a != b


def _reads(state: State, sub_id: str, variant: Variant) -> list[Call]:
    sub = _find(state, "subscriptions", "id", sub_id, "subscription")
    email = _find(state, "customers", "id", sub["customer_id"], "customer")["email"]
    tools = set(variant.tools)
    calls = [Call("find_customer", {"email": email})]
    calls.append(Call("get_subscription", {"subscription_id": sub_id}) if "get_subscription"
                 in tools else Call("list_subscriptions", {"customer_id": sub["customer_id"]}))
    calls.append(Call("get_invoice", {"invoice_id": sub["next_invoice_id"]}) if "get_invoice"
                 in tools else Call("list_invoices", {"customer_id": sub["customer_id"]}))
    for name in ("list_plans", "billing_policy"):
        if name in tools:
            calls.append(Call(name))
    if sub["coupon"] is not None and "get_coupon" in tools:
        calls.append(Call("get_coupon", {"code": sub["coupon"]}))
    return calls


def _instruction(state: State, sub: Mapping[str, Any], to_plan: str | None, variant: Variant,
                 quote: bool) -> str:
    email = _find(state, "customers", "id", sub["customer_id"], "customer")["email"]
    if to_plan is None:
        ask = f"Customer {email}'s next invoice is due to be issued."
    else:
        ask = f"Customer {email} asks to move their subscription to the {to_plan} plan."
    if quote:
        todo = ("They want to know the amount due on their next invoice once everything is "
                "handled per the billing rules. Change nothing: work it out and submit "
                "`amount_due_cents`.")
    else:
        todo = ("Handle it per the billing rules: change the subscription if asked, bring the "
                "next invoice in line, and finalize it. Submit its amount due as "
                "`amount_due_cents`.")
    rules = ("The rules are in the billing policy (billing_policy)." if "billing_policy" in
             variant.tools else "Rules: " + " ".join(state["rules"]))
    return f"Today is {state['today']}. {ask} {todo} {rules}"
