"""`envsynth serve`: an OpenAI-compatible Chat Completions server over an in-process model.

`POST /v1/chat/completions` and `GET /v1/models`, on the standard library's threading HTTP
server, so that the `openai` Policy backend and every pipeline agent can point at the
bundled model. Requests are validated with pydantic: a bad one gets HTTP 400 with an
OpenAI-style error body, never a traceback. Generation runs through `ModelPolicy`, one
request at a time; the `n` choices of a request are one batch with seeds seed, seed+1, ….
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envsynth.errors import ConfigError
from envsynth.policy.base import PolicyOutput, PolicyRequest
from envsynth.schema import Message, SamplingParams, ToolCall, ToolSpec
from model.agent import ModelPolicy
from model.args import ModelArgs
from model.errors import ModelInputError
from model.tokenizer import Tokenizer
from model.transformer import Transformer

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 2**20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _TextPart(_Strict):
    type: Literal["text"]
    text: str


class _Function(_Strict):
    name: str
    arguments: str = "{}"


class _ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: _Function


class _Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_TextPart] | None = None
    reasoning_content: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def to_message(self) -> Message:
        content = (
            self.content
            if isinstance(self.content, str | None)
            else "".join(p.text for p in self.content)
        )
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in self.tool_calls or []
        ]
        return Message(
            role="system" if self.role == "developer" else self.role,
            content=content or "",
            reasoning=self.reasoning_content,
            tool_calls=calls or None,
            tool_call_id=self.tool_call_id,
            name=self.name,
        )


class _FunctionSpec(_Strict):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class _Tool(_Strict):
    type: Literal["function"] = "function"
    function: _FunctionSpec


class _ToolChoiceFunction(_Strict):
    name: str


class _ToolChoice(_Strict):
    type: Literal["function"] = "function"
    function: _ToolChoiceFunction


class ChatRequest(_Strict):
    """The body of `POST /v1/chat/completions` (the fields this server honours).

    `tool_choice` other than "auto" is enforced by guided decoding (`model.tool_grammar`):
    "required" and a named function give calls that follow the tools' schemas, "none" no call.
    """

    model: str = "default"
    messages: list[_Message] = Field(min_length=1)
    tools: list[_Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | _ToolChoice = "auto"
    n: int = Field(1, ge=1, le=64)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)
    logprobs: bool = False
    seed: int | None = None
    stream: Literal[False] = False


class _BadRequest(Exception):
    """A request this server answers with HTTP 400."""


class ChatServer:
    """Answers chat completions with one `ModelPolicy`, one request at a time.

    Args:
        policy: the policy generating every choice.
        model_name: the id listed by `/v1/models` and echoed in replies by default.
    """

    def __init__(self, policy: ModelPolicy, model_name: str = "envsynth-dsa"):
        self.policy, self.model_name = policy, model_name
        self._lock = threading.Lock()

    def models(self) -> dict[str, Any]:
        """The `/v1/models` listing: this server's single model."""
        card = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "envsynth"}
        return {"object": "list", "data": [card]}

    def complete(self, body: bytes) -> dict[str, Any]:
        """A chat completion for a raw JSON body.

        Raises:
            _BadRequest: the body is not a valid request.
        """
        try:
            req = ChatRequest.model_validate_json(body)
        except ValidationError as e:
            raise _BadRequest(_describe(e)) from None
        messages = [m.to_message() for m in req.messages]
        tools = [
            ToolSpec(
                name=t.function.name,
                description=t.function.description,
                parameters=t.function.parameters,
            )
            for t in req.tools or []
        ]
        choice = (
            req.tool_choice if isinstance(req.tool_choice, str) else req.tool_choice.function.name
        )
        first = secrets.randbits(62) if req.seed is None else req.seed
        requests = [
            PolicyRequest(
                messages,
                tools,
                SamplingParams(
                    temperature=req.temperature,
                    top_p=req.top_p,
                    max_tokens=req.max_tokens,
                    seed=first + i,
                ),
                tool_choice=choice,
            )
            for i in range(req.n)
        ]
        prompt = self.policy.prompt(requests[0])
        with self._lock:
            try:
                outputs = asyncio.run(self.policy.agenerate(requests))
            except ModelInputError as e:
                # What the request asked cannot be generated: a tool_choice naming no tool,
                # "required" without tools, a schema that admits no arguments.
                raise _BadRequest(str(e)) from None
        choices = [self._choice(i, o, req.logprobs) for i, o in enumerate(outputs)]
        completion = sum(len(o.step.token_ids or []) for o in outputs)
        return {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": completion,
                "total_tokens": len(prompt) + completion,
            },
        }

    def _choice(self, index: int, out: PolicyOutput, logprobs: bool) -> dict[str, Any]:
        m, ids = out.message, out.step.token_ids or []
        message: dict[str, Any] = {
            "role": "assistant",
            "content": m.content,
            "reasoning_content": m.reasoning,
        }
        if m.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in m.tool_calls
            ]
        if m.tool_calls:
            finish = "tool_calls"
        elif ids and ids[-1] == self.policy.tokenizer.end_id:
            finish = "stop"
        else:
            # No end token: the budget (max_tokens or the context) ran out.
            finish = "length"
        return {
            "index": index,
            "message": message,
            "finish_reason": finish,
            "logprobs": {"content": self._token_logprobs(out)} if logprobs else None,
        }

    def _token_logprobs(self, out: PolicyOutput) -> list[dict[str, Any]]:
        tok = self.policy.tokenizer
        return [
            {
                "token": (s := tok.decode([t])),
                "logprob": lp,
                "bytes": list(s.encode()),
                "top_logprobs": [],
            }
            for t, lp in zip(out.step.token_ids or [], out.step.logprobs or [], strict=True)
        ]


