"""pass@k audits: how hard each task is for a policy, per family, as tables and a plot."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import mean

from envsynth.errors import UnknownIdError
from envsynth.ids import content_hash
from envsynth.passk import default_ks
from envsynth.policy.base import Policy
from envsynth.rollout import estimate_difficulty
from envsynth.schema import AuditReport, Difficulty, Task, Trajectory
from envsynth.store import Store


def _sample_tasks(
    store: Store,
    dataset: str,
    per_family: int | None,
    seed: int,
    families: Sequence[str] | None = None,
) -> list[Task]:
    tasks = list(store.iter_tasks(dataset=dataset, accepted=True))
    if per_family is not None:
        by_family: dict[str, list[Task]] = defaultdict(list)
        for t in tasks:
            by_family[t.family].append(t)
        rng = random.Random(seed)
        tasks = [
            t
            for fam in sorted(by_family)
            for t in rng.sample(by_family[fam], min(per_family, len(by_family[fam])))
        ]
    if families is None:
        return tasks
    # Filtered after the draw: a family's tasks are the ones a whole audit would pick.
    present, wanted = {t.family for t in tasks}, set(families)
    for fam in families:
        if fam not in present:
            raise UnknownIdError(f"family in {dataset!r}", fam, present)
    return [t for t in tasks if t.family in wanted]


def family_summary(
    per_task: dict[str, Difficulty], tasks: list[Task], ks: list[int]
) -> dict[str, dict[str, float]]:
    """Per family: tasks, mean pass@k for each k, share of tasks solved at the largest k."""
    by_family: dict[str, list[Difficulty]] = defaultdict(list)
    for t in tasks:
        by_family[t.family].append(per_task[t.id])
    out = {}
    for fam, ds in sorted(by_family.items()):
        row: dict[str, float] = {"tasks": float(len(ds))}
        for k in ks:
            row[f"pass@{k}"] = mean(d.pass_at.get(k, 0.0) for d in ds)
        row["solved"] = mean(float(d.pass_at.get(max(ks), 0.0) > 0) for d in ds)
        out[fam] = row
    return out


def run_audit(
    store: Store,
    dataset: str,
    policy: Policy,
    samples: int,
    *,
    per_family: int | None = None,
    families: Sequence[str] | None = None,
    seed: int = 0,
    max_turns: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_trajectory: Callable[[Trajectory], None] | None = None,
) -> AuditReport:
    """Sample every (or `per_family` random) accepted task `samples` times and store the report.

    `families` keeps only those families' tasks, the same ones an audit of all would draw.

    Raises:
        UnknownIdError: a family of `families` has no accepted task in `dataset`.
    """
    tasks = _sample_tasks(store, dataset, per_family, seed, families)
    ks = default_ks(samples)
    per_task: dict[str, Difficulty] = {}
    step = 100
    for i in range(0, len(tasks), step):
        per_task.update(
            estimate_difficulty(
                policy,
                tasks[i : i + step],
                samples,
                ks,
                max_turns=max_turns,
                on_trajectory=on_trajectory,
            )
        )
        if progress:
            progress(min(i + step, len(tasks)), len(tasks))
    name = f"{policy.info.name}:{policy.info.version}"
    report = AuditReport(
        id="audit-" + content_hash([dataset, name, samples, sorted(per_task)])[:16],
        dataset=dataset,
        policy=name,
        samples=samples,
        ks=ks,
        per_task=per_task,
        per_family=family_summary(per_task, tasks, ks),
    )
    store.put_audit(report)
    return report


def render_markdown(report: AuditReport) -> str:
    ks = report.ks
    lines = [
        f"# pass@k audit of `{report.dataset}`",
        "",
        f"Policy `{report.policy}`, {report.samples} samples per task, "
        f"{len(report.per_task)} tasks.",
        "",
        "| family | tasks | " + " | ".join(f"pass@{k}" for k in ks) + " | solved |",
        "| --- | ---: | " + " | ".join("---:" for _ in ks) + " | ---: |",
    ]
    for fam, row in report.per_family.items():
        lines.append(
            f"| {fam} | {int(row['tasks'])} | "
            + " | ".join(f"{row[f'pass@{k}']:.3f}" for k in ks)
            + f" | {row['solved']:.0%} |"
        )
    total = len(report.per_task) or 1
    overall = sum(d.pass_at.get(max(ks), 0.0) > 0 for d in report.per_task.values())
    lines += [
        "",
        f"Tasks with pass@{max(ks)} > 0: {overall}/{len(report.per_task)} "
        f"({overall / total:.1%}). A task with pass@{max(ks)} = 0 would be cut by a pass@k "
        "filter with this policy.",
    ]
    return "\n".join(lines) + "\n"


def plot(report: AuditReport, path: str | Path) -> Path:
    """pass@k curves per family (left) and the pass@1 histogram of all tasks (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for fam, row in report.per_family.items():
        left.plot(report.ks, [row[f"pass@{k}"] for k in report.ks], marker="o", label=fam)
    left.set_xscale("log", base=2)
    left.set(
        xlabel="k",
        ylabel="mean pass@k",
        title=f"pass@k per family — {report.policy}",
        ylim=(-0.02, 1.02),
    )
    left.legend(fontsize=6, ncol=2)
    right.hist([d.pass_at.get(1, 0.0) for d in report.per_task.values()], bins=20, range=(0, 1))
    right.set(xlabel="pass@1", ylabel="tasks", title="pass@1 over tasks")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
