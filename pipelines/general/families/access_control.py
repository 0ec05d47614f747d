"""Identity and access management: grant a user the least privilege that does the job.

Users hold direct roles and belong to groups (a group bundles roles); a role is a list of
`action:pattern` allow entries and, in some variants, deny entries that override every
allow. The agent changes one user's direct roles (or, in group variants, group
memberships) so that the user can perform the listed actions, can NOT perform the listed
forbidden ones, and holds as few roles (groups) as possible.

Validity-graded: the verifier evaluates the user's effective permissions in the final
state exactly, compares the number of grants with the optimum found by brute force at
generation time, and checks that no other user was touched.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import Field

from envsynth.errors import ToolError
from envsynth.ids import content_hash
from envsynth.schema import Verdict
from pipelines.general.family import (
    Call,
    Family,
    FamilyConfig,
    TaskDraft,
    Variant,
    register_family,
)
from pipelines.general.names import FIRST_NAMES, LAST_NAMES
from pipelines.general.tools import State, find_record, tool

_PROJECTS = {
    "fin": ["ledger", "payroll", "budget"],
    "eng": ["repo", "ci", "prod-db"],
    "hr": ["records", "reviews"],
    "ops": ["logs", "alerts"],
    "mkt": ["site", "crm"],
}
_RESOURCES = [f"{p}/{r}" for p, rs in _PROJECTS.items() for r in rs]
_ACTIONS = ("read", "write", "delete")
_ITEMS = [(a, r) for r in _RESOURCES for a in _ACTIONS]
_FIRST = list(FIRST_NAMES[:12])
_LAST = list(LAST_NAMES[:10])
_ROLE_WORDS = {"read": "viewer", "write": "editor", "delete": "cleaner"}

SEMANTICS = (
    "A user's effective roles are their direct roles plus the roles of every group they "
    "belong to. A role entry \"action:pattern\" covers that action on the resource named by "
    "the pattern; a pattern ending in \"/*\" covers every resource under that prefix and "
    "\"*\" covers all resources. An action is allowed when some effective role allows it"
)
DENY_SEMANTICS = " and no effective role denies it (a deny entry overrides every allow)"


class AccessConfig(FamilyConfig):
    users: int = Field(8, ge=4, le=30)
    roles: int = Field(10, ge=5, le=14)
    groups: int = Field(5, ge=2, le=8)
    deny_rules: bool = False
    """Whether roles may carry deny entries, which override allows."""
    unit: Literal["roles", "groups"] = "roles"
    """What the agent changes: the user's direct roles, or their group memberships."""


# ---- permission semantics (shared by tools, generator and verifier) ---------------------


def _matches(pattern: str, resource: str) -> bool:
    if pattern == "*" or pattern == resource:
        return True
    return pattern.endswith("/*") and resource.startswith(pattern[:-1])


def _hits(entries: Iterable[str], action: str, resource: str) -> list[str]:
    out = []
    for e in entries:
        act, _, pattern = e.partition(":")
        if act == action and _matches(pattern, resource):
            out.append(e)
    return out


