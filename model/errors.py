"""The model's input error."""

from __future__ import annotations

from envsynth.errors import EnvsynthError


class ModelInputError(EnvsynthError, ValueError):
    """A forward call got inputs the model cannot take (shape, length, mode, routes)."""
