"""Content hashes: ids are hashes of what defines a thing, so a re-run finds what it made."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot hash an object of type {type(obj).__name__}")


def canonical_json(obj: Any) -> bytes:
    """JSON with sorted keys and no whitespace: equal values give equal bytes."""
    return orjson.dumps(obj, default=_default, option=_OPTS)


def content_hash(obj: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of `obj`."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()