def _describe(e: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors()
    )


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.rstrip("/") == "/v1/models":
            self._send(HTTPStatus.OK, self.server.chat.models())
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no route GET {self.path}", "not_found_error")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.rfile.read(min(length, MAX_BODY_BYTES))
            self._error(HTTPStatus.NOT_FOUND, f"no route POST {self.path}", "not_found_error")
            return
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
            return
        try:
            self._send(HTTPStatus.OK, self.server.chat.complete(self.rfile.read(length)))
        except _BadRequest as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except Exception:
            # A bug, not the client's fault: log it here, keep the traceback off the wire.
            log.exception("chat completion failed")
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", "server_error")

    def _error(self, status: HTTPStatus, message: str, kind: str = "invalid_request_error") -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": None}})

    def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s " + format, self.address_string(), *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], chat: ChatServer):
        super().__init__(address, _Handler)
        self.chat = chat


def serve(
    model: Transformer,
    tokenizer: Tokenizer | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    model_name: str = "envsynth-dsa",
    block: bool = False,
    thinking: bool = True,
    guided: bool = False,
    context: int | None = None,
) -> ThreadingHTTPServer:
    """Start serving `model` on host:port (port 0 picks a free one).

    Args:
        model: the transformer; generation runs in sparse mode on the auto backend.
        tokenizer: its tokenizer (the byte-level `Tokenizer` by default).
        host: interface to bind.
        port: TCP port; read the bound one from `server.server_address`.
        model_name: the id `/v1/models` lists.
        block: serve in this thread until interrupted, instead of a daemon thread.
        thinking: render prompts in thinking mode (replies open a reasoning block).
        guided: decode tool calls by the tools' schemas under tool_choice "auto" too;
            other tool choices are always guided.
        context: the model sees the last `context` tokens of each prompt (None: all).

    Returns:
        The running server; `shutdown()` stops it and `server_close()` frees the port.
    """
    policy = ModelPolicy(
        model, tokenizer, name=model_name, thinking=thinking, guided=guided, context=context
    )
    server = _HTTPServer((host, port), ChatServer(policy, model_name))
    if block:
        server.serve_forever()
    else:
        threading.Thread(target=server.serve_forever, name="envsynth-serve", daemon=True).start()
    return server


def build_model(
    checkpoint: Path | None = None, seed: int = 0, args: ModelArgs | None = None
) -> Transformer:
    """The model to serve: weights from `checkpoint`, else a randomly initialised one.

    A checkpoint written by `envsynth train` (the bundled weights are one) carries its own
    args and is loaded with them; other weights must match `args`.

    Args:
        checkpoint: an `envsynth train` checkpoint, another `.safetensors` file or a torch
            state dict (`torch.save`) matching args.
        seed: torch seed for the random initialisation.
        args: the architecture (the tiny `ModelArgs()` by default).

    Raises:
        ConfigError: the checkpoint is missing, unreadable, or does not fit the architecture.
    """
    torch.manual_seed(seed)
    model = Transformer(args or ModelArgs())
    if checkpoint is None:
        return model
    if not checkpoint.is_file():
        raise ConfigError(f"checkpoint {checkpoint} does not exist; pass a weights file")
    if checkpoint.suffix == ".safetensors" and _is_training_checkpoint(checkpoint):
        from model.training.checkpoint import load_checkpoint

        return load_checkpoint(checkpoint)
    try:
        if checkpoint.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(checkpoint))
        else:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except ImportError as e:
        raise ConfigError("reading .safetensors needs `pip install safetensors`") from e
    except (RuntimeError, OSError, ValueError) as e:
        raise ConfigError(f"cannot load {checkpoint} into {model.args!r}: {e}") from e
    return model


def _is_training_checkpoint(path: Path) -> bool:
    from model.training.checkpoint import CheckpointError, read_metadata

    try:
        read_metadata(path)
    except CheckpointError:
        return False
    return True