def _effective_roles(state: State, user: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups = {g["id"]: g for g in state["groups"]}
    ids = set(user["roles"])
    for gid in user["groups"]:
        ids.update(groups[gid]["roles"])
    return [r for r in state["roles"] if r["id"] in ids]


def _allowed(roles: list[dict[str, Any]], action: str, resource: str) -> bool:
    allow = any(_hits(r["allow"], action, resource) for r in roles)
    return allow and not any(_hits(r["deny"], action, resource) for r in roles)


# ---- tools ------------------------------------------------------------------------------


def _user(state: State, user_id: str) -> dict[str, Any]:
    return find_record(
        state["users"], user_id, f"no user {user_id!r}; find users with find_user or list_users"
    )


def _by_id(state: State, table: str, key: str) -> dict[str, Any]:
    return find_record(state[table], key, f"no {table[:-1]} {key!r}; list_{table} shows the ids")


@tool()
def find_user(state: State, email: str) -> dict[str, Any]:
    """Look up a user by email: id, name, direct roles and groups.

    Args:
        email: the user's email address, exactly as given.
    """
    return find_record(state["users"], email, f"no user with email {email!r}", key="email")


@tool()
def list_users(state: State) -> list[dict[str, str]]:
    """List every user's id, name and email."""
    return [{k: u[k] for k in ("id", "name", "email")} for u in state["users"]]


@tool()
def get_user(state: State, user_id: str) -> dict[str, Any]:
    """A user's direct roles and group memberships.

    Args:
        user_id: the user's id, e.g. "u3".
    """
    return _user(state, user_id)


@tool()
def list_roles(state: State) -> list[dict[str, str]]:
    """List every role's id and name (use get_role for its permission entries)."""
    return [{"id": r["id"], "name": r["name"]} for r in state["roles"]]


@tool()
def get_role(state: State, role_id: str) -> dict[str, Any]:
    """A role's permission entries: `allow` and `deny` lists of "action:pattern" strings.

    A pattern is a resource path ("fin/ledger"), a prefix ending in "/*" ("fin/*") that
    covers every resource under it, or "*" for all resources. Deny entries override allows.

    Args:
        role_id: the role's id, e.g. "r4".
    """
    return _by_id(state, "roles", role_id)


@tool()
def list_groups(state: State) -> list[dict[str, str]]:
    """List every group's id and name (use get_group for the roles it grants)."""
    return [{"id": g["id"], "name": g["name"]} for g in state["groups"]]


@tool()
def get_group(state: State, group_id: str) -> dict[str, Any]:
    """A group's roles: every member holds them.

    Args:
        group_id: the group's id, e.g. "g2".
    """
    return _by_id(state, "groups", group_id)


@tool()
def list_resources(state: State) -> list[str]:
    """List every resource path."""
    return list(_RESOURCES)


@tool()
def check_access(state: State, user_id: str, action: str, resource: str) -> dict[str, Any]:
    """Evaluate whether a user may currently perform an action on a resource, and why.

    Args:
        user_id: the user's id.
        action: one of read, write, delete.
        resource: a resource path such as "eng/repo".
    """
    if action not in _ACTIONS:
        raise ToolError(f"unknown action {action!r}; actions are {', '.join(_ACTIONS)}")
    if resource not in _RESOURCES:
        raise ToolError(f"unknown resource {resource!r}; list_resources shows them")
    roles = _effective_roles(state, _user(state, user_id))
    return {
        "allowed": _allowed(roles, action, resource),
        "allowed_by": [r["id"] for r in roles if _hits(r["allow"], action, resource)],
        "denied_by": [r["id"] for r in roles if _hits(r["deny"], action, resource)],
    }


def _change(state: State, user_id: str, field: str, key: str, add: bool) -> str:
    user = _user(state, user_id)
    _by_id(state, field, key)
    held = key in user[field]
    if add and held:
        raise ToolError(f"user {user_id} already has {field[:-1]} {key}")
    if not add and not held:
        raise ToolError(f"user {user_id} has no {field[:-1]} {key}")
    user[field] = sorted({*user[field], key}) if add else [k for k in user[field] if k != key]
    return f"{'added' if add else 'removed'} {field[:-1]} {key} {'to' if add else 'from'} {user_id}"


@tool(writes=True)
def grant_role(state: State, user_id: str, role_id: str) -> str:
    """Give a user a direct role.

    Args:
        user_id: the user's id.
        role_id: the role to grant.
    """
    return _change(state, user_id, "roles", role_id, add=True)


@tool(writes=True)
def revoke_role(state: State, user_id: str, role_id: str) -> str:
    """Take a direct role away from a user (roles held through groups are not affected).

    Args:
        user_id: the user's id.
        role_id: a direct role the user holds.
    """
    return _change(state, user_id, "roles", role_id, add=False)


@tool(writes=True)
def add_to_group(state: State, user_id: str, group_id: str) -> str:
    """Make a user a member of a group.

    Args:
        user_id: the user's id.
        group_id: the group to join.
    """
    return _change(state, user_id, "groups", group_id, add=True)


@tool(writes=True)
def remove_from_group(state: State, user_id: str, group_id: str) -> str:
    """Remove a user from a group.

    Args:
        user_id: the user's id.
        group_id: a group the user belongs to.
    """
    return _change(state, user_id, "groups", group_id, add=False)


# ---- generation helpers -----------------------------------------------------------------


@functools.cache
def _entry_mask(entry: str) -> int:
    # Only 54 distinct entries exist, so the bitmask of each is computed once per process.
    return sum(1 << i for i, (action, resource) in enumerate(_ITEMS)
               if _hits((entry,), action, resource))


def _masks(entries: list[str]) -> int:
    mask = 0
    for e in entries:
        mask |= _entry_mask(e)
    return mask


class _Lattice:
    """Allow/deny bitmasks over every (action, resource) item, per grantable unit."""

    def __init__(self, state: State, user: Mapping[str, Any], unit: str):
        role_masks = {r["id"]: (_masks(r["allow"]), _masks(r["deny"])) for r in state["roles"]}
        group_roles = {g["id"]: g["roles"] for g in state["groups"]}

        def union(role_ids: Iterable[str]) -> tuple[int, int]:
            a = d = 0
            for rid in role_ids:
                a, d = a | role_masks[rid][0], d | role_masks[rid][1]
            return a, d

        if unit == "roles":
            self.units = {rid: role_masks[rid] for rid in role_masks}
            self.fixed = union(r for g in user["groups"] for r in group_roles[g])
        else:
            self.units = {gid: union(rs) for gid, rs in group_roles.items()}
            self.fixed = union(user["roles"])

    def allowed(self, selection: Iterable[str]) -> int:
        a, d = self.fixed
        for key in selection:
            a, d = a | self.units[key][0], d | self.units[key][1]
        return a & ~d

    def valid(self, selection: Iterable[str], required: int, forbidden: int) -> bool:
        got = self.allowed(selection)
        return got & required == required and not got & forbidden

    def minimum(self, required: int, forbidden: int, bound: int) -> list[str] | None:
        """Smallest selection meeting the request (exhaustive by size), None if > bound."""
        keys = sorted(self.units)
        for size in range(bound + 1):
            for combo in itertools.combinations(keys, size):
                if self.valid(combo, required, forbidden):
                    return list(combo)
        return None


def _bits(mask: int) -> list[int]:
    return [i for i in range(len(_ITEMS)) if mask >> i & 1]


def _phrase(items: list[list[str]]) -> str:
    return ", ".join(f"{a} {r}" for a, r in items)


# ---- the family -------------------------------------------------------------------------

_ROLE_TOOLS = ("list_roles", "get_role", "grant_role", "revoke_role")
_GROUP_TOOLS = ("list_groups", "get_group", "get_role", "add_to_group", "remove_from_group")


@register_family
class AccessControl(Family[AccessConfig]):
    name = "access_control"
    summary = "IAM least privilege: grant the fewest roles or groups that allow what is asked."
    config_model = AccessConfig
    tools = (find_user, list_users, get_user, list_roles, get_role, list_groups, get_group,
             list_resources, check_access, grant_role, revoke_role, add_to_group,
             remove_from_group)
    variants = (
        Variant("roles-basic", ("find_user", *_ROLE_TOOLS), ("required", "minimal")),
        Variant("least-privilege", ("find_user", "get_group", *_ROLE_TOOLS),
                ("required", "forbidden", "minimal")),
        Variant("groups", ("find_user", *_GROUP_TOOLS), ("required", "forbidden", "minimal"),
                {"unit": "groups", "groups": 7}),
        Variant("explicit-deny", ("find_user", "get_group", "check_access", *_ROLE_TOOLS),
                ("required", "forbidden", "minimal", "deny"), {"deny_rules": True}),
        Variant("big-org", ("list_users", "get_user", "get_group", "list_resources",
                            *_ROLE_TOOLS), ("required", "forbidden", "minimal"),
                {"users": 20, "roles": 14}),
        Variant("groups-deny", ("find_user", "check_access", *_GROUP_TOOLS),
                ("required", "forbidden", "minimal", "deny"),
                {"unit": "groups", "groups": 7, "deny_rules": True}),
    )

    def generate_state(self, rng: random.Random, config: AccessConfig) -> State:
        roles = [self._role(rng, i, config.deny_rules) for i in range(config.roles)]
        groups = [
            {"id": f"g{i}", "name": f"{p}-team-{i}",
             "roles": sorted(r["id"] for r in rng.sample(roles, rng.randint(1, 2)))}
            for i, p in enumerate(rng.choices(list(_PROJECTS), k=config.groups))
        ]
        names = rng.sample([(f, la) for f in _FIRST for la in _LAST], config.users)
        users = [
            {"id": f"u{i}", "name": f"{f} {la}", "email": f"{f.lower()}.{la.lower()}{i}@corp.test",
             "groups": sorted(g["id"] for g in rng.sample(groups, rng.randint(0, 2))),
             "roles": sorted(r["id"] for r in rng.sample(roles, rng.randint(0, 2)))}
            for i, (f, la) in enumerate(names)
        ]
        return {"users": users, "roles": roles, "groups": groups}

    @staticmethod
    def _role(rng: random.Random, i: int, deny_rules: bool) -> dict[str, Any]:
        allow = []
        for _ in range(rng.randint(1, 3)):
            action = rng.choices(_ACTIONS, weights=(5, 3, 2))[0]
            resource = rng.choice(_RESOURCES)
            x = rng.random()
            pattern = resource if x < 0.6 else resource.split("/")[0] + "/*" if x < 0.95 else "*"
            allow.append(f"{action}:{pattern}")
        deny = []
        if deny_rules and rng.random() < 0.4:
            # A deny carved out of the role's own broad allow: the classic IAM trap.
            action, _, pattern = allow[0].partition(":")
            inside = [r for r in _RESOURCES if _matches(pattern, r)]
            deny.append(f"{rng.choice(_ACTIONS)}:{rng.choice(inside)}")
        first_action, _, first_pattern = allow[0].partition(":")
        scope = first_pattern.split("/")[0].replace("*", "all")
        return {"id": f"r{i}", "name": f"{scope}-{_ROLE_WORDS[first_action]}-{i}",
                "allow": sorted(set(allow)), "deny": deny}

    def generate_task(self, rng: random.Random, state: State, config: AccessConfig,
                      variant: Variant, level: int) -> TaskDraft | None:
        users = list(state["users"])
        rng.shuffle(users)
        for user in users[:8]:
            draft = self._task_for(rng, state, config, variant, level, user)
            if draft is not None:
                return draft
        return None

    def _task_for(self, rng: random.Random, state: State, config: AccessConfig,
                  variant: Variant, level: int, user: dict[str, Any]) -> TaskDraft | None:
        unit = config.unit
        lat = _Lattice(state, user, unit)
        k = (1, 2, rng.choice((2, 3)))[level]
        planted = rng.sample(sorted(lat.units), k)
        gain = lat.allowed(planted) & ~lat.allowed(())
        if not gain:
            return None
        # One item that only each planted unit gives, so every planted unit matters.
        required = 0
        for p in planted:
            own = _bits(lat.allowed(planted) & ~lat.allowed(q for q in planted if q != p))
            if own:
                required |= 1 << rng.choice(own)
        extra = _bits(gain & ~required)
        rng.shuffle(extra)
        want = (rng.randint(1, 2), rng.randint(2, 3), rng.randint(3, 4))[level]
        for b in extra[: max(0, want - bin(required).count("1"))]:
            required |= 1 << b
        forbidden = self._forbidden(rng, lat, user[unit], planted, variant, level)
        best = lat.minimum(required, forbidden, k)
        current = user[unit]
        if best is None or lat.valid(current, required, forbidden) and len(current) == len(best):
            return None
        return self._draft(state, user, unit, config, variant, level, required, forbidden, best)

    @staticmethod
    def _forbidden(rng: random.Random, lat: _Lattice, current: list[str], planted: list[str],
                   variant: Variant, level: int) -> int:
        if "forbidden" not in variant.constraints or level == 0:
            return 0
        ok = lat.allowed(planted)
        tempting = 0
        for key in lat.units:
            tempting |= lat.allowed([*planted, key]) & ~ok
        held = _bits(lat.allowed(current) & tempting & ~ok)
        others = [b for b in _bits(tempting) if b not in held]
        rng.shuffle(others)
        # At level 2 an item the user already has must go: the agent has to revoke.
        picks = (held[:1] if level == 2 else []) + others
        forbidden = 0
        for b in picks[:level]:
            forbidden |= 1 << b
        return forbidden

    def _draft(self, state: State, user: dict[str, Any], unit: str, config: AccessConfig,
               variant: Variant, level: int, required: int, forbidden: int,
               best: list[str]) -> TaskDraft:
        req = [list(_ITEMS[b]) for b in _bits(required)]
        forb = [list(_ITEMS[b]) for b in _bits(forbidden)]
        other = "groups" if unit == "roles" else "roles"
        who = (f"{user['name']} ({user['email']})" if "find_user" in variant.tools
               else f"{user['name']}")
        change = ("direct roles" if unit == "roles" else "group memberships")
        keep = ("keep their group memberships as they are" if unit == "roles"
                else "keep their direct roles as they are")
        rules = SEMANTICS + (DENY_SEMANTICS if config.deny_rules else "") + "."
        text = (f"Access request for {who}. {rules} Change only {user['name']}'s {change} "
                f"({keep}) so that they can {_phrase(req)}")
        if forb:
            text += f"; they must NOT be able to {_phrase(forb)}"
        text += (f"; and they hold as few {unit} as possible in total. Do not change any other "
                 "user. Then submit.")
        others = [u for u in state["users"] if u["id"] != user["id"]]
        return TaskDraft(
            instruction=text,
            goal={"user": user["id"], "unit": unit, "required": req, "forbidden": forb,
                  "min_count": len(best), "fixed": user[other], "solution": best,
                  "others": content_hash(others)},
            knobs={"steps": len(set(best) ^ set(user[unit])), "constraints": len(req) + len(forb),
                   "distractors": len(state[unit]) - len(best)},
        )

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        g = draft.goal
        user = next(u for u in state["users"] if u["id"] == g["user"])
        reads = [Call("find_user", {"email": user["email"]}), Call("list_users"),
                 Call("get_user", {"user_id": user["id"]}), Call(f"list_{g['unit']}")]
        reads += [Call("get_group", {"group_id": x["id"]}) for x in state["groups"]]
        reads += [Call("get_role", {"role_id": r["id"]}) for r in state["roles"]]
        calls = [c for c in reads if c.name in variant.tools]
        calls += self._moves(user["id"], g["unit"], user[g["unit"]], g["solution"])
        return [*calls, Call("submit")]

    @staticmethod
    def _moves(user_id: str, unit: str, current: list[str], target: list[str]) -> list[Call]:
        add, drop = ("grant_role", "revoke_role") if unit == "roles" else (
            "add_to_group", "remove_from_group")
        key = "role_id" if unit == "roles" else "group_id"
        return ([Call(drop, {"user_id": user_id, key: k}) for k in current if k not in target]
                + [Call(add, {"user_id": user_id, key: k}) for k in target if k not in current])

    def verify(self, final_state: State, answer: Mapping[str, Any] | None,
               goal: Mapping[str, Any]) -> Verdict:
        user = next(u for u in final_state["users"] if u["id"] == goal["user"])
        other = "groups" if goal["unit"] == "roles" else "roles"
        roles = _effective_roles(final_state, user)
        parts = {
            "required": all(_allowed(roles, a, r) for a, r in goal["required"]),
            "forbidden": not any(_allowed(roles, a, r) for a, r in goal["forbidden"]),
            "minimal": len(user[goal["unit"]]) <= goal["min_count"],
            "scope": user[other] == goal["fixed"] and content_hash(
                [u for u in final_state["users"] if u["id"] != goal["user"]]) == goal["others"],
        }
        failed = [k for k, ok in parts.items() if not ok]
        return Verdict(
            reward=0.0 if failed else 1.0,
            components={k: float(ok) for k, ok in parts.items()},
            reason="least-privilege request met" if not failed
            else f"failed checks: {', '.join(failed)}",
        )

    def perturb(self, rng: random.Random, state: State, draft: TaskDraft,
                reference: list[Call], variant: Variant) -> dict[str, list[Call]]:
        g = draft.goal
        unit, user_id = g["unit"], g["user"]
        user = next(u for u in state["users"] if u["id"] == user_id)
        head, moves = self._split(reference)
        # One unit too many: it either opens a forbidden item or breaks minimality.
        spare = [k for k in (x["id"] for x in state[unit]) if k not in g["solution"]]
        lat = _Lattice(state, user, unit)
        forb = sum(1 << _ITEMS.index((a, r)) for a, r in g["forbidden"])
        spare.sort(key=lambda k: not lat.allowed([*g["solution"], k]) & forb)
        extra = self._moves(user_id, unit, g["solution"], [*g["solution"], spare[0]])
        # The same changes made on a look-alike account: the wrong record.
        twins = [u for u in state["users"] if u["id"] != user_id]
        twins.sort(key=lambda u: u["name"].split()[0] != user["name"].split()[0])
        twin = twins[0]
        wrong = self._moves(twin["id"], unit, twin[unit], sorted({*twin[unit], *g["solution"]}))
        return {"constraint_broken": [*head, *moves, *extra, Call("submit")],
                "wrong_value": [*head, *wrong, Call("submit")]}

    @staticmethod
    def _split(reference: list[Call]) -> tuple[list[Call], list[Call]]:
        writes = {"grant_role", "revoke_role", "add_to_group", "remove_from_group"}
        body = reference[:-1]
        return ([c for c in body if c.name not in writes], [c for c in body if c.name in writes])
