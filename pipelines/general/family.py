"""What an environment family is, and the registry that holds them (STYLE.md §3).

A family is one file in `pipelines/general/families/`: a config model, a pure seeded state
generator, typed tools, a task generator with difficulty knobs, a small pure verifier, a
reference solver, perturbed solutions that must fail, and its registration. Variants pick
a tool subset, config overrides (schema options) and constraint types, so families ×
variants × seeds give the distinct environments of the general dataset.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from typing import Any, ClassVar, Generic, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from envsynth.errors import ConfigError, UnknownIdError
from envsynth.ids import canonical_json, content_hash
from envsynth.registry import Registry
from envsynth.schema import ToolSpec, Verdict
from pipelines.general.tools import State, Tool, submit_tool


class FamilyConfig(BaseModel):
    """Base of every family's config: frozen, strict, no unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(BaseModel):
    """Base of a family's answer model (the arguments of its `submit` tool).

    Field docstrings become the descriptions the agent sees in the `submit` schema.
    """

    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


@dataclass(frozen=True)
class Call:
    """One tool call of a scripted solution: a name and its (already JSON-able) arguments."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """One environment variant of a family.

    Attributes:
        name: short id, unique within the family.
        tools: names of the family tools this variant exposes (`submit` is always added).
        constraints: constraint types the task generator may use in this variant.
        overrides: config fields overridden for this variant (schema options, sizes).
    """

    name: str
    tools: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskDraft:
    """What a family's task generator returns.

    Attributes:
        instruction: the user's request, all the agent is told about the goal.
        goal: what the verifier reads (expected answer, constraints…); JSON-able.
        knobs: difficulty knobs used (steps, constraints, distractors…).
        hash_tables: when set, the task is graded by the hash of these state tables after
            the reference solution is replayed; the pipeline stores it in `goal["state_hash"]`.
    """

    instruction: str
    goal: Mapping[str, Any]
    knobs: Mapping[str, int] = field(default_factory=dict)
    hash_tables: tuple[str, ...] | None = None


def state_digest(state: State, tables: tuple[str, ...] | list[str]) -> str:
    """Hash of the named tables of a state (the grading of database-style families)."""
    return content_hash({t: state.get(t) for t in tables})


def check_state_hash(final_state: State, goal: Mapping[str, Any]) -> Verdict:
    """Pass iff the final state's graded tables hash to the replayed reference's hash."""
    ok = state_digest(final_state, goal["hash_tables"]) == goal["state_hash"]
    return Verdict(
        reward=1.0 if ok else 0.0,
        components={"state_match": float(ok)},
        reason="final state matches the reference"
        if ok
        else "final state differs from the reference",
    )


def copy_state(state: State) -> State:
    """A deep copy of a JSON state (faster than copy.deepcopy for plain JSON)."""
    return orjson.loads(canonical_json(state))


ConfigT = TypeVar("ConfigT", bound=FamilyConfig)


class Family(Generic[ConfigT]):
    """Base class of an environment family, generic in its config model.

    Subclasses (`class Retail(Family[RetailConfig])`) set the class attributes and methods.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    summary: ClassVar[str]
    config_model: ClassVar[type[Any]]
    """The `ConfigT` class (ClassVar cannot name a type variable)."""
    answer_model: ClassVar[type[Answer] | None] = None
    tools: ClassVar[tuple[Tool, ...]]
    variants: ClassVar[tuple[Variant, ...]]
    levels: ClassVar[int] = 3
    """Number of difficulty levels; the pipeline makes one task per level per environment."""
    license: ClassVar[str] = "Apache-2.0"

    # --- to implement -------------------------------------------------------------------
    def generate_state(self, rng: random.Random, config: ConfigT) -> State:
        """A fresh state drawn from `rng` only (same seed, same state)."""
        raise NotImplementedError

    def generate_task(
        self, rng: random.Random, state: State, config: ConfigT, variant: Variant, level: int
    ) -> TaskDraft | None:
        """A task on `state` at difficulty `level` (0 = easiest); None if none fits."""
        raise NotImplementedError

    def solve(self, state: State, draft: TaskDraft, variant: Variant) -> list[Call]:
        """The reference solution: tool calls ending with `submit`, using only `variant`'s tools."""
        raise NotImplementedError

    def verify(
        self, final_state: State, answer: Mapping[str, Any] | None, goal: Mapping[str, Any]
    ) -> Verdict:
        """A small pure function of the final state and the submitted answer."""
        raise NotImplementedError

    def perturb(
        self,
        rng: random.Random,
        state: State,
        draft: TaskDraft,
        reference: list[Call],
        variant: Variant,
    ) -> dict[str, list[Call]]:
        """Near-miss solutions that must fail. At least `constraint_broken` and `wrong_value`."""
        raise NotImplementedError

    # --- provided -----------------------------------------------------------------------
    submit_description: ClassVar[str] = "Submit your final answer and end the task."

    @cached_property
    def tool_index(self) -> dict[str, Tool]:
        index = {t.name: t for t in self.tools}
        index["submit"] = submit_tool(self.answer_model, self.submit_description)
        return index

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise UnknownIdError(f"variant of {self.name}", name, [v.name for v in self.variants])

    def toolset(self, variant: Variant) -> dict[str, Tool]:
        """The tools an agent gets in `variant`, `submit` last."""
        return {n: self.tool_index[n] for n in (*variant.tools, "submit")}

    def tool_specs(self, variant: Variant) -> list[ToolSpec]:
        return [t.spec for t in self.toolset(variant).values()]

    def config_for(self, variant: Variant, overrides: Mapping[str, Any] | None = None) -> ConfigT:
        """The variant's config, with user overrides on top; a bad value raises `ConfigError`."""
        values = {**variant.overrides, **(overrides or {})}
        try:
            config: ConfigT = self.config_model(**values)
        except ValidationError as e:
            raise ConfigError(
                f"invalid config for family {self.name}/{variant.name}: {e}"
            ) from None
        return config

    def check_definition(self) -> None:
        """Raise `ConfigError` if the family's declarations are inconsistent."""
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"family {self.name}: duplicate variant names")
        for v in self.variants:
            unknown = set(v.tools) - set(self.tool_index)
            if unknown:
                raise ConfigError(f"family {self.name}/{v.name}: unknown tools {sorted(unknown)}")


FAMILIES: Registry[Family] = Registry("environment family")
_loaded = False


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator: check the family and add an instance of it to `FAMILIES`."""
    family = cls()
    family.check_definition()
    FAMILIES.register(cls.name)(family)
    return cls


def load_families() -> Registry[Family]:
    """Import every module of `pipelines.general.families` and third-party plug-ins.

    Plug-ins declare an entry point in the group `envsynth.families` pointing at a module.
    """
    global _loaded
    if not _loaded:
        from pipelines.general import families

        for mod in pkgutil.iter_modules(families.__path__):
            importlib.import_module(f"{families.__name__}.{mod.name}")
        for ep in entry_points(group="envsynth.families"):
            ep.load()
        _loaded = True
    return FAMILIES
