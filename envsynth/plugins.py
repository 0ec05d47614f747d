"""Loading Gymnasium environments registered by installed packages.

Gymnasium 1.x dropped automatic loading of the `gymnasium.envs` entry-point group, so the
core loads it itself before `gymnasium.make`: pipelines reach `envsynth/…` environments by id
without importing `gyms`, and third-party packages can add their own the same way.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import gymnasium

_loaded = False


def load_gym_plugins() -> None:
    """Call every `gymnasium.envs` entry point once per process."""
    global _loaded
    if _loaded:
        return
    for ep in entry_points(group="gymnasium.envs"):
        ep.load()()
    _loaded = True


def make_env(env_id: str, **kwargs: Any) -> gymnasium.Env[Any, Any]:
    """`gymnasium.make` after loading the plugins."""
    load_gym_plugins()
    return gymnasium.make(env_id, **kwargs)
