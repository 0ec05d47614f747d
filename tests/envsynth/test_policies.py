"""Policy backends. The `openai` backend is tested against a real HTTP server on loopback."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from envsynth.errors import ConfigError, PolicyError, UnknownIdError
from envsynth.policy import PolicyRequest, generate, make_policy
from envsynth.schema import Message, SamplingParams, Task


class FakeLLM:
    """A scripted model behind a real Chat Completions endpoint."""

    def __init__(self) -> None:
        self.fail_first = 0
        self.delay = 0.0
        self.status = 200
        self.raw: bytes | None = None
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        call = {
            "id": "call_x",
            "type": "function",
            "function": {"name": "submit", "arguments": "{}"},
        }
        return {
            "id": "c",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": "ok",
                        "reasoning_content": "hmm",
                        "tool_calls": [call],
                    },
                    "logprobs": {"content": [{"token": "ok", "logprob": -0.5}]},
                }
            ],
        }


@pytest.fixture()
def llm() -> Iterator[tuple[FakeLLM, str]]:
    state = FakeLLM()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.bodies.append(body)
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                failing = state.fail_first > 0
                state.fail_first -= failing
            time.sleep(state.delay)
            with state.lock:
                state.in_flight -= 1
            status = 503 if failing else state.status
            data = (
                state.raw
                if state.raw is not None and not failing
                else json.dumps(state.reply(body)).encode()
            )
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _request() -> PolicyRequest:
    from envsynth.schema import ToolSpec

    return PolicyRequest(
        messages=[Message(role="user", content="hi")],
        tools=[ToolSpec(name="submit", description="end")],
        sampling=SamplingParams(temperature=0.3, seed=7),
    )


def test_openai_round_trip(llm: tuple[FakeLLM, str]) -> None:
    state, url = llm
    policy = make_policy("openai", base_url=url, model="m1", logprobs=True)
    out = generate(policy, [_request()])[0]
    assert out.message.tool_calls and out.message.tool_calls[0].name == "submit"
    assert out.message.reasoning == "hmm" and out.step.logprobs == [-0.5]
    body = state.bodies[0]
    assert body["model"] == "m1" and body["temperature"] == 0.3 and body["seed"] == 7
    assert body["tools"][0]["function"]["name"] == "submit"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert "tool_choice" not in body  # "auto" is the API's own default


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("required", "required"),
        ("none", "none"),
        ("submit", {"type": "function", "function": {"name": "submit"}}),
    ],
)
def test_openai_sends_the_tool_choice(llm: tuple[FakeLLM, str], choice: str, sent: Any) -> None:
    state, url = llm
    policy = make_policy("openai", base_url=url, model="m1")
    generate(policy, [dataclasses.replace(_request(), tool_choice=choice)])
    assert state.bodies[-1]["tool_choice"] == sent


def test_openai_retries_then_succeeds(llm: tuple[FakeLLM, str]) -> None:
    state, url = llm
    state.fail_first = 2
    policy = make_policy("openai", base_url=url, retries=3, backoff=0.01)
    assert generate(policy, [_request()])[0].message.content == "ok"
    assert len(state.bodies) == 3


def test_openai_gives_up_after_timeouts(llm: tuple[FakeLLM, str]) -> None:
    state, url = llm
    state.delay = 1.0
    policy = make_policy("openai", base_url=url, timeout=0.1, retries=1, backoff=0.01)
    with pytest.raises(PolicyError, match="gave up after 2 attempts"):
        generate(policy, [_request()])


def test_openai_concurrency_limit(llm: tuple[FakeLLM, str]) -> None:
    state, url = llm
    state.delay = 0.05
    policy = make_policy("openai", base_url=url, concurrency=3)
    outs = generate(policy, [_request() for _ in range(15)])
    assert len(outs) == 15 and 2 <= state.max_in_flight <= 3


@pytest.mark.parametrize("status,raw", [(400, None), (200, b"not json at all")])
def test_openai_errors_are_clear(llm: tuple[FakeLLM, str], status: int, raw: bytes | None) -> None:
    state, url = llm
    state.status, state.raw = status, raw
    with pytest.raises(PolicyError, match=url):
        generate(make_policy("openai", base_url=url, retries=0), [_request()])
    assert len(state.bodies) == 1  # not retried


def test_openai_needs_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(PolicyError, match="base_url"):
        make_policy("openai")


def test_unknown_policy_and_missing_bundled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UnknownIdError, match="Did you mean 'random'"):
        make_policy("randm")
    # As in a build whose weights are missing: a clear error naming how to get them.
    monkeypatch.setattr("model.policy.WEIGHTS", tmp_path / "absent.safetensors")
    with pytest.raises(ConfigError, match="no bundled weights"):
        make_policy("bundled")


def test_random_policy_calls_are_schema_valid(store: Any) -> None:
    tasks: list[Task] = [store.task(t) for t in store.task_ids("general")[:40]]
    policy = make_policy("random", submit_prob=0.0)
    for task in tasks:
        req = PolicyRequest(
            messages=[Message(role="user", content=task.instruction)],
            tools=task.tools,
            sampling=SamplingParams(seed=3),
        )
        out = generate(policy, [req])[0]
        call = out.message.tool_calls[0]
        spec = next(t for t in task.tools if t.name == call.name)
        jsonschema.validate(json.loads(call.arguments), spec.parameters)
        assert generate(policy, [req])[0] == out  # seeded: same request, same answer


def test_reference_and_noop(store: Any) -> None:
    task = store.task(store.task_ids("general")[0])
    ref = make_policy("reference")
    history = [Message(role="user", content=task.instruction)]
    first = generate(ref, [PolicyRequest(messages=history, task=task)])[0]
    assert first.message.tool_calls == task.payload.reference[:1]
    assert (
        generate(make_policy("noop"), [PolicyRequest(messages=history)])[0].message.tool_calls
        is None
    )
    with pytest.raises(PolicyError):
        generate(ref, [PolicyRequest(messages=history)])
