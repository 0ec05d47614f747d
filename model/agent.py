"""`ModelPolicy`: the Policy protocol over an in-process `Transformer` and its tokenizer.

Each request is rendered with the chat template, the batch is generated from the KV cache,
and each completion is parsed back to an assistant Message. The StepRecord carries what
GRPO needs: token ids, logprobs, sampling masks and routing, one entry per generated token.
Output that does not follow the template is returned as an assistant Message holding the
raw text; never an exception in the trainer.

This module is not `model.policy`: that name is the `bundled` backend, which loads trained
weights; `ModelPolicy` takes whatever model it is given.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from envsynth.chat_template import THINK_OPEN, ChatFormatError, parse_assistant
from envsynth.errors import ConfigError
from envsynth.policy.base import PolicyOutput, PolicyRequest
from envsynth.schema import Message, PolicyInfo, SamplingParams, StepRecord
from model.dispatch import Backend
from model.generate import Generation, generate
from model.mla import AttentionMode
from model.prefix_cache import PrefixCache
from model.sampling import SamplingConfig
from model.tokenizer import Tokenizer
from model.tool_grammar import TurnConstraint
from model.transformer import Transformer

log = logging.getLogger(__name__)


class ModelPolicy:
    """Continue chat histories with a transformer.

    Args:
        model: the transformer (put in eval mode here).
        tokenizer: its tokenizer; the byte-level `Tokenizer` by default.
        name: the policy's name in trajectories.
        version: its version (e.g. a checkpoint hash).
        thinking: render the generation prompt in thinking mode.
        top_k: top-k sampling cut on top of each request's temperature and top_p (0 = none).
        mode: "sparse" or "dense" attention.
        backend: where the sparse attention runs (see `model.dispatch`).
        max_tokens: most tokens per completion whatever a request asks (None: no cap).
        prefix_cache: finished sequences whose caches are kept for the next requests'
            common prefixes (an episode's next turn, the other samples of a task); 0 turns
            reuse off. See `model.prefix_cache`.
        guided: under tool_choice "auto", decode tool calls by the tools' schemas as well
            (`model.tool_grammar`). "none", "required" and a named tool are always guided.
        context: the model sees only the last `context` tokens of each prompt (None: all).
            A model trained on windows of a trajectory has never seen later positions.
    """

    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer | None = None,
        *,
        name: str = "model",
        version: str = "0",
        thinking: bool = True,
        top_k: int = 0,
        mode: AttentionMode = "sparse",
        backend: Backend = "auto",
        max_tokens: int | None = None,
        prefix_cache: int = 64,
        guided: bool = False,
        context: int | None = None,
    ):
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens must be ≥ 1, got {max_tokens}")
        if context is not None and context < 1:
            raise ConfigError(f"context must be ≥ 1 token, got {context}")
        self.context = context
        self.model = model.eval()
        self.max_tokens = max_tokens
        self.prefix_cache = PrefixCache(prefix_cache) if prefix_cache else None
        self.tokenizer = tokenizer or Tokenizer()
        self.thinking, self.top_k, self.mode, self.backend = thinking, top_k, mode, backend
        self.guided = guided
        self.info = PolicyInfo(name=name, version=version)

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        """One assistant message per request; requests that sample alike share a batch."""
        prompts = [self.prompt(r) for r in requests]
        groups: dict[tuple[float, float, int], list[int]] = defaultdict(list)
        for i, (r, p) in enumerate(zip(requests, prompts, strict=True)):
            groups[(r.sampling.temperature, r.sampling.top_p, self._budget(r.sampling, p))].append(
                i
            )
        outputs: list[PolicyOutput | None] = [None] * len(requests)
        for (temperature, top_p, max_tokens), rows in groups.items():
            if max_tokens < 1:
                log.warning("%d prompts fill the model's context; answering empty", len(rows))
                for i in rows:
                    outputs[i] = PolicyOutput(Message(role="assistant", content=""), _record(None))
                continue
            gens = generate(
                self.model,
                [prompts[i] for i in rows],
                max_tokens=max_tokens,
                stop_id=self.tokenizer.end_id,
                pad_id=self.tokenizer.pad_id,
                sampling=SamplingConfig(temperature, top_p, self.top_k),
                seeds=[_seed(requests[i].sampling, i) for i in rows],
                mode=self.mode,
                backend=self.backend,
                prefix_cache=self.prefix_cache,
                constraints=[self._constraint(requests[i]) for i in rows],
            )
            for i, gen in zip(rows, gens, strict=True):
                message, raw = self._message(gen, requests[i])
                outputs[i] = PolicyOutput(message, _record(gen), raw_text=raw)
        return [o for o in outputs if o is not None]

    def prompt(self, request: PolicyRequest) -> list[int]:
        """The token ids the model is given for a request: its context window's tail."""
        ids = self.tokenizer.encode_chat(request.messages, request.tools, thinking=self.thinking)
        return ids[-(self.context or 0) :]

    def _constraint(self, request: PolicyRequest) -> TurnConstraint | None:
        if request.tool_choice == "auto" and not self.guided:
            return None
        return TurnConstraint.for_turn(request.tools, request.tool_choice, thinking=self.thinking)

    def _budget(self, sampling: SamplingParams, prompt: list[int]) -> int:
        # Generation may fill the context: the last token drawn is never fed back.
        cap = sampling.max_tokens if self.max_tokens is None else self.max_tokens
        return min(sampling.max_tokens, cap, self.model.args.max_seq_len - len(prompt) + 1)

    def _message(self, gen: Generation, request: PolicyRequest) -> tuple[Message, str]:
        """The parsed message and the text the environment should parse itself."""
        text = self.tokenizer.decode(gen.token_ids)
        turn = sum(m.role == "assistant" for m in request.messages) + 1
        # In thinking mode the prompt opened the reasoning block; parse it as written, so
        # that reasoning never closed is a format error rather than the answer.
        full = THINK_OPEN + text if self.thinking else text
        try:
            return parse_assistant(full, thinking=self.thinking, turn=turn), full
        except ChatFormatError as e:
            log.debug("unparseable completion (%s)", e)
            return Message(role="assistant", content=text), full


def _seed(sampling: SamplingParams, row: int) -> int:
    # torch seeds are unsigned 64-bit; a rollout's derived seeds may be negative or larger.
    return row if sampling.seed is None else sampling.seed % 2**64


def _record(gen: Generation | None) -> StepRecord:
    if gen is None:
        return StepRecord(token_ids=[], logprobs=[], sampling_mask=[], routing=[])
    return StepRecord(
        token_ids=gen.token_ids,
        logprobs=gen.logprobs,
        sampling_mask=gen.sampling_mask,
        # Per token, the expert ids of every MoE layer in layer order, concatenated.
        routing=[[e for layer in token for e in layer] for token in gen.routing],
    )
