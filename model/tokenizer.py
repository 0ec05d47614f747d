"""The bundled model's tokenizer: UTF-8 bytes plus the chat template's special tokens.

Ids 0…255 are raw bytes; each tag of `envsynth.chat_template` (and a pad) is one id after
them, so that the model reads and writes a role switch or a tool call boundary as a single
token. Text is split at the tags, the rest is encoded byte by byte; decoding joins the bytes
back, replacing invalid UTF-8, and renders every special id as its tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from envsynth.chat_template import (
    BOS,
    CALL_CLOSE,
    CALL_OPEN,
    END,
    ROLE_TAGS,
    THINK_CLOSE,
    THINK_OPEN,
    render,
)
from envsynth.schema import Message, ToolSpec
from model.errors import ModelInputError

PAD = "<|pad|>"
N_BYTES = 256
SPECIAL_TOKENS: tuple[str, ...] = (
    BOS,
    END,
    ROLE_TAGS["system"],
    ROLE_TAGS["user"],
    ROLE_TAGS["assistant"],
    ROLE_TAGS["tool"],
    THINK_OPEN,
    THINK_CLOSE,
    CALL_OPEN,
    CALL_CLOSE,
    PAD,
)
VOCAB_SIZE = N_BYTES + len(SPECIAL_TOKENS)
SPECIAL_IDS: Mapping[str, int] = MappingProxyType(
    {s: N_BYTES + i for i, s in enumerate(SPECIAL_TOKENS)}
)

# Longest tag first, so that no tag is split at a shorter one it starts with.
_SPECIAL = re.compile("|".join(re.escape(s) for s in sorted(SPECIAL_TOKENS, key=len, reverse=True)))


class Tokenizer:
    """Byte-level tokenizer with single-id special tokens; stateless and cheap to build."""

    vocab_size = VOCAB_SIZE
    special_ids = SPECIAL_IDS
    bos_id = SPECIAL_IDS[BOS]
    end_id = SPECIAL_IDS[END]
    pad_id = SPECIAL_IDS[PAD]

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; every occurrence of a special tag becomes its one id."""
        ids: list[int] = []
        pos = 0
        for m in _SPECIAL.finditer(text):
            ids.extend(text[pos : m.start()].encode())
            ids.append(self.special_ids[m.group()])
            pos = m.end()
        ids.extend(text[pos:].encode())
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`: bytes as UTF-8 (invalid sequences replaced), specials as their tags.

        Raises:
            ModelInputError: an id outside 0…vocab_size-1.
        """
        parts: list[str] = []
        run = bytearray()
        for i in ids:
            if 0 <= i < N_BYTES:
                run.append(i)
            elif N_BYTES <= i < VOCAB_SIZE:
                parts.append(run.decode(errors="replace"))
                run.clear()
                parts.append(SPECIAL_TOKENS[i - N_BYTES])
            else:
                raise ModelInputError(f"token id {i} is outside the vocabulary 0…{VOCAB_SIZE - 1}")
        parts.append(run.decode(errors="replace"))
        return "".join(parts)

    def encode_chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        thinking: bool = True,
        add_generation_prompt: bool = True,
    ) -> list[int]:
        """Ids of the conversation as `envsynth.chat_template.render` writes it."""
        return self.encode(
            render(messages, tools, thinking=thinking, add_generation_prompt=add_generation_prompt)
        )
