"""Policies that need no model: `reference`, `noop` and `random`."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import orjson

from envsynth.errors import PolicyError
from envsynth.ids import content_hash
from envsynth.policy.base import PolicyOutput, PolicyRequest, register_policy
from envsynth.schema import Message, PolicyInfo, ToolCall


def _assistant_turns(messages: Sequence[Message]) -> int:
    return sum(m.role == "assistant" for m in messages)


@register_policy("reference")
class ReferencePolicy:
    """Replays the task's reference solution one tool call per turn (the integrity oracle)."""

    def __init__(self) -> None:
        self.info = PolicyInfo(name="reference")

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        return [self._next(r) for r in requests]

    def _next(self, request: PolicyRequest) -> PolicyOutput:
        if request.task is None:
            raise PolicyError("the reference policy needs the task of each request")
        reference = getattr(request.task.payload, "reference", None)
        if reference is None:
            raise PolicyError(f"tasks of kind {request.task.kind} carry no reference trajectory")
        turn = _assistant_turns(request.messages)
        if turn >= len(reference):
            return PolicyOutput(Message(role="assistant", content="Done."))
        return PolicyOutput(Message(role="assistant", content="", tool_calls=[reference[turn]]))


@register_policy("noop")
class NoopPolicy:
    """Answers at once without touching the environment: the floor every task must fail."""

    def __init__(self) -> None:
        self.info = PolicyInfo(name="noop")

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        return [PolicyOutput(Message(role="assistant", content="Done.")) for _ in requests]


_TOKEN = re.compile(r"[A-Za-z_][\w.@:-]*\d[\w.@:-]*|-?\d+(?:\.\d+)?|[\w.+-]+@[\w.-]+")


@register_policy("random")
class RandomPolicy:
    """Calls random tools with schema-valid arguments drawn from values seen in the episode.

    Seeded by the sampling seed and the history, so a rollout is reproducible. It solves only
    tasks whose answer can be stumbled upon: a lower bound for pass@k audits.

    Args:
        submit_prob: chance per turn of calling `submit` (with random arguments).
        max_turns: after this many assistant turns it always submits.
    """

    def __init__(self, submit_prob: float = 0.25, max_turns: int = 8):
        self.submit_prob, self.max_turns = float(submit_prob), int(max_turns)
        self.info = PolicyInfo(name="random", version=f"p{self.submit_prob}")

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        return [self._next(r) for r in requests]

    def _next(self, request: PolicyRequest) -> PolicyOutput:
        seed = content_hash([request.sampling.seed, [m.content for m in request.messages]])
        rng = random.Random(seed)
        tools = list(request.tools)
        if not tools:
            return PolicyOutput(Message(role="assistant", content="Done."))
        turn = _assistant_turns(request.messages)
        submit = next((t for t in tools if t.name == "submit"), None)
        if submit is not None and (turn >= self.max_turns or rng.random() < self.submit_prob):
            tool = submit
        else:
            tool = rng.choice([t for t in tools if t.name != "submit"] or tools)
        seen = [tok for m in request.messages for tok in _TOKEN.findall(m.content)]
        args = _sample_object(rng, tool.parameters, seen)
        call = ToolCall(id=f"call_{turn}", name=tool.name, arguments=orjson.dumps(args).decode())
        return PolicyOutput(Message(role="assistant", content="", tool_calls=[call]))


def _sample_object(rng: random.Random, schema: dict[str, Any], seen: list[str]) -> dict[str, Any]:
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    return {
        k: _sample(rng, s, seen, schema.get("$defs", {}))
        for k, s in props.items()
        if k in required or rng.random() < 0.5
    }


def _sample(
    rng: random.Random, schema: dict[str, Any], seen: list[str], defs: dict[str, Any]
) -> Any:
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "const" in schema:
        return schema["const"]
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return _sample(rng, rng.choice(options), seen, defs)
    kind = schema.get("type", "string")
    numbers = [float(s) for s in seen if re.fullmatch(r"-?\d+(?:\.\d+)?", s)]
    if kind == "integer":
        ints = [int(n) for n in numbers if n == int(n)]
        return rng.choice(ints) if ints and rng.random() < 0.8 else rng.randint(0, 10)
    if kind == "number":
        return (
            rng.choice(numbers) if numbers and rng.random() < 0.8 else round(rng.uniform(0, 100), 2)
        )
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "array":
        return [_sample(rng, schema.get("items", {}), seen, defs) for _ in range(rng.randint(0, 3))]
    if kind == "object":
        return _sample_object(rng, schema, seen)
    words = [s for s in seen if not re.fullmatch(r"-?\d+(?:\.\d+)?", s)]
    return rng.choice(words) if words else "x"
