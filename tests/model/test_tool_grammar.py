"""Guided decoding: the turn grammar admits what the template renders and nothing malformed,
and a guided random model writes only calls that parse and validate against their schemas."""

from __future__ import annotations

import jsonschema
import orjson
import pytest
import torch

from envsynth.chat_template import (
    CALL_OPEN,
    END,
    ROLE_TAGS,
    THINK_CLOSE,
    parse_assistant,
    render_assistant,
)
from envsynth.policy.baselines import ReferencePolicy
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import Message, ToolSpec
from model import ModelArgs, ModelInputError, Transformer
from model.generate import generate
from model.sampling import SamplingConfig
from model.tokenizer import SPECIAL_IDS, Tokenizer
from model.tool_grammar import TurnConstraint, turn_grammar
from pipelines.general.family import load_families
from pipelines.general.synthesize import EnvPlan, build_environment

TOK = Tokenizer()
V = TOK.vocab_size
# Bounded strings and enums, so that a random model's calls end within a test's budget.
TOOLS = [
    ToolSpec(
        name="book",
        description="",
        parameters={
            "type": "object",
            "properties": {
                "room": {"type": "string", "maxLength": 3},
                "hours": {"type": "integer", "minimum": 1, "maximum": 9},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
                "urgent": {"type": "boolean"},
            },
            "required": ["room", "hours"],
            "additionalProperties": False,
        },
    ),
    ToolSpec(
        name="submit",
        description="",
        parameters={"type": "object", "properties": {}, "additionalProperties": False},
    ),
]


def _feed(constraint: TurnConstraint, text: str) -> int | None:
    """Advance through `text`; the index of the first token the grammar refuses, or None."""
    for i, token in enumerate(TOK.encode(text)):
        if not constraint.allowed(V)[token]:
            return i
        constraint.advance(token)
    return None


def _completion(m: Message) -> str:
    # What ModelPolicy(thinking=False) generates: the turn after `<|assistant|></think>`.
    return render_assistant(m, keep_reasoning=False).removeprefix(
        ROLE_TAGS["assistant"] + THINK_CLOSE
    )


@pytest.fixture(scope="module")
def reference_turns() -> list[tuple[list[ToolSpec], str]]:
    """Rendered reference turns of one task per family, with that task's tools."""
    turns = []
    families = load_families()
    tasks = []
    for name in families:
        built = build_environment(EnvPlan(0, name, families.get(name).variants[0].name, 0), "g")
        tasks += [c.task for c in built.candidates if c.rejection is None][:1]
    trajectories = rollout(
        "envsynth/General-v0", ReferencePolicy(), [EpisodeSpec({"task": t}, seed=0) for t in tasks]
    )
    for task, traj in zip(tasks, trajectories, strict=True):
        turns += [(task.tools, _completion(m)) for m in traj.messages if m.role == "assistant"]
    return turns


def test_every_reference_turn_of_every_family_is_admitted(
    reference_turns: list[tuple[list[ToolSpec], str]],
) -> None:
    assert len({tuple(t.name for t in tools) for tools, _ in reference_turns}) >= 20
    for tools, text in reference_turns:
        for choice in ("required", "auto"):
            constraint = TurnConstraint.for_turn(tools, choice, thinking=False)
            assert _feed(constraint, text) is None, (choice, text)
            assert constraint.accepting() and text.endswith(END)


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "bo|x',  # no tool is called "box"
        '<tool_call>{"name": "book", "arguments": {"|room":"a"',  # keys sorted: "hours" first
        '<tool_call>{"name": "book", "arguments": {"hours":|"2"',  # an integer
        '<tool_call>{"name": "book", "arguments": {"hours":1|0',  # at most 9
        '<tool_call>{"name": "book", "arguments": {"hours":2|}',  # "room" is required
        '<tool_call>{"name": "book", "arguments": {"hours":2,"room":"abc|d"',  # maxLength 3
        '<tool_call>{"name": "book", "arguments": {"hours":2,"room":"a","|x"',  # no extras
        '<tool_call>{"name": "book", "arguments": {"hours":2,"room":"a","tags":["|c"',  # enum
        '<tool_call>{"name": "submit", "arguments": {}| }',  # compact JSON only
        '<tool_call>{"name": "submit", "arguments": {}}</tool_call>|text',  # no text after
        "|hello",  # required: a call first, no text
    ],
)
def test_malformed_calls_are_refused_at_the_first_wrong_token(text: str) -> None:
    admitted, rest = text.split("|")
    constraint = TurnConstraint.for_turn(TOOLS, "required", thinking=False)
    assert _feed(constraint, admitted + rest) == len(TOK.encode(admitted)), text


def test_the_choices_shape_the_turn() -> None:
    call = '<tool_call>{"name": "submit", "arguments": {}}</tool_call>'
    none = TurnConstraint.for_turn(TOOLS, "none", thinking=False)
    assert _feed(none, "plain text") is None
    assert not none.allowed(V)[SPECIAL_IDS[CALL_OPEN]] and none.allowed(V)[TOK.end_id]

    named = TurnConstraint.for_turn(TOOLS, "submit", thinking=False)
    assert _feed(named, call) is None
    assert named.allowed(V).nonzero()[:, 0].tolist() == [TOK.end_id]  # exactly one call

    book = TurnConstraint.for_turn(TOOLS, "book", thinking=False)
    assert _feed(book, call) == len(TOK.encode('<tool_call>{"name": "'))

    thinking = TurnConstraint.for_turn(TOOLS, "required", thinking=True)
    assert _feed(thinking, "let me see" + THINK_CLOSE + call) is None
    assert thinking.accepting()


