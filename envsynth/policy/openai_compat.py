"""`openai`: any OpenAI-compatible `/v1/chat/completions` endpoint over httpx.

vLLM, SGLang, `envsynth serve` and hosted APIs all speak this protocol. Retries with
exponential back-off on connection errors, 429 and 5xx; a per-request timeout; and a
semaphore bounding the requests in flight.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence
from typing import Any

import httpx

from envsynth.errors import PolicyError
from envsynth.policy.base import PolicyOutput, PolicyRequest, register_policy
from envsynth.schema import Message, PolicyInfo, SamplingParams, StepRecord, ToolCall

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages → Chat Completions JSON. Reasoning is not sent back (as V3.2's API expects)."""
    out = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in m.tool_calls
            ]
        if m.tool_call_id:
            d["tool_call_id"] = m.tool_call_id
        if m.name:
            d["name"] = m.name
        out.append(d)
    return out


def from_openai_choice(choice: dict[str, Any]) -> PolicyOutput:
    """One `choices[i]` of a reply → our Message plus the logprobs the server returned."""
    msg = choice.get("message") or {}
    calls = [
        ToolCall(
            id=c.get("id") or f"call_{i}",
            name=c["function"]["name"],
            arguments=c["function"].get("arguments") or "{}",
        )
        for i, c in enumerate(msg.get("tool_calls") or [])
    ]
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    message = Message(
        role="assistant",
        content=msg.get("content") or "",
        reasoning=reasoning,
        tool_calls=calls or None,
    )
    logprobs = None
    content = (choice.get("logprobs") or {}).get("content")
    if content:
        logprobs = [float(t["logprob"]) for t in content]
    return PolicyOutput(message, StepRecord(logprobs=logprobs))


@register_policy("openai")
class OpenAIPolicy:
    """A policy served by an OpenAI-compatible endpoint.

    Args:
        base_url: e.g. "http://127.0.0.1:8000/v1"; default `OPENAI_BASE_URL`.
        model: model name sent in each request; default `ENVSYNTH_MODEL` or "default".
        api_key: bearer token; default `OPENAI_API_KEY` (none for local servers).
        timeout: seconds per HTTP request.
        retries: extra attempts after a retryable failure.
        concurrency: most requests in flight at once.
        logprobs: ask the server for token logprobs.
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        concurrency: int = 16,
        logprobs: bool = False,
        backoff: float = 0.5,
    ):
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise PolicyError(
                "the openai policy needs base_url= (or OPENAI_BASE_URL), "
                "e.g. http://127.0.0.1:8000/v1"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model or os.environ.get("ENVSYNTH_MODEL", "default")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.concurrency, self.logprobs = int(concurrency), bool(logprobs)
        self.info = PolicyInfo(name="openai", version=self.model)

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        limit = asyncio.Semaphore(self.concurrency)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=self.timeout
        ) as client:
            return list(await asyncio.gather(*(self._one(client, limit, r) for r in requests)))

    def body(self, request: PolicyRequest) -> dict[str, Any]:
        s: SamplingParams = request.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(request.messages),
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if s.seed is not None:
            body["seed"] = s.seed
        if request.tools:
            body["tools"] = [t.openai_schema() for t in request.tools]
            if request.tool_choice != "auto":
                choice = request.tool_choice
                body["tool_choice"] = (
                    choice
                    if choice in ("none", "required")
                    else {"type": "function", "function": {"name": choice}}
                )
        if self.logprobs:
            body["logprobs"] = True
        return body

    async def _one(
        self, client: httpx.AsyncClient, limit: asyncio.Semaphore, request: PolicyRequest
    ) -> PolicyOutput:
        body = self.body(request)
        last_error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1) * (0.5 + random.random()))
            async with limit:
                try:
                    reply = await client.post("/chat/completions", json=body)
                except (httpx.TransportError, httpx.TimeoutException) as e:
                    last_error = f"{type(e).__name__}: {e}"
                    continue
            if reply.status_code in _RETRY_STATUS:
                last_error = f"HTTP {reply.status_code}: {reply.text[:200]}"
                continue
            if reply.status_code != 200:
                raise PolicyError(
                    f"{self.base_url} answered HTTP {reply.status_code}: {reply.text[:500]}"
                )
            try:
                return from_openai_choice(reply.json()["choices"][0])
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise PolicyError(
                    f"{self.base_url} sent a reply that is not a chat completion: "
                    f"{e!r}: {reply.text[:300]}"
                ) from None
        raise PolicyError(
            f"{self.base_url}: gave up after {self.retries + 1} attempts; last error: {last_error}"
        )
