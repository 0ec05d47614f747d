"""Fleet configuration: find the services that break policy rules and fix them.

Each service has a key/value config (tls, debug, replicas, port, log_level, timeout_ms);
in the layered variant a service also has overrides on top of its base config. The task
names policy rules (TLS in prod, no debug in prod, replica minimums by env and tier, a
port range with a registry of assigned ports, prod log levels), a scope (env or team) and,
in some variants, waivers that exempt a service from a rule. Each rule prescribes its fix.

State-graded: the final `services` table must hash to the replayed reference's, and every
in-scope rule must hold on the final state.
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
from pipelines.general.tools import State, find_record, tool

_NAMES = ["auth", "billing", "search", "cart", "media", "notify", "ledger", "gateway", "profile",
          "catalog", "reports", "queue", "mailer", "pricing", "sessions", "inventory", "ads",
          "geo", "chat", "upload", "metrics", "backup", "feeds", "wallet"]
_TEAMS = ["core", "growth", "payments", "platform"]
_ENVS = ("prod", "staging", "dev")
_LEVELS = ("debug", "info", "warn", "error")
_KEYS: dict[str, type] = {"tls": bool, "debug": bool, "replicas": int, "port": int,
                          "log_level": str, "timeout_ms": int}
_OFF_RANGE_PORTS = (80, 443, 3000, 5000, 9090, 9443)


class ConfigMgmtConfig(FamilyConfig):
    services: int = Field(14, ge=6, le=24)
    min_replicas_prod: int = Field(3, ge=2, le=5)
    min_replicas_staging: int = Field(2, ge=1, le=3)
    min_replicas_critical: int = Field(4, ge=3, le=6)
    port_low: int = Field(8000, ge=1024, le=9000)
    port_high: int = Field(8999, ge=1100, le=9999)
    waivers: bool = False
    """Whether some services hold waivers that exempt them from a rule."""
    layered: bool = False
    """Whether services carry overrides on top of a base config (fixed through overrides)."""


# ---- the rules ----------------------------------------------------------------------------


def _effective(svc: Mapping[str, Any]) -> dict[str, Any]:
    return {**svc["config"], **svc["overrides"]}


def _min_replicas(svc: Mapping[str, Any], policy: Mapping[str, Any]) -> int:
    need = {"prod": policy["min_replicas_prod"], "staging": policy["min_replicas_staging"]}
    base = need.get(svc["env"], 1)
    return max(base, policy["min_replicas_critical"]) if svc["tier"] == "critical" else base


def _fixes(svc: Mapping[str, Any], cfg: Mapping[str, Any], rules: list[str],
           state: State) -> dict[str, Any]:
    """The value each violated rule prescribes, for one service's config `cfg`."""
    policy, prod = state["policy"], svc["env"] == "prod"
    out: dict[str, Any] = {}
    if "tls" in rules and prod and not cfg["tls"]:
        out["tls"] = True
    if "debug" in rules and prod and cfg["debug"]:
        out["debug"] = False
    if "replicas" in rules and cfg["replicas"] < _min_replicas(svc, policy):
        out["replicas"] = _min_replicas(svc, policy)
    if "port" in rules and not policy["port_low"] <= cfg["port"] <= policy["port_high"]:
        out["port"] = state["port_registry"][svc["id"]]
    if "log_level" in rules and prod and cfg["log_level"] not in ("warn", "error"):
        out["log_level"] = "warn"
    return out


def _in_scope(svc: Mapping[str, Any], scope: Mapping[str, str]) -> bool:
    return all(svc[k] == v for k, v in scope.items())


