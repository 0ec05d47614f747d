"""Support desk triage: categorize, prioritize, assign and escalate tickets by written rules.

Tickets carry a subject, a body, a customer (whose tier sets the SLA) and a creation time;
agents have skills, a current load, a load cap and a shift flag. The task states the desk's
rules — subject keywords give the category, tier and urgency give the priority, a ticket
past its SLA deadline is escalated, and new tickets go, in deadline order, to the least
loaded on-shift agent with the skill and room under the cap — and names the tickets to
triage.

State-graded: the reference triage is replayed and the agent's final `tickets` and
`agents` tables must hash to the same value.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
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
    check_state_hash,
    register_family,
)
from pipelines.general.tools import State, find_record, tool

_KEYWORDS = {
    "billing": ("invoice", "refund", "charge", "payment"),
    "account": ("password", "login", "2fa", "locked"),
    "network": ("timeout", "latency", "outage", "unreachable"),
}
_SUBJECTS = {
    "billing": ["Invoice {n} shows the wrong amount", "Refund not received for order {n}",
                "Double charge on card ending {n}", "Payment failed at checkout"],
    "account": ["Cannot reset my password", "Login loop after update {n}",
                "2FA codes rejected", "Account locked after failed attempts"],
    "network": ["API timeout from region {n}", "High latency on dashboard",
                "Service outage since this morning", "Webhook endpoint unreachable"],
    "bug": ["Export button does nothing", "Wrong totals in report {n}",
            "Typo on settings page", "Crash when uploading CSV {n}"],
}
_CALM = ["Seen since Tuesday.", "Screenshots attached.", "Happens on every browser.",
         "Our team of five is affected.", "Please advise.", "Tried clearing the cache."]
_URGENT = ["This is urgent.", "It blocks our production traffic."]
_COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne",
              "Tyrell", "Cyberdyne"]
_AGENTS = ["Ana", "Ben", "Cleo", "Dev", "Emi", "Finn", "Gia", "Hugo"]
_PRIORITIES = ("P1", "P2", "P3", "P4")
_TIERS = ("enterprise", "pro", "free")

Category = Literal["billing", "account", "network", "bug"]
Priority = Literal["P1", "P2", "P3", "P4"]


class TriageConfig(FamilyConfig):
    tickets: int = Field(14, ge=6, le=24)
    customers: int = Field(5, ge=3, le=10)
    agents: int = Field(5, ge=3, le=8)
    sla_enterprise: int = Field(120, ge=15, le=240)
    sla_pro: int = Field(240, ge=60, le=480)
    sla_free: int = Field(480, ge=120, le=1440)
    precategorized: bool = False
    """Whether new tickets arrive with their category already set."""


# ---- the desk's rules -----------------------------------------------------------------------


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _category(subject: str) -> str:
    words = subject.lower()
    for cat, keys in _KEYWORDS.items():
        if any(k in words for k in keys):
            return cat
    return "bug"


def _priority(ticket: Mapping[str, Any], tier: str) -> str:
    body = ticket["body"].lower()
    urgent = "urgent" in body or "production" in body
    return _PRIORITIES[_TIERS.index(tier) + (0 if urgent else 1)]


def _deadline(ticket: Mapping[str, Any], tier: str, sla: Mapping[str, int]) -> int:
    return _minutes(ticket["created_at"]) + sla[tier]


def _pick(agents: list[dict[str, Any]], loads: Mapping[str, int], category: str) -> str | None:
    """The least-loaded on-shift agent with the skill and room under the cap; first on ties."""
    fit = [a for a in agents if a["on_shift"] and category in a["skills"]
           and loads[a["id"]] < a["cap"]]
    return min(fit, key=lambda a: loads[a["id"]])["id"] if fit else None


def _plan(state: State, targets: list[str], ops: tuple[str, ...]) -> list[Call]:
    """The write calls that triage `targets` by the rules, in deadline order."""
    tiers = {c["id"]: c["tier"] for c in state["customers"]}
    tickets = {t["id"]: t for t in state["tickets"]}
    loads = {a["id"]: a["load"] for a in state["agents"]}
    now, sla = _minutes(state["now"]), state["sla_minutes"]

    def key(tid: str) -> tuple[int, int]:
        t = tickets[tid]
        return _deadline(t, tiers[t["customer_id"]], sla), int(tid.split("-")[1])

    calls = []
    for tid in sorted(targets, key=key):
        t = tickets[tid]
        tier = tiers[t["customer_id"]]
        category = t["category"] or _category(t["subject"])
        breached = "escalate" in ops and _deadline(t, tier, sla) < now
        if "categorize" in ops:
            calls.append(Call("set_category", {"ticket_id": tid, "category": category}))
        if "prioritize" in ops:
            rank = _PRIORITIES.index(_priority(t, tier)) - (1 if breached else 0)
            calls.append(Call("set_priority", {"ticket_id": tid,
                                               "priority": _PRIORITIES[max(0, rank)]}))
        if breached:
            calls.append(Call("escalate_ticket", {"ticket_id": tid, "reason": "sla_breach"}))
            continue
        if "assign" in ops:
            agent = _pick(state["agents"], loads, category)
            if agent is not None:
                loads[agent] += 1
                calls.append(Call("assign_ticket", {"ticket_id": tid, "agent_id": agent}))
            elif "no_agent" in ops:
                calls.append(Call("escalate_ticket", {"ticket_id": tid, "reason": "no_agent"}))
    return calls


# ---- tools ------------------------------------------------------------------------------


def _ticket(state: State, ticket_id: str, *, editable: bool = True) -> dict[str, Any]:
    t = find_record(
        state["tickets"], ticket_id, f"no ticket {ticket_id!r}; list_tickets shows the ids"
    )
    if editable and t["status"] in ("closed", "escalated"):
        raise ToolError(f"ticket {ticket_id} is {t['status']} and cannot be changed")
    return t


@tool()
def list_tickets(state: State, status: str | None = None, customer_id: str | None = None
                 ) -> list[dict[str, Any]]:
    """List tickets (id, subject, customer_id, status, created_at), optionally filtered.

    Args:
        status: new, open, escalated or closed; every status when omitted.
        customer_id: only this customer's tickets, e.g. "c2".
    """
    return [{k: t[k] for k in ("id", "subject", "customer_id", "status", "created_at")}
            for t in state["tickets"]
            if (status is None or t["status"] == status)
            and (customer_id is None or t["customer_id"] == customer_id)]


@tool()
def get_ticket(state: State, ticket_id: str) -> dict[str, Any]:
    """A ticket in full: subject, body, customer, created_at, category, priority, assignee.

    Args:
        ticket_id: the ticket's id, e.g. "T-104".
    """
    return _ticket(state, ticket_id, editable=False)


@tool()
def get_customer(state: State, customer_id: str) -> dict[str, Any]:
    """A customer's name and support tier (enterprise, pro or free).

    Args:
        customer_id: the customer's id, e.g. "c1".
    """
    return find_record(state["customers"], customer_id, f"no customer {customer_id!r}")


@tool()
def list_agents(state: State) -> list[dict[str, Any]]:
    """Every support agent: id, name, skills, current load, load cap and whether on shift."""
    return state["agents"]


@tool()
def get_sla_policy(state: State) -> dict[str, Any]:
    """The current time and the first-response SLA in minutes for each tier."""
    return {"now": state["now"], "sla_minutes": state["sla_minutes"]}


@tool(writes=True)
def set_category(state: State, ticket_id: str, category: Category) -> str:
    """Set a ticket's category.

    Args:
        ticket_id: the ticket's id.
        category: billing, account, network or bug.
    """
    _ticket(state, ticket_id)["category"] = category
    return f"{ticket_id}: category {category}"


@tool(writes=True)
def set_priority(state: State, ticket_id: str, priority: Priority) -> str:
    """Set a ticket's priority (P1 is the most urgent).

    Args:
        ticket_id: the ticket's id.
        priority: P1, P2, P3 or P4.
    """
    _ticket(state, ticket_id)["priority"] = priority
    return f"{ticket_id}: priority {priority}"


@tool(writes=True)
def assign_ticket(state: State, ticket_id: str, agent_id: str) -> str:
    """Assign an unassigned ticket to an agent; the ticket becomes open and the agent's load grows.

    Args:
        ticket_id: the ticket's id.
        agent_id: the agent's id, e.g. "a2".
    """
    ticket = _ticket(state, ticket_id)
    agent = find_record(
        state["agents"], agent_id, f"no agent {agent_id!r}; list_agents shows the ids"
    )
    if ticket["assignee"] is not None:
        raise ToolError(f"ticket {ticket_id} is already assigned to {ticket['assignee']}")
    ticket["assignee"], ticket["status"] = agent_id, "open"
    agent["load"] += 1
    return f"{ticket_id} assigned to {agent_id} (load now {agent['load']})"


@tool(writes=True)
def escalate_ticket(state: State, ticket_id: str,
                    reason: Literal["sla_breach", "no_agent"]) -> str:
    """Escalate a ticket to the duty manager; it can no longer be changed afterwards.

    Args:
        ticket_id: the ticket's id.
        reason: sla_breach (past its SLA deadline) or no_agent (nobody eligible to take it).
    """
    ticket = _ticket(state, ticket_id)
    ticket["status"], ticket["escalation"] = "escalated", reason
    return f"{ticket_id} escalated ({reason})"


# ---- the family -------------------------------------------------------------------------

_READS = ("list_tickets", "get_ticket")


@register_family
class TicketTriage(Family[TriageConfig]):
    name = "ticket_triage"
    summary = "Support desk: categorize, prioritize, assign and escalate tickets by the rules."
    config_model = TriageConfig
    tools = (list_tickets, get_ticket, get_customer, list_agents, get_sla_policy, set_category,
             set_priority, assign_ticket, escalate_ticket)
    variants = (
        Variant("categorize", (*_READS, "set_category"), ("categorize",)),
        Variant("prioritize", (*_READS, "get_customer", "set_priority"), ("prioritize",)),
        Variant("assign", (*_READS, "list_agents", "assign_ticket"), ("assign",),
                {"precategorized": True}),
        Variant("sla", (*_READS, "get_customer", "get_sla_policy", "set_priority",
                        "escalate_ticket"), ("prioritize", "escalate")),
        Variant("overflow", (*_READS, "list_agents", "assign_ticket", "escalate_ticket"),
                ("assign", "no_agent"), {"precategorized": True, "tickets": 18, "agents": 4}),
        Variant("full", (*_READS, "get_customer", "list_agents", "get_sla_policy",
                         "set_category", "set_priority", "assign_ticket", "escalate_ticket"),
                ("categorize", "prioritize", "escalate", "assign", "no_agent")),
    )

    def generate_state(self, rng: random.Random, config: TriageConfig) -> State:
        customers = [{"id": f"c{i}", "name": name, "tier": rng.choice(_TIERS)}
                     for i, name in enumerate(rng.sample(_COMPANIES, config.customers))]
        cats = list(_SUBJECTS)
        agents: list[dict[str, Any]] = [
            {"id": f"a{i}", "name": name, "load": 0, "cap": rng.randint(2, 4),
             "skills": sorted(rng.sample(cats, rng.randint(1, 2))),
             "on_shift": rng.random() < 0.8}
            for i, name in enumerate(rng.sample(_AGENTS, config.agents))]
        for a in agents:
            a["load"] = rng.randint(0, a["cap"])
        tickets = [self._ticket(rng, 101 + i, customers, agents, config)
                   for i in range(config.tickets)]
        return {"now": "12:00", "customers": customers, "agents": agents, "tickets": tickets,
                "sla_minutes": {"enterprise": config.sla_enterprise, "pro": config.sla_pro,
                                "free": config.sla_free}}

    @staticmethod
    def _ticket(rng: random.Random, n: int, customers: list[dict[str, Any]],
                agents: list[dict[str, Any]], config: TriageConfig) -> dict[str, Any]:
        cat = rng.choice(list(_SUBJECTS))
        body = rng.sample(_CALM, 2) + ([rng.choice(_URGENT)] if rng.random() < 0.35 else [])
        rng.shuffle(body)
        # Ages skew recent, so only some tickets are past their SLA at noon.
        minute = max(0, 12 * 60 - 1 - round(rng.expovariate(1 / 150)))
        ticket = {"id": f"T-{n}", "customer_id": rng.choice(customers)["id"],
                  "subject": rng.choice(_SUBJECTS[cat]).format(n=rng.randint(100, 999)),
                  "body": " ".join(body), "created_at": f"{minute // 60:02d}:{minute % 60:02d}",
                  "status": "new", "category": cat if config.precategorized else None,
                  "priority": None, "assignee": None, "escalation": None}
        if rng.random() < 0.3:
            # Already handled tickets: distractors the agent must leave alone.
            ticket.update(status=rng.choice(("open", "closed")), category=cat,
                          priority=rng.choice(_PRIORITIES), assignee=rng.choice(agents)["id"])
        return ticket

    def generate_task(self, rng: random.Random, state: State, config: TriageConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        new = [t for t in state["tickets"] if t["status"] == "new"]
        if not new:
            return None
        if level == 0:
            rng.shuffle(new)
            # A single ticket that the rules act on (not one nobody may take).
            pick = next((t for t in new if _plan(state, [t["id"]], variant.constraints)), None)
            if pick is None:
                return None
            targets, scope = [pick["id"]], f"ticket {pick['id']}"
        elif level == 1:
            by_customer: dict[str, list[str]] = {}
            for t in new:
                by_customer.setdefault(t["customer_id"], []).append(t["id"])
            options = [(c, ts) for c, ts in sorted(by_customer.items()) if len(ts) >= 2]
            if not options:
                return None
            cid, targets = rng.choice(options)
            name = next(c["name"] for c in state["customers"] if c["id"] == cid)
            scope = f"every new ticket from customer {name} ({cid})"
        else:
            targets, scope = [t["id"] for t in new], "every new ticket in the queue"
        plan = _plan(state, targets, variant.constraints)
        if not plan:
            return None
        return TaskDraft(
            instruction=self._instruction(state, variant, scope),
            goal={"targets": targets},
            knobs={"steps": len(plan), "constraints": len(variant.constraints),
                   "distractors": len(state["tickets"]) - len(targets)},
            hash_tables=("tickets", "agents"),
        )

    @staticmethod
    def _instruction(state: State, variant: Variant, scope: str) -> str:
        ops = variant.constraints
        rules = []
        if "categorize" in ops:
            keys = "; ".join(f"{c}: {', '.join(k)}" for c, k in _KEYWORDS.items())
            rules.append("Category: the category whose keyword appears in the subject (case "
                         f"does not matter) — {keys}; bug when none appears.")
        if "prioritize" in ops:
            rules.append("Priority: a ticket is urgent when its body contains \"urgent\" or "
                         "\"production\". enterprise: P1 if urgent, else P2; pro: P2 if urgent, "
                         "else P3; free: P3 if urgent, else P4.")
        if "escalate" in ops:
            sla = ("the SLA policy (get_sla_policy)" if "get_sla_policy" in variant.tools
                   else str(state["sla_minutes"]))
            bump = ("raise the priority the table gives it by one step (P1 stays P1), then "
                    if "prioritize" in ops else "")
            instead = " instead of assigning it" if "assign" in ops else ""
            rules.append("SLA: a ticket's deadline is its created_at plus its customer tier's "
                         f"SLA minutes from {sla}. A ticket whose deadline is before now is "
                         f"breached: {bump}escalate it with reason sla_breach{instead}. An "
                         "escalated ticket can no longer be changed, so escalate last.")
        if "assign" in ops:
            fallback = ("escalate it with reason no_agent" if "no_agent" in ops
                        else "leave it unassigned")
            rules.append("Assignment: take tickets in order of SLA deadline (earliest first; "
                         "deadline = created_at plus the tier's SLA minutes "
                         f"{state['sla_minutes']}; ties by ticket number). Give each to the "
                         "on-shift agent who has the ticket's category as a skill and whose "
                         "load is below their cap, choosing the lowest current load (ties: "
                         "the first in list_agents order); each assignment adds 1 to that "
                         f"agent's load. If nobody qualifies, {fallback}.")
        return (f"Triage {scope} following the desk's rules. Do only what the rules "
                "prescribe.\n" + "\n".join(f"- {r}" for r in rules) + "\nThen submit.")

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        targets = draft.goal["targets"]
        calls = [Call("list_tickets", {"status": "new"}), Call("get_sla_policy"),
                 Call("list_agents")]
        calls += [Call("get_ticket", {"ticket_id": t}) for t in targets]
        customers = sorted({t["customer_id"] for t in state["tickets"] if t["id"] in targets})
        calls += [Call("get_customer", {"customer_id": c}) for c in customers]
        calls = [c for c in calls if c.name in variant.tools]
        return [*calls, *_plan(state, targets, variant.constraints), Call("submit")]

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        return check_state_hash(final_state, goal)

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        writes = [c for c in reference if c.name in
                  ("set_category", "set_priority", "assign_ticket", "escalate_ticket")]
        head = [c for c in reference[:-1] if c not in writes]
        targets = set(draft.goal["targets"])
        # The wrong record: the first write goes to a ticket the task did not name.
        first = writes[0]
        others = [t["id"] for t in state["tickets"] if t["id"] not in targets
                  and t["status"] not in ("closed", "escalated")]
        # With the whole queue in scope, another named ticket is the wrong record instead.
        others += sorted(targets - {first.arguments["ticket_id"]})
        others += [t["id"] for t in state["tickets"] if t["id"] != first.arguments["ticket_id"]]
        wrong_id = others[0]
        wrong = [Call(first.name, {**first.arguments, "ticket_id": wrong_id}), *writes[1:]]
        return {"constraint_broken": [*head, *self._break_rule(state, writes), Call("submit")],
                "wrong_value": [*head, *wrong, Call("submit")]}

    @staticmethod
    def _break_rule(state: State, writes: list[Call]) -> list[Call]:
        """The reference with one rule ignored: an ineligible agent, a skipped escalation or
        a category/priority that disregards the table."""
        out = list(writes)
        for i, c in enumerate(out):
            if c.name == "assign_ticket":
                ticket = next(t for t in state["tickets"] if t["id"] == c.arguments["ticket_id"])
                category = ticket["category"] or _category(ticket["subject"])
                wrong = [a["id"] for a in state["agents"]
                         if not a["on_shift"] or category not in a["skills"]]
                if wrong:
                    out[i] = Call(c.name, {**c.arguments, "agent_id": wrong[0]})
                    return out
        for i, c in enumerate(out):
            if c.name == "escalate_ticket":
                return out[:i] + out[i + 1:]
        c = out[0]
        if c.name == "set_category":
            value = "bug" if c.arguments["category"] != "bug" else "billing"
            out[0] = Call(c.name, {**c.arguments, "category": value})
        elif c.name == "set_priority":
            rank = _PRIORITIES.index(c.arguments["priority"])
            out[0] = Call(c.name, {**c.arguments, "priority": _PRIORITIES[rank ^ 1]})
        else:
            out = out[1:]
        return out
