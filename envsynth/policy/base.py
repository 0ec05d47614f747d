"""The Policy protocol (DESIGN §6) and the registry of its backends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from envsynth.registry import Registry
from envsynth.schema import Message, PolicyInfo, SamplingParams, StepRecord, Task, ToolSpec


@dataclass(frozen=True)
class PolicyRequest:
    """One history to continue.

    Attributes:
        messages: the conversation so far (system, user, assistant, tool messages).
        tools: the tools the assistant may call.
        sampling: sampling parameters (seed included, for reproducible baselines).
        task: the task being solved. Only privileged backends (`reference`) read it; model
            backends never see it.
        tool_choice: as in the Chat Completions API: "auto" (the model decides), "none" (no
            call), "required" (at least one call) or the name of the one tool to call.
    """

    messages: Sequence[Message]
    tools: Sequence[ToolSpec] = ()
    sampling: SamplingParams = field(default_factory=SamplingParams)
    task: Task | None = None
    tool_choice: str = "auto"


@dataclass(frozen=True)
class PolicyOutput:
    """The assistant's next message and what the backend knows about how it was sampled.

    Attributes:
        message: the completion parsed into a Message (as well as the backend could).
        step: token ids, logprobs, sampling masks and routing, where the backend has them.
        raw_text: the completion as generated, for text backends. Rollouts step environments
            with it, so that a malformed completion becomes the environment's error
            observation instead of a silently different action.
    """

    message: Message
    step: StepRecord = field(default_factory=StepRecord)
    raw_text: str | None = None


@runtime_checkable
class Policy(Protocol):
    info: PolicyInfo

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        """Continue every history of the batch with one assistant message."""
        ...


def generate(policy: Policy, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
    """Synchronous convenience around `Policy.agenerate`."""
    return asyncio.run(policy.agenerate(requests))


PolicyFactory = Callable[..., Policy]
POLICIES: Registry[PolicyFactory] = Registry("policy backend")


def register_policy(name: str) -> Callable[[PolicyFactory], PolicyFactory]:
    return POLICIES.register(name)


def make_policy(name: str, **options: Any) -> Policy:
    """Build a policy backend by name (`reference`, `noop`, `random`, `openai`, `bundled`)."""
    _load_backends()
    return POLICIES.get(name)(**options)


def _load_backends() -> None:
    # Backends register themselves on import; the bundled model is loaded only on request.
    from envsynth.policy import baselines, openai_compat  # noqa: F401

    if "bundled" not in POLICIES:
        POLICIES.register("bundled")(_bundled)


def _bundled(**options: Any) -> Policy:
    from envsynth.errors import ConfigError

    try:
        from model.policy import BundledPolicy
    except ImportError as e:
        raise ConfigError(
            "the bundled DSA policy is not available in this build (model/ is not installed); "
            "name another policy, e.g. --policy openai --policy-arg base_url=http://host:port/v1"
        ) from e
    return BundledPolicy(**options)


def bundled_available() -> bool:
    """Whether the bundled model and its weights are installed."""
    try:
        import model.policy
    except ImportError:
        return False
    return model.policy.available()
