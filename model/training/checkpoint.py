"""The checkpoint format: a safetensors file of the weights, with the model args and the
tokenizer version in its metadata.

The metadata makes a checkpoint self-describing: `load_checkpoint` builds the model from
the args stored beside the weights, and refuses a file whose tokenizer differs from the
installed one (the ids would mean other bytes) or whose args differ from the ones the
caller expects. The tokenizer version is a hash of what defines its ids, so any change to
the byte range or the special tokens changes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from envsynth.errors import EnvsynthError
from envsynth.ids import content_hash
from model.args import ModelArgs
from model.tokenizer import N_BYTES, SPECIAL_TOKENS
from model.transformer import Transformer

FORMAT = "envsynth-dsa/1"


class CheckpointError(EnvsynthError):
    """A checkpoint cannot be read, or does not fit the model or tokenizer asked for."""


def tokenizer_version() -> str:
    """A short hash of the byte-level tokenizer's id assignment."""
    return "bytes-" + content_hash({"bytes": N_BYTES, "special": list(SPECIAL_TOKENS)})[:12]


def save_checkpoint(
    model: Transformer, path: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write `model`'s weights, args and tokenizer version to `path` (a .safetensors file).

    Args:
        model: the transformer.
        path: where to write; parent directories are created.
        extra: JSON-able notes stored under the "extra" metadata key (config, step…).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "model_args": model.args.model_dump_json(),
        "tokenizer": tokenizer_version(),
        "extra": orjson.dumps(extra or {}).decode(),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a checkpoint, checked for format; weights are not read."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one with `envsynth train run`")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is not a safetensors file ({e})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} has format {metadata.get('format')!r}, not {FORMAT!r}; it was not written "
            "by `save_checkpoint`"
        )
    return metadata


def checkpoint_args(path: str | Path) -> ModelArgs:
    """The model args stored in a checkpoint."""
    raw = read_metadata(path)["model_args"]
    try:
        return ModelArgs.model_validate_json(raw)
    except ValidationError as e:
        raise CheckpointError(f"{path}: its model args do not validate: {e}") from None


def load_checkpoint(
    path: str | Path, expected_args: ModelArgs | None = None, device: str = "cpu"
) -> Transformer:
    """Build the transformer a checkpoint describes and load its weights.

    Args:
        path: a file written by `save_checkpoint`.
        expected_args: refuse the file unless its args equal these (None: take the file's).
        device: where to put the weights.

    Raises:
        CheckpointError: unreadable file, other format, other tokenizer, other args, or
            weights that do not fit the args.
    """
    metadata = read_metadata(path)
    if metadata.get("tokenizer") != tokenizer_version():
        raise CheckpointError(
            f"{path} was trained with tokenizer {metadata.get('tokenizer')!r}, but the installed "
            f"one is {tokenizer_version()!r}; retrain it with the installed tokenizer"
        )
    args = checkpoint_args(path)
    if expected_args is not None and args != expected_args:
        diff = {
            k: (v, getattr(args, k))
            for k, v in expected_args.model_dump().items()
            if getattr(args, k) != v
        }
        shown = ", ".join(f"{k}: expected {a!r}, file has {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(
            f"{path} holds a model with other args ({shown}); load it without expected_args "
            "or retrain with these args"
        )
    model = Transformer(args)
    tensors = load_file(str(path), device=device)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tensors[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: weights do not fit its args (missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, wrong shape {wrong[:5]}); the file is damaged or hand-edited"
        )
    model.load_state_dict(tensors)
    return model.to(device)


def checkpoint_extra(path: str | Path) -> dict[str, Any]:
    """The JSON notes stored with a checkpoint."""
    extra: dict[str, Any] = orjson.loads(read_metadata(path).get("extra", "{}"))
    return extra
