"""The checkpoint format: bit-exact round trip, and refusals with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import ModelArgs, Transformer
from model.training.checkpoint import (
    CheckpointError,
    checkpoint_args,
    checkpoint_extra,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
    tokenizer_version,
)

ARGS = ModelArgs(n_layers=2, moe_layers=(1,), max_seq_len=128, index_topk=16)


def _model() -> Transformer:
    torch.manual_seed(0)
    model = Transformer(ARGS)
    with torch.no_grad():  # weights unlike a fresh init, so that loading must really load them
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    model = _model()
    path = save_checkpoint(model, tmp_path / "sub" / "m.safetensors", extra={"step": 7})

    loaded = load_checkpoint(path, expected_args=ARGS)

    sa, sb = model.state_dict(), loaded.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    tokens = torch.randint(0, 256, (1, 40))
    with torch.no_grad():
        assert torch.equal(model.eval()(tokens).logits, loaded.eval()(tokens).logits)
    assert checkpoint_args(path) == ARGS
    assert checkpoint_extra(path) == {"step": 7}
    assert read_metadata(path)["tokenizer"] == tokenizer_version()


def test_mismatched_args_are_refused_naming_the_field(tmp_path: Path) -> None:
    path = save_checkpoint(_model(), tmp_path / "m.safetensors")
    other = ARGS.model_copy(update={"index_topk": 32})

    with pytest.raises(CheckpointError, match="index_topk: expected 32, file has 16"):
        load_checkpoint(path, expected_args=other)


def _rewrite(path: Path, **metadata: str) -> None:
    tensors = load_file(str(path))
    save_file(tensors, str(path), metadata={**read_metadata(path), **metadata})


def test_another_tokenizer_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(_model(), tmp_path / "m.safetensors")
    _rewrite(path, tokenizer="bytes-000000000000")

    with pytest.raises(CheckpointError, match="retrain it with the installed tokenizer"):
        load_checkpoint(path)


def test_args_that_do_not_fit_the_weights_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(_model(), tmp_path / "m.safetensors")
    _rewrite(path, model_args=ARGS.model_copy(update={"d_model": 64}).model_dump_json())

    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_checkpoint(path)


def test_files_that_are_not_checkpoints_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))

    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")
