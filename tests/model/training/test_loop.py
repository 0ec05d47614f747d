"""The staged recipe: who trains in each stage, which loss reaches whom, determinism, resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from envsynth.errors import ConfigError
from model import ModelArgs, Transformer
from model.tokenizer import Tokenizer
from model.training.checkpoint import load_checkpoint
from model.training.data import DataConfig, TrainingData
from model.training.examples import Batch, collate
from model.training.loop import (
    StageConfig,
    TrainConfig,
    is_indexer,
    run_stage,
    stage_loss,
    stage_path,
    train,
    trainable,
)
from model.training.retrieval import RetrievalConfig, retrieval_examples

ARGS = ModelArgs(
    d_model=32,
    n_layers=2,
    n_heads=2,
    q_lora_rank=16,
    kv_lora_rank=16,
    qk_nope_head_dim=8,
    qk_rope_head_dim=8,
    v_head_dim=8,
    inter_dim=32,
    index_n_heads=2,
    index_head_dim=16,
    index_topk=8,
    n_routed_experts=2,
    n_activated_experts=1,
    moe_inter_dim=16,
    moe_layers=(1,),
    max_seq_len=64,
)
RETRIEVAL = RetrievalConfig(seq_len=48, n_queries=1, min_distance=16)
DATA = DataConfig(retrieval=RETRIEVAL, retrieval_near=None, heldout_retrieval=4, sft=None)


def _batch(n: int = 4) -> Batch:
    return collate(retrieval_examples(RETRIEVAL, 0, "test", 0, n), Tokenizer.pad_id)


def _peaky_model() -> Transformer:
    # At the default init every attention row is near uniform and so is the indexer: the KL
    # starts near 0. Larger attention weights give the indexer something to learn.
    torch.manual_seed(0)
    model = Transformer(ARGS)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".attn." in name and not is_indexer(name):
                p.mul_(8)
    return model


def _state(model: Transformer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_warmup_changes_only_indexer_parameters() -> None:
    model = _peaky_model()
    before = _state(model)
    data = TrainingData.build(DATA)

    run_stage(model, data, StageConfig(kind="dense_warmup", steps=3, lr=1e-2, batch_size=2), 0)

    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    indexer = {k for k in before if is_indexer(k)}
    assert changed == indexer  # every indexer tensor moved, nothing else did


def test_indexer_kl_decreases_over_warmup_steps_on_fixed_data() -> None:
    model = _peaky_model()
    batch = _batch()
    _, indexer_params = trainable(model, "dense_warmup")
    opt = torch.optim.Adam(indexer_params, lr=1e-2)
    kls = []
    for _ in range(40):
        loss, lm, kl = stage_loss(model, batch, "dense_warmup")
        assert lm is None and kl is not None
        opt.zero_grad()
        loss.backward()
        opt.step()
        kls.append(float(kl.detach()))

    assert kls[0] > 0.5
    assert kls[-1] < 0.4 * kls[0]


def _grads(model: Transformer) -> tuple[list[str], list[str]]:
    # Names of main and indexer parameters that received a non-zero gradient.
    main: list[str] = []
    index: list[str] = []
    for name, p in model.named_parameters():
        if p.grad is not None and p.grad.abs().sum() > 0:
            (index if is_indexer(name) else main).append(name)
    return main, index


def test_in_the_sparse_stage_lm_trains_only_the_model_and_kl_only_the_indexer() -> None:
    model = _peaky_model()
    trainable(model, "sparse")
    batch = _batch()

    _, lm, _ = stage_loss(model, batch, "sparse")
    assert lm is not None
    lm.backward()
    lm_main, lm_index = _grads(model)
    model.zero_grad(set_to_none=True)
    _, _, kl = stage_loss(model, batch, "sparse")
    assert kl is not None
    kl.backward()
    kl_main, kl_index = _grads(model)

    assert lm_index == [] and len(lm_main) > 10
    assert kl_main == []
    n_layers = ARGS.n_layers
    assert {n.split(".indexer.")[1] for n in kl_index} >= {"wq_b.weight", "wk.weight"}
    assert len({n.split(".")[1] for n in kl_index}) == n_layers  # every layer's indexer


def test_trainable_sets_per_stage() -> None:
    model = Transformer(ARGS)
    n_index = sum(is_indexer(n) for n, _ in model.named_parameters())
    n_all = len(list(model.parameters()))

    main, index = trainable(model, "dense_warmup")
    assert (len(main), len(index)) == (0, n_index)
    assert sum(p.requires_grad for p in model.parameters()) == n_index
    main, index = trainable(model, "dense")
    assert (len(main), len(index)) == (n_all - n_index, 0)
    main, index = trainable(model, "sparse")
    assert (len(main), len(index)) == (n_all - n_index, n_index)


def _config() -> TrainConfig:
    return TrainConfig(
        model=ARGS,
        data=DATA,
        stages=[
            StageConfig(kind="dense", steps=2, lr=1e-3, batch_size=2, warmup_steps=1),
            StageConfig(kind="dense_warmup", steps=2, lr=1e-3, batch_size=2),
            StageConfig(kind="sparse", steps=2, lr=1e-3, batch_size=2),
        ],
    )


def test_training_is_deterministic_and_resumes_bit_identically(tmp_path: Path) -> None:
    config = _config()
    data = TrainingData.build(config.data)
    first, results = train(config, data, tmp_path / "a")
    second, _ = train(config, data)
    # Resume after stage 1: the last stage's checkpoint is gone, as if killed during it.
    stage_path(tmp_path / "a", 2, "sparse").unlink()
    resumed, resumed_results = train(config, data, tmp_path / "a", resume=True)

    for other in (second, resumed):
        sa, sb = first.state_dict(), other.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r.resumed for r in resumed_results] == [True, True, False]
    assert [len(r.logs) for r in results] == [2, 2, 2]
    assert results[0].logs[0].lm is not None and results[0].logs[0].kl is None
    assert results[1].logs[0].lm is None and results[1].logs[0].kl is not None


def test_resume_refuses_a_directory_of_another_config(tmp_path: Path) -> None:
    config = _config()
    data = TrainingData.build(config.data)
    train(config, data, tmp_path)
    other = config.model_copy(update={"seed": 1})

    with pytest.raises(ConfigError, match="another config"):
        train(other, data, tmp_path, resume=True)


def test_stage_defaults_and_unknown_fields() -> None:
    assert StageConfig(kind="sft", steps=1, lr=1.0).retrieval_fraction == 0.0
    assert StageConfig(kind="sparse", steps=1, lr=1.0).retrieval_fraction == 1.0
    with pytest.raises(ValueError, match="extra"):
        StageConfig.model_validate({"kind": "sparse", "steps": 1, "lr": 1.0, "lrr": 2})


def test_near_fraction_draws_short_range_batches_and_needs_their_shapes() -> None:
    near = RetrievalConfig(seq_len=64, n_queries=2, min_distance=4, max_distance=24)
    far = DataConfig(retrieval=RETRIEVAL, retrieval_near=near, heldout_retrieval=4, sft=None)
    mixed = far.model_copy(update={"near_fraction": 0.5})
    only_near = far.model_copy(update={"near_fraction": 1.0})

    def distances(config: DataConfig, step: int) -> list[int]:
        # The oracle: each target's distance back to the same digits after the same key.
        batch = TrainingData.build(config).batch("retrieval", 0, step, 2)
        out = []
        for ex in batch:
            text = Tokenizer().decode(ex.tokens[1:])
            for a, b in ex.spans:
                key, value = text[a - 1 - RETRIEVAL.key_len : a - 1], text[a - 1 : b - 1]
                out.append(a - 1 - (text.index(key + value) + len(key)))
        return out

    assert all(d >= RETRIEVAL.min_distance for s in range(4) for d in distances(far, s))
    assert all(4 <= d <= 24 for s in range(4) for d in distances(only_near, s))
    kinds = {min(distances(mixed, s)) >= RETRIEVAL.min_distance for s in range(16)}
    assert kinds == {True, False}
    with pytest.raises(ConfigError, match="near_fraction"):
        DataConfig(retrieval=RETRIEVAL, retrieval_near=None, near_fraction=0.1, sft=None)


def test_device_names_are_checked_and_auto_picks_cuda_only_where_present() -> None:
    with pytest.raises(ValueError, match="device must be"):
        TrainConfig(device="tpu")
    with pytest.raises(ValueError, match="device must be"):
        TrainConfig(device="cuda:x")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert TrainConfig(device="auto").torch_device().type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            train(_config().model_copy(update={"device": "cuda"}), TrainingData.build(DATA))


def test_a_run_resumes_under_another_device_name(tmp_path: Path) -> None:
    config = _config()
    data = TrainingData.build(config.data)
    first, _ = train(config, data, tmp_path)
    stage_path(tmp_path, 2, "sparse").unlink()
    # Where a run computes is not what it computes: "auto" may resume a "cpu" run.
    elsewhere = config.model_copy(update={"device": "auto"})
    resumed, results = train(elsewhere, data, tmp_path, resume=True)
    assert [r.resumed for r in results] == [True, True, False]
    if not torch.cuda.is_available():
        sa, sb = first.state_dict(), resumed.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.gpu
def test_training_on_cuda_starts_where_the_cpu_run_starts(tmp_path: Path) -> None:
    config = _config()
    data = TrainingData.build(config.data)
    _, cpu = train(config, data)
    model, cuda = train(config.model_copy(update={"device": "cuda"}), data, tmp_path)
    assert next(model.parameters()).is_cuda
    # One initial model and one first batch: the first dense loss agrees across devices.
    assert cuda[0].logs[0].loss == pytest.approx(cpu[0].logs[0].loss, rel=1e-4)
    assert all(math.isfinite(log.loss) for r in cuda for log in r.logs)
    # The checkpoint is written from the CPU side and loads without CUDA.
    reloaded = load_checkpoint(stage_path(tmp_path, 2, "sparse"), expected_args=ARGS)
    weights = model.state_dict()
    assert all(torch.equal(v, weights[k].cpu()) for k, v in reloaded.state_dict().items())