def _due(state: State, rules: list[str], scope: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Fixes owed per in-scope service, waived rules left out."""
    waived: dict[str, set[str]] = {}
    for w in state["waivers"]:
        waived.setdefault(w["service"], set()).add(w["rule"])
    out = {}
    for svc in state["services"]:
        if _in_scope(svc, scope):
            owed = [r for r in rules if r not in waived.get(svc["id"], set())]
            fixes = _fixes(svc, _effective(svc), owed, state)
            if fixes:
                out[svc["id"]] = fixes
    return out


# ---- tools ------------------------------------------------------------------------------


def _service(state: State, service_id: str) -> dict[str, Any]:
    return find_record(
        state["services"], service_id, f"no service {service_id!r}; list_services shows the ids"
    )


def _checked(key: str, value: str | int | bool) -> str | int | bool:
    if key not in _KEYS:
        raise ToolError(f"unknown config key {key!r}; keys are {', '.join(_KEYS)}")
    if type(value) is not _KEYS[key]:
        raise ToolError(f"{key} takes a {_KEYS[key].__name__}, got {value!r}")
    if key == "log_level" and value not in _LEVELS:
        raise ToolError(f"log_level must be one of {', '.join(_LEVELS)}")
    if key in ("replicas", "port", "timeout_ms") and not 0 < int(value) < 100_000:
        raise ToolError(f"{key} must be a positive number below 100000")
    return value


@tool()
def list_services(state: State, env: str | None = None, team: str | None = None
                  ) -> list[dict[str, Any]]:
    """List services (id, team, env, tier), optionally filtered by env and/or team.

    Args:
        env: prod, staging or dev; every env when omitted.
        team: a team name; every team when omitted.
    """
    return [{k: s[k] for k in ("id", "team", "env", "tier")} for s in state["services"]
            if (env is None or s["env"] == env) and (team is None or s["team"] == team)]


@tool()
def get_config(state: State, service_id: str) -> dict[str, Any]:
    """A service's effective config (overrides applied on top of its base config).

    Args:
        service_id: the service's id, e.g. "svc-auth".
    """
    return _effective(_service(state, service_id))


@tool()
def get_layers(state: State, service_id: str) -> dict[str, Any]:
    """A service's base config and its overrides, separately.

    Args:
        service_id: the service's id.
    """
    svc = _service(state, service_id)
    return {"base": svc["config"], "overrides": svc["overrides"]}


@tool()
def get_policy(state: State) -> dict[str, Any]:
    """The fleet policy's thresholds: replica minimums and the allowed port range."""
    return state["policy"]


@tool()
def get_port_registry(state: State, service_id: str) -> int:
    """The port assigned to a service in the port registry.

    Args:
        service_id: the service's id.
    """
    _service(state, service_id)
    return state["port_registry"][service_id]


@tool()
def list_waivers(state: State) -> list[dict[str, str]]:
    """Waivers in force: each exempts one service from one rule (tls, debug, replicas…)."""
    return state["waivers"]


@tool()
def validate_service(state: State, service_id: str) -> list[str]:
    """Names of the policy rules a service currently breaks (waivers are NOT applied).

    Args:
        service_id: the service's id.
    """
    svc = _service(state, service_id)
    rules = ["tls", "debug", "replicas", "port", "log_level"]
    return sorted(_fixes(svc, _effective(svc), rules, state))


@tool(writes=True)
def set_config(state: State, service_id: str, key: str, value: str | int | bool) -> str:
    """Set one key of a service's config.

    Args:
        service_id: the service's id.
        key: one of tls, debug (booleans), replicas, port, timeout_ms (integers), log_level
            (debug, info, warn or error).
        value: the new value, with the key's JSON type (true, 3, "warn").
    """
    svc = _service(state, service_id)
    svc["config"][key] = _checked(key, value)
    return f"{service_id}: {key} = {value!r}"


@tool(writes=True)
def set_replicas(state: State, service_id: str, replicas: int) -> str:
    """Set a service's replica count.

    Args:
        service_id: the service's id.
        replicas: the new count, at least 1.
    """
    if replicas < 1:
        raise ToolError("replicas must be at least 1")
    _service(state, service_id)["config"]["replicas"] = replicas
    return f"{service_id}: replicas = {replicas}"


@tool(writes=True)
def set_override(state: State, service_id: str, key: str, value: str | int | bool) -> str:
    """Set an override: it takes precedence over the base config for that key.

    Args:
        service_id: the service's id.
        key: one of tls, debug, replicas, port, timeout_ms, log_level.
        value: the override value, with the key's JSON type.
    """
    svc = _service(state, service_id)
    svc["overrides"][key] = _checked(key, value)
    return f"{service_id}: override {key} = {value!r}"


@tool(writes=True)
def clear_override(state: State, service_id: str, key: str) -> str:
    """Remove an override, so the base config's value applies again.

    Args:
        service_id: the service's id.
        key: a key the service overrides.
    """
    svc = _service(state, service_id)
    if key not in svc["overrides"]:
        raise ToolError(f"{service_id} has no override for {key!r}")
    del svc["overrides"][key]
    return f"{service_id}: override {key} removed"


# ---- the family -------------------------------------------------------------------------

_ALL_RULES = ("tls", "debug", "replicas", "port", "log_level")


@register_family
class ConfigManagement(Family[ConfigMgmtConfig]):
    name = "config_management"
    summary = "Fleet config: find services that break policy rules and apply each rule's fix."
    config_model = ConfigMgmtConfig
    tools = (list_services, get_config, get_layers, get_policy, get_port_registry,
             list_waivers, validate_service, set_config, set_replicas, set_override,
             clear_override)
    variants = (
        Variant("tls-debug", ("list_services", "get_config", "set_config"), ("tls", "debug")),
        Variant("capacity", ("list_services", "get_config", "get_policy", "set_replicas"),
                ("replicas",)),
        Variant("ports", ("list_services", "get_config", "get_port_registry", "set_config"),
                ("port", "tls")),
        Variant("waivers", ("list_services", "get_config", "get_policy", "list_waivers",
                            "set_config"), ("tls", "debug", "replicas", "log_level", "waivers"),
                {"waivers": True}),
        Variant("audit", ("list_services", "get_config", "get_policy", "validate_service",
                          "get_port_registry", "set_config"), _ALL_RULES, {"services": 22}),
        Variant("layered", ("list_services", "get_config", "get_layers", "get_policy",
                            "set_override", "clear_override"),
                ("tls", "debug", "replicas", "log_level", "layers"), {"layered": True}),
    )

    def generate_state(self, rng: random.Random, config: ConfigMgmtConfig) -> State:
        policy = {"min_replicas_prod": config.min_replicas_prod,
                  "min_replicas_staging": config.min_replicas_staging,
                  "min_replicas_critical": config.min_replicas_critical,
                  "port_low": config.port_low, "port_high": max(config.port_high,
                                                                config.port_low + 100)}
        ports = rng.sample(range(policy["port_low"], policy["port_high"] + 1), config.services)
        services: list[dict[str, Any]] = []
        registry: dict[str, int] = {}
        for name, port in zip(rng.sample(_NAMES, config.services), ports, strict=True):
            sid = f"svc-{name}"
            registry[sid] = port
            svc = {"id": sid, "team": rng.choice(_TEAMS), "env": rng.choice(_ENVS),
                   "tier": rng.choice(("critical", "standard", "standard")),
                   "config": self._config(rng, port), "overrides": {}}
            if config.layered:
                svc["overrides"] = {k: v for k, v in self._config(rng, port).items()
                                    if k != "port" and rng.random() < 0.2}
            services.append(svc)
        services.sort(key=lambda s: s["id"])
        waivers = []
        if config.waivers:
            for svc in rng.sample(services, max(2, config.services // 5)):
                waivers.append({"service": svc["id"], "rule": rng.choice(_ALL_RULES[:3])})
        return {"services": services, "policy": policy, "port_registry": registry,
                "waivers": sorted(waivers, key=lambda w: (w["service"], w["rule"]))}

    @staticmethod
    def _config(rng: random.Random, port: int) -> dict[str, Any]:
        return {
            "tls": rng.random() < 0.7,
            "debug": rng.random() < 0.3,
            "replicas": rng.randint(1, 6),
            "port": port if rng.random() < 0.8 else rng.choice(_OFF_RANGE_PORTS),
            "log_level": rng.choice(_LEVELS),
            "timeout_ms": rng.choice((5000, 10_000, 30_000, 60_000)),
        }

    def generate_task(self, rng: random.Random, state: State, config: ConfigMgmtConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        pool = [r for r in variant.constraints if r in _ALL_RULES]
        count = min(len(pool), (1, 2, 4)[level])
        for _ in range(8):
            rules = sorted(rng.sample(pool, count), key=_ALL_RULES.index)
            every = _due({**state, "waivers": []}, rules, {})
            if not every:
                continue
            scope = self._scope(rng, state, sorted(every), level)
            due = _due(state, rules, scope)
            # Look-alikes: values that would need a fix if the service were in prod, in
            # scope and unwaived. A careful agent leaves every one of them alone.
            as_prod = [{**x, "env": "prod"} for x in state["services"]]
            tempting = _due({**state, "services": as_prod, "waivers": []}, rules, {})
            distractors = sum(map(len, tempting.values())) - sum(map(len, due.values()))
            if due and (distractors or level == 0):
                return self._draft(state, variant, level, rules, scope, due, distractors)
        return None

    @staticmethod
    def _scope(rng: random.Random, state: State, broken: list[str],
               level: int) -> dict[str, str]:
        if level == 0:
            return rng.choice(({}, {"env": "prod"}))
        # Scope around a service that breaks a rule, so the task has work to do.
        sid = rng.choice(broken)
        svc = next(s for s in state["services"] if s["id"] == sid)
        options = [{"env": svc["env"]}, {"team": svc["team"]}]
        if level == 2:
            options.append({"env": svc["env"], "team": svc["team"]})
        return rng.choice(options)

    def _draft(self, state: State, variant: Variant, level: int, rules: list[str],
               scope: dict[str, str], due: dict[str, dict[str, Any]],
               distractors: int) -> TaskDraft:
        where = " and ".join(f"{k} {v}" for k, v in scope.items()) or "the whole fleet"
        lines = [self._rule_text(r, state["policy"], variant) for r in rules]
        text = (f"Bring {'services with ' if scope else ''}{where} into line with these policy "
                "rules, applying exactly the fix each rule prescribes and changing nothing "
                "else:\n" + "\n".join(f"- {line}" for line in lines))
        if "waivers" in variant.constraints:
            text += ("\nA service holding a waiver for a rule (see list_waivers) is exempt "
                     "from that rule only.")
        if "layers" in variant.constraints:
            text += ("\nMake every fix through overrides: if the bad value comes from an "
                     "override and the base value already satisfies the rule, remove that "
                     "override; otherwise set an override to the prescribed value.")
        return TaskDraft(
            instruction=text + "\nThen submit.",
            goal={"rules": rules, "scope": scope, "fixes": due},
            knobs={"steps": sum(len(f) for f in due.values()), "constraints": len(rules),
                   "distractors": distractors},
            hash_tables=("services",),
        )

    @staticmethod
    def _rule_text(rule: str, policy: Mapping[str, Any], variant: Variant) -> str:
        if rule == "replicas":
            if "get_policy" in variant.tools:
                mins = ("prod: min_replicas_prod, staging: min_replicas_staging, critical tier "
                        "in any env: min_replicas_critical, all from the fleet policy "
                        "(get_policy)")
            else:
                mins = (f"prod: {policy['min_replicas_prod']}, staging: "
                        f"{policy['min_replicas_staging']}, critical tier in any env: "
                        f"{policy['min_replicas_critical']}")
            return ("replicas: a service needs at least the largest replica minimum that "
                    f"applies to it ({mins}; 1 when none applies). Fix: raise replicas to "
                    "exactly that minimum.")
        return {
            "tls": "tls: every prod service has tls = true. Fix: set tls to true.",
            "debug": "debug: no prod service has debug = true. Fix: set debug to false.",
            "port": (f"port: every service listens on a port in {policy['port_low']}.."
                     f"{policy['port_high']}. Fix: set the port to the service's assigned port "
                     "in the port registry."),
            "log_level": ("log_level: prod services log at warn or error. Fix: set log_level "
                          "to warn."),
        }[rule]

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        calls = [Call("get_policy"), Call("list_waivers"), Call("list_services", g["scope"])]
        for svc in state["services"]:
            if _in_scope(svc, g["scope"]):
                calls += [Call("get_config", {"service_id": svc["id"]}),
                          Call("get_layers", {"service_id": svc["id"]})]
        calls = [c for c in calls if c.name in variant.tools]
        return [*calls, *self._fix_calls(state, g, variant), Call("submit")]

    @staticmethod
    def _fix_calls(state: State, goal: Mapping[str, Any], variant: Variant) -> list[Call]:
        services = {s["id"]: s for s in state["services"]}
        calls = []
        for sid, fixes in sorted(goal["fixes"].items()):
            svc = services[sid]
            for key, value in sorted(fixes.items()):
                args = {"service_id": sid, "key": key, "value": value}
                if "set_replicas" in variant.tools:
                    calls.append(Call("set_replicas", {"service_id": sid, "replicas": value}))
                elif "set_override" not in variant.tools:
                    calls.append(Call("set_config", args))
                elif key in svc["overrides"] and key not in _fixes(
                        svc, svc["config"], goal["rules"], state):
                    calls.append(Call("clear_override", {"service_id": sid, "key": key}))
                else:
                    calls.append(Call("set_override", args))
        return calls

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        match = check_state_hash(final_state, goal)
        left = _due(final_state, goal["rules"], goal["scope"])
        ok = match.reward == 1.0 and not left
        reason = match.reason if match.reward < 1.0 else (
            f"rules still broken on {', '.join(sorted(left))}" if left else "fleet compliant")
        return Verdict(reward=float(ok), reason=reason,
                       components={**match.components, "rules_hold": float(not left)})

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        fixes = [c for c in reference if c.name in
                 ("set_config", "set_replicas", "set_override", "clear_override")]
        head = [c for c in reference[:-1] if c not in fixes]
        # Leaving one violation unfixed breaks a rule the task named.
        broken = [*head, *fixes[:-1], Call("submit")]
        return {"constraint_broken": broken,
                "wrong_value": [*head, *fixes[:-1], self._wrong(state, fixes[-1]),
                                Call("submit")]}

    @staticmethod
    def _wrong(state: State, call: Call) -> Call:
        """The last fix done wrong: a wrong value, an override kept, or the wrong service."""
        args = dict(call.arguments)
        if call.name == "clear_override":
            # Pinning the base value in an override looks the same but is not the fix.
            svc = next(s for s in state["services"] if s["id"] == args["service_id"])
            return Call("set_override", {**args, "value": svc["config"][args["key"]]})
        value = args.get("value", args.get("replicas"))
        if isinstance(value, int) and not isinstance(value, bool):
            args["replicas" if "replicas" in args else "value"] = value + 1
        elif value == "warn":
            args["value"] = "info"
        else:
            # A boolean has no near value: the right change on a neighbouring service.
            args["service_id"] = next(s["id"] for s in state["services"]
                                      if s["id"] != args["service_id"])
        return Call(call.name, args)
