"""The contracts that cross package boundaries (DESIGN §4).

Every model forbids extra fields, so a typo in a config or an import file is an error
rather than silently ignored data.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from envsynth.ids import content_hash

TaskKind = Literal["general", "code", "search", "interpreter"]


class Contract(BaseModel):
    """Base of every boundary model: strict about unknown fields."""

    model_config = ConfigDict(extra="forbid")


class ToolSpec(Contract):
    """One tool in OpenAI function-calling format."""

    name: str
    description: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def openai_schema(self) -> dict[str, Any]:
        """The `{"type": "function", "function": …}` form the Chat Completions API takes."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ToolCall(Contract):
    """A call the assistant asks for. `arguments` is the raw JSON text, as in OpenAI's format."""

    id: str
    name: str
    arguments: str = "{}"


class Message(Contract):
    """One chat message in OpenAI format, plus optional `reasoning` (thinking text)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class Provenance(Contract):
    """Where a task came from: enough to regenerate or audit it."""

    pipeline: str
    version: str
    seed: int | None = None
    sources: list[str] = Field(default_factory=list)
    licenses: list[str] = Field(default_factory=list)
    created_at: float = Field(default_factory=time.time)


class Difficulty(Contract):
    """pass@k estimates of one policy on a task."""

    policy: str
    samples: int
    successes: int
    pass_at: dict[int, float] = Field(default_factory=dict)
    knobs: dict[str, int] = Field(default_factory=dict)


class GeneralTask(Contract):
    """Payload of a synthesized general-agent task: the environment's state and the goal.

    `state` is the initial state the tools act on; `goal` is what the family's verifier
    reads (an expected answer, an expected final-state hash, constraints). `reference` is
    the reference solver's tool-call trajectory, replayed by the `reference` policy.
    """

    type: Literal["general"] = "general"
    family: str
    family_version: int
    variant: str
    config: dict[str, Any]
    state: dict[str, Any]
    goal: dict[str, Any]
    reference: list[ToolCall]
    knobs: dict[str, int] = Field(default_factory=dict)


class CodeInstance(Contract):
    """Payload of a code-agent task (issue–PR pair); filled in by pipelines/code_agent."""

    type: Literal["code"] = "code"
    repo: str
    base_commit: str
    patch: str
    test_patch: str
    problem_statement: str
    fail_to_pass: list[str] = Field(default_factory=list)
    pass_to_pass: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def reference(self) -> list[ToolCall]:
        """The gold patch as calls of the code tools: write it, `git apply` it, submit."""
        path = ".git/envsynth-gold.diff"  # in the repository, where every backend can write
        return [
            ToolCall(
                id="ref_0",
                name="create_file",
                arguments=orjson.dumps({"path": path, "content": self.patch}).decode(),
            ),
            ToolCall(
                id="ref_1",
                name="shell",
                arguments=orjson.dumps({"command": f"git apply {path} && rm {path}"}).decode(),
            ),
            ToolCall(id="ref_2", name="submit", arguments="{}"),
        ]


class SearchQA(Contract):
    """Payload of a search-agent task."""

    type: Literal["search"] = "search"
    question: str
    answer: str
    aliases: list[str] = Field(default_factory=list)
    rubric: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def reference(self) -> list[ToolCall]:
        """Search each link of the evidence chain, open its page, then answer."""
        calls = []
        for i, (doc_id, link) in enumerate(
            zip(self.extra.get("evidence", []), self.extra.get("links", []), strict=True)
        ):
            calls += [
                ToolCall(id=f"ref_{2 * i}", name="search", arguments=_args(query=link)),
                ToolCall(id=f"ref_{2 * i + 1}", name="open_page", arguments=_args(doc_id=doc_id)),
            ]
        return [
            *calls,
            ToolCall(id="ref_answer", name="answer", arguments=_args(answer=self.answer)),
        ]


def _args(**arguments: Any) -> str:
    return orjson.dumps(arguments).decode()


class InterpreterProblem(Contract):
    """Payload of a code-interpreter task."""

    type: Literal["interpreter"] = "interpreter"
    problem: str
    answer: str
    reference_code: str
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def reference(self) -> list[ToolCall]:
        """Run the reference solution in the kernel, then give the answer."""
        return [
            ToolCall(
                id="ref_0",
                name="python",
                arguments=orjson.dumps({"code": self.reference_code}).decode(),
            ),
            ToolCall(
                id="ref_1", name="answer", arguments=orjson.dumps({"answer": self.answer}).decode()
            ),
        ]


Payload = Annotated[
    GeneralTask | CodeInstance | SearchQA | InterpreterProblem, Field(discriminator="type")
]


class Task(Contract):
    """One verified task. `id` is the content hash of what defines it (see `Task.build`)."""

    id: str
    kind: TaskKind
    family: str
    env_id: str
    dataset: str
    instruction: str
    system_prompt: str
    tools: list[ToolSpec]
    payload: Payload
    provenance: Provenance
    difficulty: Difficulty | None = None

    @classmethod
    def build(cls, **fields: Any) -> Task:
        """Make a task whose id hashes its defining fields (not provenance or difficulty)."""
        defining = {
            k: fields[k]
            for k in (
                "kind",
                "family",
                "env_id",
                "instruction",
                "system_prompt",
                "tools",
                "payload",
            )
        }
        return cls(id="t-" + content_hash(defining)[:24], **fields)


class Verdict(Contract):
    """The verifier's judgement of an episode."""

    reward: float = Field(ge=0.0, le=1.0)
    components: dict[str, float] = Field(default_factory=dict)
    reason: str = ""
    infra_error: bool = False

    @property
    def passed(self) -> bool:
        return self.reward >= 1.0 and not self.infra_error


