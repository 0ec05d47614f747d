"""`model.serve` over loopback with real HTTP: the Chat Completions shape, our `openai`
backend against it, a General-gym rollout through it, and hostile request bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import torch

import gyms  # noqa: F401  (registers the ids)
from envsynth.policy import make_policy
from envsynth.policy.base import PolicyRequest, generate
from envsynth.rollout import EpisodeSpec, rollout
from envsynth.schema import Message, SamplingParams, Trajectory
from model import ModelArgs, Transformer
from model.serve import build_model, serve
from model.tokenizer import Tokenizer
from pipelines.general.synthesize import build_environment, make_plan

TOK = Tokenizer()
HISTORY = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    torch.manual_seed(0)
    args = ModelArgs(n_layers=2, moe_layers=(1,), max_seq_len=8192, index_topk=32)
    srv = serve(Transformer(args), TOK, "127.0.0.1", 0)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def base_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/v1"


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"id": {"type": "string", "maxLength": 4}},
                "required": ["id"],
                "additionalProperties": False,
            },
        },
    },
    {"type": "function", "function": {"name": "done", "parameters": {"type": "object"}}},
]


def _named(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def _post(base_url: str, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(f"{base_url}/chat/completions", content=body, timeout=60)
    return httpx.post(f"{base_url}/chat/completions", json=body, timeout=60)


def test_a_completion_is_well_formed_and_counts_its_tokens(base_url: str) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    history = [
        *HISTORY,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "nothing found"},
    ]
    body = {"model": "m", "messages": history, "tools": tools, "n": 2, "max_tokens": 12}
    reply = _post(base_url, {**body, "logprobs": True, "seed": 5})
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["object"] == "chat.completion" and data["model"] == "m"
    assert [c["index"] for c in data["choices"]] == [0, 1]
    total = 0
    for choice in data["choices"]:
        msg, lps = choice["message"], choice["logprobs"]["content"]
        assert msg["role"] == "assistant" and isinstance(msg["content"], str)
        assert "reasoning_content" in msg
        assert choice["finish_reason"] in {"stop", "length", "tool_calls"}
        assert 1 <= len(lps) <= 12
        assert all(t["logprob"] <= 0 and isinstance(t["token"], str) for t in lps)
        if choice["finish_reason"] == "length":
            assert len(lps) == 12
        total += len(lps)
    # Independent count: the prompt as the chat template renders it, byte-level.
    from envsynth.chat_template import render
    from envsynth.schema import ToolCall, ToolSpec

    messages = [Message.model_validate(m) for m in history[:2]] + [
        Message(role="assistant", tool_calls=[ToolCall(id="c1", name="lookup")]),
        Message(role="tool", tool_call_id="c1", content="nothing found"),
    ]
    spec = ToolSpec(name="lookup", description="", parameters={})
    prompt = len(TOK.encode(render(messages, [spec], thinking=True)))
    usage = data["usage"]
    assert usage == {
        "prompt_tokens": prompt,
        "completion_tokens": total,
        "total_tokens": prompt + total,
    }
    no_logprobs = _post(base_url, body).json()
    assert all(c["logprobs"] is None for c in no_logprobs["choices"])
    models = httpx.get(f"{base_url}/models", timeout=10).json()
    assert models["object"] == "list" and models["data"][0]["object"] == "model"


def test_the_openai_backend_gets_messages_and_a_seed_repeats(base_url: str) -> None:
    policy = make_policy("openai", base_url=base_url, logprobs=True, retries=0)
    history = [Message.model_validate(m) for m in HISTORY]
    req = PolicyRequest(history, sampling=SamplingParams(max_tokens=16, seed=11))
    first, second = generate(policy, [req, req])
    assert first.message.role == "assistant"
    assert first.message == second.message
    # The second request reuses the first one's cached prompt (a prefill chunked
    # differently), so its logprobs agree to float rounding, not bit for bit.
    assert first.step.logprobs
    assert second.step.logprobs == pytest.approx(first.step.logprobs, rel=1e-5, abs=1e-5)
    other = generate(
        policy, [PolicyRequest(history, sampling=SamplingParams(max_tokens=16, seed=12))]
    )[0]
    assert other.step.logprobs != first.step.logprobs


def test_a_general_gym_rollout_runs_through_the_server(base_url: str) -> None:
    task = build_environment(make_plan(1, ["retail_ops"], 0)[0], "d").candidates[0].task
    policy = make_policy("openai", base_url=base_url, retries=0, logprobs=True)
    trajectories = rollout(
        "envsynth/General-v0",
        policy,
        [EpisodeSpec({"task": task, "max_turns": 2}, seed=0)],
        sampling=SamplingParams(max_tokens=32, seed=0),
    )
    assert len(trajectories) == 1
    t = trajectories[0]
    assert isinstance(t, Trajectory) and t.task_id == task.id
    assert any(m.role == "assistant" for m in t.messages)
    # Every turn was generated by the served model: 1…max_tokens logprobs each.
    assert t.steps and all(s.logprobs and 1 <= len(s.logprobs) <= 32 for s in t.steps)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        ({"model": "m"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": HISTORY, "n": 0}, "n"),
        ({"messages": HISTORY, "temperature": -0.5}, "temperature"),
        ({"messages": HISTORY, "top_p": 0}, "top_p"),
        ({"messages": HISTORY, "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"messages": HISTORY, "stream": True}, "stream"),
        ({"messages": HISTORY, "bogus": 1}, "bogus"),
        ({"messages": HISTORY, "tool_choice": "any"}, "tool_choice"),
        ({"messages": HISTORY, "tool_choice": "required"}, "needs at least one tool"),
        (
            {"messages": HISTORY, "tools": TOOLS, "tool_choice": _named("nope")},
            "neither a mode nor a tool",
        ),
    ],
)
def test_a_bad_request_gets_400_with_an_openai_error(base_url: str, body: Any, needle: str) -> None:
    reply = _post(base_url, body)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert needle in error["message"] and "Traceback" not in reply.text


@pytest.fixture(scope="module")
def plain_url() -> Iterator[str]:
    # Non-thinking, as the bundled model is served: a reply starts with its call, not with
    # free reasoning that a random model would not end within a test's budget.
    torch.manual_seed(0)
    args = ModelArgs(n_layers=2, moe_layers=(1,), max_seq_len=2048, index_topk=32)
    srv = serve(Transformer(args), TOK, "127.0.0.1", 0, thinking=False)
    host, port = srv.server_address[:2]
    yield f"http://{host!s}:{port}/v1"
    srv.shutdown()
    srv.server_close()


def test_tool_choice_is_enforced_by_guided_decoding(plain_url: str) -> None:
    body = {"messages": HISTORY, "tools": TOOLS, "n": 4, "max_tokens": 64, "seed": 1}
    named = _post(plain_url, {**body, "tool_choice": _named("lookup")}).json()
    for choice in named["choices"]:
        # A random model: the envelope and the schema are the grammar's, the id is sampled.
        (call,) = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "lookup" and choice["finish_reason"] == "tool_calls"
        arguments = json.loads(call["function"]["arguments"])
        assert list(arguments) == ["id"] and len(arguments["id"]) <= 4
        assert choice["message"]["content"] == ""

    required = _post(plain_url, {**body, "tool_choice": "required"}).json()
    for choice in required["choices"]:
        calls = choice["message"].get("tool_calls", [])
        # Either a call was completed or the 64-token budget ran out inside one.
        assert calls or choice["finish_reason"] == "length"
        assert all(c["function"]["name"] in {"lookup", "done"} for c in calls)

    none = _post(plain_url, {**body, "tool_choice": "none"}).json()
    assert all("tool_calls" not in c["message"] for c in none["choices"])
    free = _post(plain_url, body).json()  # "auto", unguided: the random model's own bytes
    assert all(c["finish_reason"] != "tool_calls" for c in free["choices"])


def test_unknown_paths_get_404(base_url: str) -> None:
    root = base_url.removesuffix("/v1")
    for reply in (
        httpx.get(f"{root}/v1/nothing", timeout=10),
        httpx.post(f"{root}/v1/completions", json={}, timeout=10),
    ):
        assert reply.status_code == 404
        assert reply.json()["error"]["type"] == "not_found_error"


def test_build_model_loads_a_state_dict_and_rejects_a_bad_one(tmp_path: Any) -> None:
    from envsynth.errors import ConfigError

    args = ModelArgs(n_layers=1, moe_layers=())
    source = build_model(None, seed=1, args=args)
    path = tmp_path / "w.pt"
    torch.save(source.state_dict(), path)
    loaded = build_model(path, seed=2, args=args)
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ConfigError):
        build_model(path, seed=0, args=ModelArgs(n_layers=2, moe_layers=()))
    with pytest.raises(ConfigError):
        build_model(tmp_path / "missing.pt")


def test_build_model_takes_a_training_checkpoints_own_args(tmp_path: Any) -> None:
    from model.training.checkpoint import save_checkpoint

    # Not the default args: a checkpoint of `envsynth train` says what it is.
    args = ModelArgs(n_layers=1, moe_layers=(), max_seq_len=2048, index_topk=16)
    torch.manual_seed(3)
    source = build_model(None, seed=3, args=args)
    path = save_checkpoint(source, tmp_path / "trained.safetensors")
    loaded = build_model(path)
    assert loaded.args == args
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in source.state_dict().items())
