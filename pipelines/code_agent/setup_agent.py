"""The environment-setup agent: from a bare repository to an image whose tests run.

1. `detect` guesses language, build system and test framework from the files.
2. The install plan's steps are tried in order, each alternative as one more layer of a
   docker build on the toolchain image (with network); docker's layer cache makes every
   trial extend the last good state instead of starting over. A failed alternative's layer
   is discarded, so only the commands that succeeded stay in the recipe.
3. The recipe is built into the tagged environment image, and a test run in a hardened
   sandbox without network must produce a report with at least one test.
4. With a Policy configured, failures go to an agentic repair loop: the model reads the
   errors and proposes one shell command at a time, for a bounded number of steps; a command
   that builds is appended to the recipe and the test run is tried again.

Nothing here is written per repository: the same code sets up every repository it supports.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from envsynth.policy.base import Policy, PolicyRequest, generate
from envsynth.schema import Message, SamplingParams
from pipelines.code_agent.candidate import CodeAgentError
from pipelines.code_agent.detect import RepoProfile, detect
from pipelines.code_agent.environment import (
    RepoTree,
    build,
    build_env_image,
    cached_env_images,
    env_context,
    env_dockerfile,
    remove_image,
    toolchain_tag,
)
from pipelines.code_agent.recipes import EnvRecipe, install_plan, suite_command
from pipelines.code_agent.runner import TestRun, run_suite

LOG_TAIL = 2000


class Attempt(BaseModel):
    """One command the agent tried."""

    model_config = ConfigDict(extra="forbid")

    step: str
    command: str
    ok: bool
    seconds: float
    log_tail: str = ""


class SetupOutcome(BaseModel):
    """What the setup agent did for one repository tree.

    `image` and `recipe` are set when it worked; `reason` says why when it did not.
    """

    model_config = ConfigDict(extra="forbid")

    repo: str
    tree: str
    profile: dict[str, str] = Field(default_factory=dict)
    recipe: EnvRecipe | None = None
    image: str | None = None
    cached: bool = False
    reason: str | None = None
    detail: str = ""
    attempts: list[Attempt] = Field(default_factory=list)
    verify: TestRun | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.image is not None


def setup_environment(
    repo: str,
    tree: RepoTree,
    *,
    policy: Policy | None = None,
    repair_steps: int = 6,
    use_cache: bool = True,
    log: Callable[[str], None] | None = None,
) -> SetupOutcome:
    """Build a working environment image for `repo` at `tree`; see the module docstring."""
    start = time.monotonic()
    out = SetupOutcome(repo=repo, tree=tree.tree)
    say = log or (lambda _msg: None)
    try:
        profile = detect(tree.path)
    except CodeAgentError as e:
        out.reason, out.detail = "setup:unknown_build_system", str(e)
        return _done(out, start)
    out.profile = {
        "language": profile.language,
        "build_system": profile.build_system,
        "test_framework": profile.test_framework,
    }
    if use_cache:
        for tag, recipe in cached_env_images(repo, tree.tree):
            out.image, out.recipe, out.cached = tag, recipe, True
            say(f"{repo}: cached environment {tag}")
            return _done(out, start)
    base = toolchain_tag(profile.toolchain)
    kept: list[str] = []
    for step in install_plan(profile, tree.path):
        ok = False
        for command in step.alternatives:
            attempt = _try(base, kept, command, tree, step.name)
            out.attempts.append(attempt)
            say(f"{repo}: {step.name}: {command} → {'ok' if attempt.ok else 'failed'}")
            if attempt.ok:
                kept.append(command)
                ok = True
                break
        if not ok and step.required:
            if policy is None:
                out.reason = f"setup:step_failed:{step.name}"
                out.detail = out.attempts[-1].log_tail
                return _done(out, start)
            if not _repair(policy, base, kept, tree, profile, out, repair_steps, say):
                out.reason = f"setup:step_failed:{step.name}"
                return _done(out, start)
    recipe = _recipe(repo, profile, kept)
    while True:
        image = build_env_image(recipe, tree)
        run = run_suite(image, recipe)
        out.verify = run
        if run.results:
            out.image, out.recipe = image, recipe
            return _done(out, start)
        remove_image(image)
        if policy is None or not _repair(
            policy, base, kept, tree, profile, out, repair_steps, say, run.log
        ):
            out.reason = "setup:no_test_results"
            out.detail = (run.problem or "") + "\n" + run.log[-LOG_TAIL:]
            return _done(out, start)
        recipe = _recipe(repo, profile, kept)


def _recipe(repo: str, profile: RepoProfile, install: list[str]) -> EnvRecipe:
    return EnvRecipe(
        repo=repo,
        language=profile.language,
        build_system=profile.build_system,
        test_framework=profile.test_framework,
        toolchain=profile.toolchain,
        install=tuple(install),
        test_command=suite_command(profile),
    )


def _try(base: str, kept: list[str], command: str, tree: RepoTree, step: str) -> Attempt:
    result = build(env_dockerfile(base, [*kept, command]), env_context(tree))
    return Attempt(
        step=step,
        command=command,
        ok=result.image_id is not None,
        seconds=result.seconds,
        log_tail=result.log[-LOG_TAIL:],
    )


REPAIR_PROMPT = """You are setting up the development environment of the repository {repo} \
({language}, {build_system}, tests with {framework}) inside a Debian container, as root, in \
{workdir}, with network access. These commands already succeeded, in order:
{kept}
The last problem:
{problem}
Reply with JSON only: {{"command": "<one shell command to run next>"}}, or {{"give_up": true}} \
if nothing can fix it."""


def _repair(
    policy: Policy,
    base: str,
    kept: list[str],
    tree: RepoTree,
    profile: RepoProfile,
    out: SetupOutcome,
    steps: int,
    say: Callable[[str], None],
    problem: str = "",
) -> bool:
    """Ask the policy for commands until one builds; True when one was added to `kept`.

    `steps` bounds the repair attempts of the whole set-up, not of this call.
    """
    problem = problem or (out.attempts[-1].log_tail if out.attempts else "")
    used = sum(a.step == "repair" for a in out.attempts)
    for i in range(used, steps):
        prompt = REPAIR_PROMPT.format(
            repo=out.repo,
            language=profile.language,
            build_system=profile.build_system,
            framework=profile.test_framework,
            workdir="/work/repo",
            kept="\n".join(f"$ {c}" for c in kept) or "(none)",
            problem=problem[-LOG_TAIL:] or "(none)",
        )
        request = PolicyRequest(
            messages=[Message(role="user", content=prompt)],
            sampling=SamplingParams(temperature=0.0, seed=i),
        )
        [reply] = generate(policy, [request])
        command = _command(reply.message.content or "")
        if command is None:
            say(f"{out.repo}: repair: no command in the reply; stopping")
            return False
        attempt = _try(base, kept, command, tree, "repair")
        out.attempts.append(attempt)
        say(f"{out.repo}: repair: {command} → {'ok' if attempt.ok else 'failed'}")
        if attempt.ok:
            kept.append(command)
            return True
        problem = attempt.log_tail
    return False


def _command(text: str) -> str | None:
    """The command of a repair reply (a JSON object, possibly inside a code fence)."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if not match:
        return None
    try:
        reply = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    command = reply.get("command") if isinstance(reply, dict) else None
    return command.strip() if isinstance(command, str) and command.strip() else None


def _done(out: SetupOutcome, start: float) -> SetupOutcome:
    out.seconds = time.monotonic() - start
    return out