@pytest.mark.parametrize(
    ("tools", "choice", "message"),
    [
        (TOOLS, "bogus", "neither a mode nor a tool"),
        ([], "required", "needs at least one tool"),
        (
            [
                ToolSpec(
                    name="f",
                    description="",
                    parameters={
                        "type": "object",
                        "properties": {},
                        "required": ["x"],
                        "additionalProperties": False,
                    },
                )
            ],
            "auto",
            "do not compile to a grammar",
        ),
    ],
)
def test_bad_choices_and_unsatisfiable_schemas_are_clear_errors(
    tools: list[ToolSpec], choice: str, message: str
) -> None:
    with pytest.raises(ModelInputError, match=message):
        TurnConstraint(turn_grammar(tools, choice, thinking=False))


def test_a_refused_token_is_an_error_not_a_silent_advance() -> None:
    constraint = TurnConstraint.for_turn(TOOLS, "required", thinking=False)
    with pytest.raises(ModelInputError, match="does not continue"):
        constraint.advance(ord("x"))


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(
        ModelArgs(n_layers=2, moe_layers=(1,), max_seq_len=1024, index_topk=8)
    ).eval()


def test_a_guided_random_model_writes_calls_that_parse_and_validate(model: Transformer) -> None:
    prompt = TOK.encode_chat([Message(role="user", content="book a room")], TOOLS, thinking=False)
    prompt = prompt[-200:]  # the tail is enough context for a random model
    n = 12
    gens = generate(
        model,
        [prompt] * n,
        max_tokens=400,
        stop_id=TOK.end_id,
        pad_id=TOK.pad_id,
        seeds=list(range(n)),
        constraints=[TurnConstraint.for_turn(TOOLS, "required", thinking=False) for _ in range(n)],
    )
    schemas = {t.name: t.parameters for t in TOOLS}
    calls = 0
    for gen in gens:
        assert gen.stopped, TOK.decode(gen.token_ids)
        message = parse_assistant(TOK.decode(gen.token_ids), thinking=False)
        assert message.tool_calls and not message.content
        for call in message.tool_calls:
            jsonschema.validate(orjson.loads(call.arguments), schemas[call.name])
            calls += 1
        # The drawn token is in its kept set, and a forced token is drawn with certainty.
        for token, mask, logprob in zip(
            gen.token_ids, gen.sampling_mask, gen.logprobs, strict=True
        ):
            assert token in mask
            if len(mask) == 1:
                assert logprob == 0.0
    assert calls >= n
    assert len({TOK.decode(g.token_ids) for g in gens}) > n // 2  # it still samples


def test_guided_logprobs_are_the_masked_distribution_of_a_full_forward(model: Transformer) -> None:
    prompt = TOK.encode_chat([Message(role="user", content="go")], TOOLS, thinking=False)[-120:]
    gen = generate(
        model,
        [prompt],
        max_tokens=60,
        stop_id=TOK.end_id,
        pad_id=TOK.pad_id,
        sampling=SamplingConfig(temperature=0.8),
        seeds=[7],
        constraints=[TurnConstraint.for_turn(TOOLS, "required", thinking=False)],
    )[0]
    seq = torch.tensor([prompt + gen.token_ids])
    with torch.no_grad():
        logits = model(seq, mode="sparse").logits[0, len(prompt) - 1 : -1] / 0.8
    # The oracle: a fresh matcher replayed over the drawn tokens gives each step's mask.
    replay = TurnConstraint.for_turn(TOOLS, "required", thinking=False)
    masks = []
    for token in gen.token_ids:
        masks.append(replay.allowed(V))
        replay.advance(token)
    masked = logits.masked_fill(~torch.stack(masks), float("-inf")).log_softmax(-1)
    expected = masked.gather(-1, torch.tensor(gen.token_ids)[:, None])[:, 0]
    torch.testing.assert_close(torch.tensor(gen.logprobs), expected, atol=1e-4, rtol=1e-4)
    assert [m.nonzero()[:, 0].tolist() for m in masks] == gen.sampling_mask


def test_generate_wants_one_constraint_per_prompt(model: Transformer) -> None:
    with pytest.raises(ModelInputError, match="2 constraints for 1 prompts"):
        generate(
            model,
            [[1, 2]],
            max_tokens=2,
            stop_id=TOK.end_id,
            pad_id=TOK.pad_id,
            constraints=[None, None],
        )


def test_unguided_rows_in_the_same_batch_draw_freely(model: Transformer) -> None:
    prompt = TOK.encode("<|begin|><|user|>hi<|end|><|assistant|></think>")
    free = generate(
        model, [prompt], max_tokens=20, stop_id=TOK.end_id, pad_id=TOK.pad_id, seeds=[3]
    )[0]
    mixed = generate(
        model,
        [prompt, prompt],
        max_tokens=20,
        stop_id=TOK.end_id,
        pad_id=TOK.pad_id,
        seeds=[3, 3],
        constraints=[None, TurnConstraint.for_turn(TOOLS, "none", thinking=False)],
    )
    assert mixed[0].token_ids == free.token_ids
    assert SPECIAL_IDS[CALL_OPEN] not in mixed[1].token_ids