class SamplingParams(Contract):
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None


class PolicyInfo(Contract):
    name: str
    version: str = "0"
    sampling: SamplingParams = Field(default_factory=SamplingParams)


class StepRecord(Contract):
    """What the policy returned for one assistant turn, beyond the message itself."""

    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    sampling_mask: list[list[int]] | None = None
    routing: list[list[int]] | None = None


class Trajectory(Contract):
    """One episode: enough to replay it and to train on it."""

    id: str
    task_id: str
    env_id: str
    policy: PolicyInfo
    messages: list[Message]
    steps: list[StepRecord] = Field(default_factory=list)
    verdict: Verdict | None = None
    seed: int | None = None
    sandbox: dict[str, Any] | None = None
    terminated: bool = False
    truncated: bool = False


class StageReport(Contract):
    """Yield of one pipeline stage: what came in, what went out, why the rest was cut."""

    stage: str
    items_in: int = 0
    items_out: int = 0
    rejections: dict[str, int] = Field(default_factory=dict)
    seconds: float = 0.0

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejections[reason] = self.rejections.get(reason, 0) + n

    def merged(self, other: StageReport) -> StageReport:
        """The sum of two reports of the same stage (e.g. of two chunks of one run)."""
        rejections = dict(self.rejections)
        for reason, n in other.rejections.items():
            rejections[reason] = rejections.get(reason, 0) + n
        return StageReport(
            stage=self.stage,
            items_in=self.items_in + other.items_in,
            items_out=self.items_out + other.items_out,
            rejections=rejections,
            seconds=self.seconds + other.seconds,
        )


class IntegrityCheck(Contract):
    """Result of one integrity check of one task (reference, no-op, a perturbation)."""

    check: str
    expect_pass: bool
    reward: float
    reason: str

    @property
    def ok(self) -> bool:
        return (self.reward >= 1.0) == self.expect_pass


class AuditReport(Contract):
    """pass@k of one policy over a dataset, per task and per family."""

    id: str
    dataset: str
    policy: str
    samples: int
    ks: list[int]
    per_task: dict[str, Difficulty]
    per_family: dict[str, dict[str, float]]
    created_at: float = Field(default_factory=time.time)
