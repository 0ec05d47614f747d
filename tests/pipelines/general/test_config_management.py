"""config_management: the verifier against a hand-fixed fleet, and the layered fix rule."""

from __future__ import annotations

import copy

import pytest

from envsynth.errors import ToolError
from pipelines.general.families import config_management as cm
from pipelines.general.family import Call, load_families, state_digest

FAMILY = load_families().get("config_management")


def _svc(sid: str, env: str, team: str, tier: str, **config: object) -> dict:
    base = {"tls": True, "debug": False, "replicas": 3, "port": 8100, "log_level": "warn",
            "timeout_ms": 5000}
    return {"id": sid, "team": team, "env": env, "tier": tier, "config": {**base, **config},
            "overrides": {}}


def _state() -> dict:
    return {
        "services": [
            _svc("svc-a", "prod", "core", "critical", tls=False, debug=True, replicas=2,
                 port=8080, log_level="info"),
            _svc("svc-b", "staging", "core", "standard", tls=False, debug=True, replicas=1,
                 port=80, log_level="debug"),
            _svc("svc-c", "prod", "growth", "standard", tls=False, replicas=1),
            _svc("svc-d", "prod", "core", "standard", tls=False, replicas=1),
        ],
        "policy": {"min_replicas_prod": 3, "min_replicas_staging": 2, "min_replicas_critical": 4,
                   "port_low": 8000, "port_high": 8999},
        "port_registry": {"svc-a": 8001, "svc-b": 8002, "svc-c": 8100, "svc-d": 8004},
        "waivers": [{"service": "svc-d", "rule": "tls"}],
    }


RULES = ["tls", "debug", "replicas", "port"]
SCOPE = {"team": "core"}


def _fixed_by_hand() -> dict:
    """Team core, worked by hand: a is critical prod, b is staging, d is waived for TLS."""
    state = _state()
    a, b, _, d = state["services"]
    a["config"].update(tls=True, debug=False, replicas=4)       # critical: max(3, 4)
    b["config"].update(replicas=2, port=8002)                   # tls/debug only bind prod
    d["config"].update(replicas=3)                               # tls waived
    return state


def _goal() -> dict:
    return {"rules": RULES, "scope": SCOPE, "hash_tables": ["services"],
            "state_hash": state_digest(_fixed_by_hand(), ["services"])}


def test_hand_fixed_fleet_passes() -> None:
    verdict = FAMILY.verify(_fixed_by_hand(), {}, _goal())
    assert verdict.reward == 1.0, verdict.reason


def test_due_fixes_match_the_hand_worked_list() -> None:
    assert cm._due(_state(), RULES, SCOPE) == {
        "svc-a": {"tls": True, "debug": False, "replicas": 4},
        "svc-b": {"replicas": 2, "port": 8002},
        "svc-d": {"replicas": 3},
    }


@pytest.mark.parametrize(("service", "change"), [
    ("svc-d", {"tls": True}),        # fixed a waived rule
    ("svc-c", {"tls": True}),        # fixed a service out of scope
    ("svc-a", {"replicas": 3}),      # the prod minimum, not the critical one
    ("svc-b", {"port": 8500}),       # in range, but not the registry's port
    ("svc-a", {"replicas": 5}),      # more than the minimum
])
def test_near_misses_fail(service: str, change: dict) -> None:
    state = _fixed_by_hand()
    next(s for s in state["services"] if s["id"] == service)["config"].update(change)
    assert FAMILY.verify(state, {}, _goal()).reward == 0.0


def test_hash_match_alone_is_not_enough() -> None:
    """A goal hashed from a fleet that still breaks rules must not pass (rules_hold)."""
    broken = _state()
    goal = {**_goal(), "state_hash": state_digest(broken, ["services"])}
    verdict = FAMILY.verify(broken, {}, goal)
    assert verdict.components["state_match"] == 1.0
    assert verdict.reward == 0.0 and verdict.components["rules_hold"] == 0.0


def test_layered_fixes_clear_bad_overrides_and_set_the_rest() -> None:
    state = _state()
    a, b, c, d = state["services"]
    a["config"].update(replicas=5, debug=False, tls=True, log_level="warn")
    a["overrides"] = {"replicas": 1, "debug": True}       # base is fine: clear both
    c["overrides"] = {"tls": False}                        # base is bad too: override
    state["services"] = [a, c]
    state["waivers"] = []
    rules = ["tls", "debug", "replicas"]
    goal = {"rules": rules, "fixes": cm._due(state, rules, {"env": "prod"})}
    calls = FAMILY._fix_calls(state, goal, FAMILY.variant("layered"))
    assert calls == [
        Call("clear_override", {"service_id": "svc-a", "key": "debug"}),
        Call("clear_override", {"service_id": "svc-a", "key": "replicas"}),
        Call("set_override", {"service_id": "svc-c", "key": "replicas", "value": 3}),
        Call("set_override", {"service_id": "svc-c", "key": "tls", "value": True}),
    ]


@pytest.mark.parametrize(("name", "args"), [
    ("set_config", {"service_id": "svc-a", "key": "colour", "value": "red"}),
    ("set_config", {"service_id": "svc-a", "key": "replicas", "value": "4"}),
    ("set_config", {"service_id": "svc-a", "key": "tls", "value": 1}),
    ("set_config", {"service_id": "svc-a", "key": "port", "value": True}),
    ("set_config", {"service_id": "svc-a", "key": "log_level", "value": "verbose"}),
    ("set_config", {"service_id": "svc-z", "key": "tls", "value": True}),
    ("set_replicas", {"service_id": "svc-a", "replicas": 0}),
    ("clear_override", {"service_id": "svc-a", "key": "tls"}),
    ("get_port_registry", {"service_id": "svc-z"}),
])
def test_bad_calls_raise_and_leave_state(name: str, args: dict) -> None:
    state = _state()
    before = copy.deepcopy(state)
    with pytest.raises(ToolError):
        FAMILY.tool_index[name].call(state, args)
    assert state == before


def test_validate_service_ignores_waivers() -> None:
    assert cm.validate_service.call(_state(), {"service_id": "svc-d"}) == ["replicas", "tls"]
