"""`bundled`: the policy that loads a checkpoint file and answers like any other backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import model.policy as bundled
from envsynth.errors import ConfigError
from envsynth.policy.base import PolicyRequest, generate, make_policy
from envsynth.schema import Message, SamplingParams
from model.args import ModelArgs
from model.training.checkpoint import save_checkpoint
from model.transformer import Transformer

TINY = ModelArgs(
    d_model=32,
    n_layers=2,
    n_heads=2,
    q_lora_rank=16,
    kv_lora_rank=16,
    qk_nope_head_dim=8,
    qk_rope_head_dim=8,
    v_head_dim=8,
    inter_dim=64,
    index_n_heads=2,
    index_head_dim=16,
    index_topk=8,
    n_routed_experts=2,
    n_activated_experts=1,
    moe_inter_dim=32,
    moe_layers=(1,),
    max_seq_len=512,
)


def test_loads_a_checkpoint_and_generates(tmp_path: Path) -> None:
    torch.manual_seed(0)
    original = Transformer(TINY)
    weights = save_checkpoint(original, tmp_path / "w.safetensors")
    policy = make_policy("bundled", weights=str(weights))
    assert isinstance(policy, bundled.BundledPolicy)
    mine = policy.model.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in original.state_dict().items())
    assert policy.info.name == "bundled" and len(policy.info.version) == 12
    request = PolicyRequest(
        messages=[Message(role="user", content="hi")],
        sampling=SamplingParams(temperature=1.0, max_tokens=8, seed=3),
    )
    [a] = generate(policy, [request])
    [b] = generate(policy, [request])
    assert a.step.token_ids and a.step.token_ids == b.step.token_ids  # seeded: reproducible


def test_missing_weights_are_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no bundled weights"):
        make_policy("bundled", weights=str(tmp_path / "none.safetensors"))
    from envsynth.policy import bundled_available

    monkeypatch.setattr(bundled, "WEIGHTS", tmp_path / "none.safetensors")
    assert bundled_available() is False
    save_checkpoint(Transformer(TINY), tmp_path / "none.safetensors")
    assert bundled_available() is True


def test_max_tokens_caps_every_completion(tmp_path: Path) -> None:
    torch.manual_seed(1)
    weights = save_checkpoint(Transformer(TINY), tmp_path / "w.safetensors")
    request = PolicyRequest(
        messages=[Message(role="user", content="hi")],
        sampling=SamplingParams(temperature=1.0, max_tokens=64, seed=5),
    )
    [long] = generate(make_policy("bundled", weights=str(weights), max_tokens=None), [request])
    [short] = generate(make_policy("bundled", weights=str(weights), max_tokens=5), [request])
    # An untrained model rarely draws <|end|> early: uncapped it runs well past 5 tokens.
    assert len(long.step.token_ids) > 5
    assert short.step.token_ids == long.step.token_ids[:5]
    with pytest.raises(ConfigError, match="max_tokens"):
        make_policy("bundled", weights=str(weights), max_tokens=0)


def test_the_committed_weights_step_the_gym_from_the_command_line(tmp_path: Path) -> None:
    # The command: `envsynth rollout --env envsynth/General-v0 --policy bundled`.
    import hashlib
    import subprocess
    import sys

    from envsynth.policy import bundled_available
    from envsynth.store import Store

    assert bundled_available(), f"the bundled weights are missing from {bundled.WEIGHTS}"
    db = str(tmp_path / "b.db")

    def envsynth(*args: str) -> str:
        run = subprocess.run(
            [sys.executable, "-m", "envsynth", *args, "--db", db],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout

    envsynth("generate", "general", "--envs", "2", "--families", "meeting_rooms")
    short = ("--policy-arg", "max_tokens=48")  # a CPU test: short turns
    named = envsynth(
        "rollout", "--policy", "bundled", *short, "--episodes", "2", "--max-turns", "2"
    )
    default = envsynth("rollout", *short, "--episodes", "1", "--max-turns", "1", "--seed", "5")
    assert "with bundled" in named and "with bundled" in default
    stored = Store(db).trajectories()
    version = hashlib.sha256(bundled.WEIGHTS.read_bytes()).hexdigest()[:12]
    assert len(stored) == 3
    assert all(t.policy.name == "bundled" and t.policy.version == version for t in stored)
    # Every assistant turn carries what GRPO needs, one entry per generated token.
    steps = [s for t in stored for s in t.steps]
    assert steps and all(0 < len(s.token_ids) == len(s.logprobs) <= 48 for s in steps)


def test_the_bundled_weights_are_served_with_their_window_however_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = Path("weights.safetensors")
    relative.write_bytes(b"x")
    monkeypatch.setattr(bundled, "WEIGHTS", tmp_path / "link" / ".." / "weights.safetensors")
    (tmp_path / "link").mkdir()
    # The same file by a relative path: the window it was trained for applies.
    assert bundled.default_context(relative) == bundled.DEFAULT_CONTEXT
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"x")
    assert bundled.default_context(other) is None
