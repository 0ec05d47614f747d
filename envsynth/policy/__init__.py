"""Policies: anything that continues a chat history with an assistant message (DESIGN §6)."""

from envsynth.policy.base import (
    POLICIES,
    Policy,
    PolicyOutput,
    PolicyRequest,
    bundled_available,
    generate,
    make_policy,
    register_policy,
)

__all__ = [
    "POLICIES",
    "Policy",
    "PolicyOutput",
    "PolicyRequest",
    "bundled_available",
    "generate",
    "make_policy",
    "register_policy",
]
