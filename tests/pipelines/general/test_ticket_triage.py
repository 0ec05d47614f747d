"""ticket_triage: a queue triaged by hand, checked against the verifier and the planner."""

from __future__ import annotations

import copy

import pytest

from envsynth.errors import ToolError
from pipelines.general.families import ticket_triage as tt
from pipelines.general.family import Call, load_families, state_digest

FAMILY = load_families().get("ticket_triage")
FULL = FAMILY.variant("full")


def _t(n: int, customer: str, subject: str, body: str, created: str, **extra: object) -> dict:
    ticket = {"id": f"T-{n}", "customer_id": customer, "subject": subject, "body": body,
              "created_at": created, "status": "new", "category": None, "priority": None,
              "assignee": None, "escalation": None}
    return {**ticket, **extra}


def _state() -> dict:
    return {
        "now": "12:00",
        "sla_minutes": {"enterprise": 60, "pro": 240, "free": 480},
        "customers": [{"id": "c0", "name": "Acme", "tier": "enterprise"},
                      {"id": "c1", "name": "Globex", "tier": "free"}],
        "agents": [
            {"id": "a0", "name": "Ana", "skills": ["billing"], "load": 1, "cap": 2,
             "on_shift": True},
            {"id": "a1", "name": "Ben", "skills": ["billing", "bug"], "load": 0, "cap": 1,
             "on_shift": True},
            {"id": "a2", "name": "Cleo", "skills": ["network"], "load": 0, "cap": 3,
             "on_shift": False},
        ],
        "tickets": [
            _t(101, "c0", "Refund not received for order 5", "Please advise.", "11:30"),
            _t(102, "c1", "Double charge on card ending 9", "This is urgent.", "11:00"),
            _t(103, "c0", "Export button does nothing", "It blocks our production traffic.",
               "10:30"),
            _t(104, "c1", "High latency on dashboard", "Seen since Tuesday.", "11:50"),
            _t(105, "c0", "Cannot reset my password", "Please advise.", "09:00",
               status="closed", category="account", priority="P2", assignee="a0"),
        ],
    }


# Worked by hand. Deadlines: T-103 11:30 (breached), T-101 12:30, T-102 19:00, T-104 19:50.
# T-103: bug, urgent enterprise P1 (a bump keeps P1), escalated for the SLA breach.
# T-101: billing, enterprise P2; Ana (load 1) and Ben (load 0) qualify: Ben, now full.
# T-102: billing, urgent free P3; only Ana has room.
# T-104: network, free P4; Cleo is off shift: escalated, no agent.
HAND_CALLS = [
    Call("set_category", {"ticket_id": "T-103", "category": "bug"}),
    Call("set_priority", {"ticket_id": "T-103", "priority": "P1"}),
    Call("escalate_ticket", {"ticket_id": "T-103", "reason": "sla_breach"}),
    Call("set_category", {"ticket_id": "T-101", "category": "billing"}),
    Call("set_priority", {"ticket_id": "T-101", "priority": "P2"}),
    Call("assign_ticket", {"ticket_id": "T-101", "agent_id": "a1"}),
    Call("set_category", {"ticket_id": "T-102", "category": "billing"}),
    Call("set_priority", {"ticket_id": "T-102", "priority": "P3"}),
    Call("assign_ticket", {"ticket_id": "T-102", "agent_id": "a0"}),
    Call("set_category", {"ticket_id": "T-104", "category": "network"}),
    Call("set_priority", {"ticket_id": "T-104", "priority": "P4"}),
    Call("escalate_ticket", {"ticket_id": "T-104", "reason": "no_agent"}),
]
TARGETS = ["T-101", "T-102", "T-103", "T-104"]


def _triaged_by_hand() -> dict:
    state = _state()
    t101, t102, t103, t104, _ = state["tickets"]
    t103.update(category="bug", priority="P1", status="escalated", escalation="sla_breach")
    t101.update(category="billing", priority="P2", status="open", assignee="a1")
    t102.update(category="billing", priority="P3", status="open", assignee="a0")
    t104.update(category="network", priority="P4", status="escalated", escalation="no_agent")
    state["agents"][0]["load"] = 2
    state["agents"][1]["load"] = 1
    return state


def _goal() -> dict:
    return {"targets": TARGETS, "hash_tables": ["tickets", "agents"],
            "state_hash": state_digest(_triaged_by_hand(), ["tickets", "agents"])}


def test_planner_matches_the_hand_triage() -> None:
    assert tt._plan(_state(), TARGETS, FULL.constraints) == HAND_CALLS


def test_hand_calls_through_the_tools_pass_the_verifier() -> None:
    state = _state()
    for call in HAND_CALLS:
        FAMILY.tool_index[call.name].call(state, dict(call.arguments))
    assert state == _triaged_by_hand()
    assert FAMILY.verify(state, {}, _goal()).reward == 1.0


@pytest.mark.parametrize("calls", [
    HAND_CALLS[:-1],                                            # T-104 never escalated
    HAND_CALLS[:2] + HAND_CALLS[3:],                            # the SLA breach ignored
    [*HAND_CALLS[:5], *HAND_CALLS[6:8],                         # T-102 served first: it
     Call("assign_ticket", {"ticket_id": "T-102", "agent_id": "a1"}),  # takes Ben
     Call("assign_ticket", {"ticket_id": "T-101", "agent_id": "a0"}),
     *HAND_CALLS[9:]],
    [*HAND_CALLS[:4], Call("set_priority", {"ticket_id": "T-101", "priority": "P3"}),
     *HAND_CALLS[5:]],                                          # tier table misread
])
def test_near_misses_fail(calls: list[Call]) -> None:
    state = _state()
    for call in calls:
        try:
            FAMILY.tool_index[call.name].call(state, dict(call.arguments))
        except ToolError:
            continue
    assert FAMILY.verify(state, {}, _goal()).reward == 0.0


@pytest.mark.parametrize(("name", "args"), [
    ("set_category", {"ticket_id": "T-105", "category": "bug"}),      # closed
    ("set_priority", {"ticket_id": "T-101", "priority": "P5"}),
    ("set_category", {"ticket_id": "T-101", "category": "sales"}),
    ("assign_ticket", {"ticket_id": "T-101", "agent_id": "a9"}),
    ("assign_ticket", {"ticket_id": "T-999", "agent_id": "a0"}),
    ("get_customer", {"customer_id": "c9"}),
    ("escalate_ticket", {"ticket_id": "T-101", "reason": "bored"}),
])
def test_bad_calls_raise_and_leave_state(name: str, args: dict) -> None:
    state = _state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        FAMILY.tool_index[name].call(state, args)
    assert state == before


def test_escalated_and_assigned_tickets_refuse_changes() -> None:
    state = _triaged_by_hand()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        tt.set_priority.call(state, {"ticket_id": "T-103", "priority": "P2"})
    with pytest.raises(ToolError):
        tt.assign_ticket.call(state, {"ticket_id": "T-101", "agent_id": "a0"})
    assert state == before
