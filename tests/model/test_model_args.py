"""ModelArgs: presets, derived sizes and the consistency checks."""

from __future__ import annotations

import pydantic
import pytest

from envsynth.errors import ConfigError
from model import ModelArgs


def test_presets() -> None:
    tiny, big = ModelArgs.tiny(), ModelArgs.deepseek_like()
    assert tiny == ModelArgs() and tiny.qk_head_dim == 32
    shapes = (big.n_heads, big.kv_lora_rank, big.qk_rope_head_dim, big.index_topk)
    assert shapes == (64, 512, 64, 2048)
    assert big.qk_head_dim == 192 and set(big.moe_layers) == set(range(3, 61))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"qk_rope_head_dim": 15}, "must be even"),
        ({"index_head_dim": 8}, "index_head_dim"),
        ({"moe_layers": (4,)}, r"moe_layers must be distinct indices in 0…3"),
        ({"moe_layers": (1, 1)}, "moe_layers must be distinct"),
        ({"n_activated_experts": 5}, "n_activated_experts"),
    ],
)
def test_inconsistent_args_are_rejected(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelArgs(**change)  # type: ignore[arg-type]


def test_args_are_frozen_and_strict() -> None:
    with pytest.raises(pydantic.ValidationError):
        ModelArgs(hidden=3)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        ModelArgs().n_layers = 2  # type: ignore[misc]
    assert ModelArgs(moe_layers=()).moe_layers == ()
