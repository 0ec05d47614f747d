"""Gymnasium environments over stored tasks, one per kind (DESIGN §7).

Importing this package registers the `envsynth/…` ids, as Gymnasium plug-ins do; the
`gymnasium.envs` entry point calls `register_envs` for code that does not import it.
"""

from __future__ import annotations

import gymnasium

ENV_IDS = {
    "envsynth/General-v0": "gyms.general_env:GeneralEnv",
    "envsynth/CodeAgent-v0": "gyms.code_agent_env:CodeAgentEnv",
    "envsynth/Interpreter-v0": "gyms.interpreter_env:InterpreterEnv",
    "envsynth/Search-v0": "gyms.search_env:SearchEnv",
}


def register_envs() -> None:
    """Register every envsynth environment id with Gymnasium (idempotent)."""
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id, entry_point=entry_point, disable_env_checker=False, order_enforce=True
            )


register_envs()
