"""What a test needs from the machine: skipped where it is missing, a failure in CI.

A developer without Docker or a kernel runtime still runs the rest of the suite; CI
(`CI=true`, set by `.ci/run`) installs everything, so there a missing part is a broken
set-up and must not pass as a skip.
"""

from __future__ import annotations

import os

import pytest


def require(what: str, why: str | None) -> None:
    """Skip the calling test when `why` says `what` cannot run here; fail instead in CI."""
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {what} cannot run: {why}")
    pytest.skip(f"{what} unavailable: {why}")
