"""The setup agent's repair loop: a policy reads the failure and proposes the missing command.

The policy here is a scripted stand-in for a hosted LLM (none exists on this machine); what is
real is everything around it: the failing docker builds, the prompt carrying the error, the
proposed command built as one more layer, and the test run that must then work.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from code_repos import commit, git, write

from envsynth.policy.base import PolicyOutput, PolicyRequest
from envsynth.schema import Message, PolicyInfo
from pipelines.code_agent.environment import export_tree, remove_image
from pipelines.code_agent.setup_agent import setup_environment
from sandbox.docker_sandbox import unavailable_reason

FIX = "echo 1.0 > VERSION && python -m pip install --no-input -e ."


class Scripted:
    """Replies with a fixed list of texts, one per call, and keeps the prompts it saw."""

    def __init__(self, replies: Sequence[str]):
        self.info = PolicyInfo(name="scripted")
        self.replies, self.prompts = list(replies), []

    async def agenerate(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        out = []
        for r in requests:
            self.prompts.append(r.messages[-1].content)
            text = self.replies.pop(0) if self.replies else '{"give_up": true}'
            out.append(PolicyOutput(Message(role="assistant", content=text)))
        return out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    why = unavailable_reason()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but Docker cannot run: {why}")
        pytest.skip(why)
    path = tmp_path / "needs-version"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    # setup.py reads a VERSION file the repository does not ship: no install plan knows that.
    write(
        path,
        {
            "setup.py": """
                from setuptools import setup
                setup(name="vers", version=open("VERSION").read().strip(), packages=["vers"])
                """,
            "vers/__init__.py": "def one():\n    return 1\n",
            "tests/test_one.py": (
                "from vers import one\n\n\ndef test_one():\n    assert one() == 1\n"
            ),
        },
    )
    commit(path, "base")
    return path


def test_without_a_policy_the_failure_is_reported(repo: Path, tmp_path: Path) -> None:
    tree = export_tree(repo, "HEAD", tmp_path / "t1")
    out = setup_environment("repair/needs-version", tree, use_cache=False)
    assert not out.ok and out.reason == "setup:step_failed:package"
    assert "VERSION" in out.detail


def test_the_repair_loop_adds_the_proposed_command(repo: Path, tmp_path: Path) -> None:
    tree = export_tree(repo, "HEAD", tmp_path / "t2")
    policy = Scripted(['{"command": "false"}', f'Try this:\n```json\n{{"command": "{FIX}"}}\n```'])
    out = setup_environment("repair/needs-version", tree, policy=policy, use_cache=False)
    try:
        assert out.ok, (out.reason, out.detail)
        assert out.recipe is not None and FIX in out.recipe.install
        # ...in place of the failed step, before the steps that follow it in the plan
        assert out.recipe.install[-1].endswith("pytest")
        assert "false" not in out.recipe.install  # a proposal that failed is not kept
        repairs = [a for a in out.attempts if a.step == "repair"]
        assert [a.ok for a in repairs] == [False, True]
        # The model saw the real error, and after a failed proposal, that proposal's error.
        assert "VERSION" in policy.prompts[0]
        assert out.verify is not None
        assert out.verify.results == {"tests/test_one.py::test_one": "passed"}
    finally:
        if out.image:
            remove_image(out.image)


def test_repairs_are_bounded(repo: Path, tmp_path: Path) -> None:
    tree = export_tree(repo, "HEAD", tmp_path / "t3")
    policy = Scripted(['{"command": "false"}'] * 10)
    out = setup_environment(
        "repair/needs-version", tree, policy=policy, repair_steps=2, use_cache=False
    )
    assert not out.ok and len(policy.prompts) == 2
    assert sum(a.step == "repair" for a in out.attempts) == 2
