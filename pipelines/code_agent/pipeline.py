"""The code-agent pipeline: candidates → filters → setup → three-state validation → tasks.

Each candidate is one unit of work, written to the store in one transaction with its stage
reports, so a run killed half-way resumes where it stopped (finished candidates are skipped;
environment and instance images are found again by their content hashes, not rebuilt).
Every candidate ends as a stored task, accepted or with the stable reason it was refused, so
the data card can show the yield of every stage.

Environments are shared per repository and environment commit (SWE-bench's
`environment_setup_commit`, else the base commit of the repository's earliest candidate).
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envsynth.ids import content_hash
from envsynth.policy.base import Policy, make_policy
from envsynth.schema import CodeInstance, Provenance, StageReport, Task
from envsynth.store import Store
from pipelines.code_agent.candidate import CodeAgentError, CodeCandidate
from pipelines.code_agent.environment import RepoTree, build_instance_image, export_tree
from pipelines.code_agent.filters import FilterConfig, check_candidate, judge_candidate
from pipelines.code_agent.runner import TestRun, suite_runner
from pipelines.code_agent.setup_agent import SetupOutcome, setup_environment
from pipelines.code_agent.validate import Validation, validate
from pipelines.code_agent.workspace import SYSTEM_PROMPT, TOOLS

PIPELINE = "code_agent"
PIPELINE_VERSION = "1"
STAGES = ("source", "filter", "setup", "validate")
Progress = Callable[[str, int, int], None]


class CodeConfig(BaseModel):
    """What defines a code dataset run (sources are given to `run_code` separately)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "code"
    runs: int = Field(3, ge=1)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    judge_policy: str | None = None
    repair_policy: str | None = None
    policy_options: dict[str, Any] = Field(default_factory=dict)
    repair_steps: int = Field(6, ge=0)


def run_code(
    config: CodeConfig,
    candidates: Sequence[CodeCandidate],
    store: Store,
    *,
    sources: Sequence[str] = (),
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> str:
    """Run (or resume) the pipeline over `candidates`; returns the run id."""
    run_id = (
        "run-code-"
        + content_hash(
            {"config": config.model_dump(), "candidates": [c.instance_id for c in candidates]}
        )[:16]
    )
    store.ensure_dataset(config.dataset, "code", {**config.model_dump(), "sources": list(sources)})
    store.start_run(run_id, PIPELINE, config.dataset, config.model_dump())
    done = store.done_chunks(run_id)
    judge = _policy(config.judge_policy, config) if config.filters.judge else None
    repair = _policy(config.repair_policy, config)
    groups: dict[tuple[str, str], list[CodeCandidate]] = defaultdict(list)
    for c in sorted(candidates, key=lambda c: (c.repo, c.created_at, c.instance_id)):
        groups[(c.repo, c.environment_setup_commit or "")].append(c)
    finished, total = 0, len(candidates)
    with tempfile.TemporaryDirectory(prefix="envsynth-code-") as tmp:
        for (_repo, env_commit), members in groups.items():
            # Fixed per group from its earliest member, done or not, so a resumed run builds
            # the same environment as an uninterrupted one.
            env_commit = env_commit or members[0].base_commit
            setup: SetupOutcome | None = None
            env_tree: RepoTree | None = None
            for cand in members:
                chunk = "cand-" + content_hash(cand.model_dump())[:16]
                if chunk in done:
                    finished += 1
                    continue
                reports = {s: StageReport(stage=s) for s in STAGES}
                reports["source"].items_in = reports["source"].items_out = 1
                t0 = time.perf_counter()
                rejection, detail = _filter(cand, config, judge, reports["filter"])
                reports["filter"].seconds = time.perf_counter() - t0
                evidence: dict[str, Any] = {}
                reached_setup = rejection is None
                if reached_setup:
                    setup_seconds = 0.0  # the group's set-up is counted once, where it ran
                    if env_tree is None:
                        env_tree, setup = _setup(cand, env_commit, Path(tmp), repair, config, log)
                        setup_seconds = 0.0 if setup.cached else setup.seconds
                    rejection, detail, evidence = _validate(
                        cand, env_tree, setup, setup_seconds, Path(tmp), config, store, reports
                    )
                task = _task(
                    cand, config, rejection, detail, setup if reached_setup else None, evidence
                )
                store.write_chunk(run_id, chunk, list(reports.values()), tasks=[(task, rejection)])
                finished += 1
                if log:
                    log(f"{cand.instance_id}: {rejection or 'accepted'}")
                if progress:
                    progress("code", finished, total)
    store.finish_run(run_id)
    return run_id


def _policy(name: str | None, config: CodeConfig) -> Policy | None:
    return make_policy(name, **config.policy_options) if name else None


def _filter(
    cand: CodeCandidate, config: CodeConfig, judge: Policy | None, report: StageReport
) -> tuple[str | None, str]:
    report.items_in = 1
    decision = check_candidate(cand, config.filters)
    if decision.ok and judge is not None:
        decision = judge_candidate(cand, judge)
    if not decision.ok:
        report.reject(decision.reason or "filter:rejected")
        return decision.reason or "filter:rejected", decision.detail
    report.items_out = 1
    return None, ""


def _setup(
    cand: CodeCandidate,
    env_commit: str,
    tmp: Path,
    repair: Policy | None,
    config: CodeConfig,
    log: Callable[[str], None] | None,
) -> tuple[RepoTree, SetupOutcome]:
    if not cand.repo_path:
        raise CodeAgentError(f"{cand.instance_id} has no local mirror (repo_path) to build from")
    dest = tmp / ("env-" + content_hash([cand.repo, env_commit])[:12])
    tree = export_tree(cand.repo_path, env_commit, dest)
    outcome = setup_environment(
        cand.repo, tree, policy=repair, repair_steps=config.repair_steps, log=log
    )
    return tree, outcome


def _validate(
    cand: CodeCandidate,
    env_tree: RepoTree,
    setup: SetupOutcome | None,
    setup_seconds: float,
    tmp: Path,
    config: CodeConfig,
    store: Store,
    reports: dict[str, StageReport],
) -> tuple[str | None, str, dict[str, Any]]:
    """Set-up and validation stages of one candidate: (rejection, detail, evidence)."""
    assert setup is not None
    reports["setup"].items_in = 1
    reports["setup"].seconds = setup_seconds
    if not setup.ok or setup.recipe is None or setup.image is None:
        reason = setup.reason or "setup:failed"
        reports["setup"].reject(reason)
        return reason, setup.detail, {}
    t0 = time.perf_counter()
    dest = tmp / ("inst-" + content_hash(cand.instance_id)[:12])
    tree = env_tree if cand.base_commit == env_tree.commit else None
    if tree is None:
        tree = export_tree(cand.repo_path or "", cand.base_commit, dest)
    image = build_instance_image(setup.image, env_tree.files, tree, cand.instance_id)
    reports["setup"].items_out = 1
    reports["setup"].seconds += time.perf_counter() - t0
    reports["validate"].items_in = 1
    t1 = time.perf_counter()
    with suite_runner(image, setup.recipe) as run:
        result = validate(run, cand.test_patch, cand.patch, runs=config.runs)
    reports["validate"].seconds = time.perf_counter() - t1
    evidence = _evidence(result, store)
    evidence.update(image=image, env_image=setup.image, recipe=setup.recipe.model_dump())
    if result.rejection:
        reports["validate"].reject(result.rejection)
        return result.rejection, result.detail, evidence
    reports["validate"].items_out = 1
    return None, "", evidence


def _evidence(result: Validation, store: Store) -> dict[str, Any]:
    """Every state's runs (logs stored by hash) and the lists validation produced."""

    def row(run: TestRun) -> dict[str, Any]:
        data = run.model_dump(mode="json", exclude={"log"})
        data["log_sha256"] = store.put_blob(run.log.encode("utf-8", "surrogateescape"))
        return data

    return {
        "runs": {state: [row(r) for r in runs] for state, runs in result.runs.items()},
        "fail_to_pass": result.outcome.fail_to_pass,
        "pass_to_pass": result.outcome.pass_to_pass,
        "flaky": result.outcome.flaky,
        "fail_to_fail": result.outcome.fail_to_fail,
        "pass_to_fail": result.outcome.pass_to_fail,
    }


def _task(
    cand: CodeCandidate,
    config: CodeConfig,
    rejection: str | None,
    detail: str,
    setup: SetupOutcome | None,
    evidence: dict[str, Any],
) -> Task:
    """The stored task. Its id hashes what defines it; run evidence is added after."""
    evidence = dict(evidence)
    f2p, p2p = evidence.pop("fail_to_pass", []), evidence.pop("pass_to_pass", [])
    if rejection is not None:
        f2p, p2p = [], []
    payload = CodeInstance(
        repo=cand.repo,
        base_commit=cand.base_commit,
        patch=cand.patch,
        test_patch=cand.test_patch,
        problem_statement=cand.problem_statement,
        fail_to_pass=f2p,
        pass_to_pass=p2p,
        extra={
            "instance_id": cand.instance_id,
            "version": cand.version,
            "created_at": cand.created_at,
            "environment_setup_commit": cand.environment_setup_commit,
            "hints_text": cand.hints_text,
            "source": cand.source,
        },
    )
    task = Task.build(
        kind="code",
        family=cand.repo,
        env_id=f"code:{cand.repo}",
        dataset=config.dataset,
        instruction=cand.problem_statement,
        system_prompt=SYSTEM_PROMPT,
        tools=TOOLS,
        payload=payload,
        provenance=Provenance(
            pipeline=PIPELINE,
            version=PIPELINE_VERSION,
            sources=[f"{cand.source}:{cand.repo}#{cand.pull_number or cand.instance_id}"],
        ),
    )
    extra = {
        **payload.extra,
        **evidence,
        "rejection_detail": detail[-4000:],
        "setup": _setup_record(setup),
    }
    return task.model_copy(update={"payload": payload.model_copy(update={"extra": extra})})


def _setup_record(setup: SetupOutcome | None) -> dict[str, Any]:
    if setup is None:
        return {}
    return {
        "profile": setup.profile,
        "cached": setup.cached,
        "seconds": round(setup.seconds, 3),
        "reason": setup.reason,
        "attempts": [a.model_dump(exclude={"log_tail"}) for a in setup.attempts],
    }
