"""Data cards: a Hugging Face dataset-card YAML header, then how the data was made and cut.

Built only from what the store recorded (dataset config, stage reports, tasks, audits), so
a card can be regenerated at any time and never disagrees with the data.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import yaml

from envsynth.passk import default_ks
from envsynth.store import Store

_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]

LIMITATIONS = {
    "general": [
        "Environments are synthesized from templates by seeded generators: their language is "
        "more regular than real users' requests.",
        "States are small (tens of records) so that exact solvers can certify optimal answers.",
        "Integrity checks prove that the reference passes and that a no-op and near-miss "
        "solutions fail; they cannot prove that no other unintended solution passes.",
        "Without a filter policy the pass@k stage is skipped, and tasks are not yet known to be "
        "solvable by any model.",
    ],
}


def _size(n: int) -> str:
    return next((label for limit, label in _SIZES if n < limit), "n>1M")


def _histogram(values: list[float], bins: int = 10) -> list[tuple[str, int]]:
    counts = [0] * bins
    for v in values:
        counts[min(int(v * bins), bins - 1)] += 1
    return [
        (f"[{i / bins:.1f}, {(i + 1) / bins:.1f}{']' if i == bins - 1 else ')'}", c)
        for i, c in enumerate(counts)
    ]


def render_card(store: Store, dataset: str) -> str:
    """The card of `dataset` as Markdown."""
    config = store.dataset_config(dataset)
    runs = store.runs(dataset)
    tasks = list(store.iter_tasks(dataset=dataset, accepted=True))
    kind = (
        tasks[0].kind
        if tasks
        else next((d["kind"] for d in store.datasets() if d["name"] == dataset), "general")
    )
    licenses = sorted({lic for t in tasks for lic in t.provenance.licenses}) or ["unknown"]
    envs, toolsets = store.count_environments(dataset)
    if not envs:
        # Only the general pipeline stores environments of their own; elsewhere a task's
        # env_id and toolset say what it runs in.
        envs = len({t.env_id for t in tasks})
        toolsets = len({tuple(sorted(tool.name for tool in t.tools)) for t in tasks})
    header = {
        "pretty_name": f"envsynth {dataset}",
        "license": licenses[0].lower() if len(licenses) == 1 else "other",
        "task_categories": ["reinforcement-learning", "text-generation"],
        "tags": ["agents", "tool-use", "rl-environments", "envsynth", kind],
        "size_categories": [_size(len(tasks))],
        "configs": [{"config_name": "default", "data_files": f"{dataset}.jsonl"}],
    }
    out = [
        "---",
        yaml.safe_dump(header, sort_keys=False).strip(),
        "---",
        "",
        f"# Dataset card: `{dataset}`",
        "",
        f"{len(tasks)} accepted **{kind}** tasks over {envs} environments with {toolsets} "
        "distinct toolsets, generated and verified by envsynth. Every task was accepted by "
        "the checks below; the code that accepted it is the code that grades an agent on it.",
        "",
        "## Generation config",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=True).strip(),
        "```",
        "",
    ]
    for run in runs:
        out.append(f"- run `{run['id']}`: {run['status']}")
    out += [
        "",
        "## Yield of every stage",
        "",
        "| stage | in | out | yield | worker seconds | rejections |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    stages = [r for run in runs for r in store.run_reports(run["id"])]
    for r in stages:
        reasons = ", ".join(
            f"{k}: {v}" for k, v in sorted(r.rejections.items(), key=lambda x: -x[1])
        )
        ratio = f"{r.items_out / r.items_in:.1%}" if r.items_in else "–"
        out.append(
            f"| {r.stage} | {r.items_in} | {r.items_out} | {ratio} | {r.seconds:.1f} "
            f"| {reasons or '–'} |"
        )
    if not any(r.stage == "passk" for r in stages):
        out += ["", "The pass@k filter stage was not run (no filter policy was named)."]
    out += [
        "",
        "## Families",
        "",
        "| family | environments | tasks | variants |",
        "| --- | ---: | ---: | ---: |",
    ]
    per_family: dict[str, Counter[str]] = defaultdict(Counter)
    env_ids: dict[str, set[str]] = defaultdict(set)
    variants: dict[str, set[str]] = defaultdict(set)
    for t in tasks:
        per_family[t.family]["tasks"] += 1
        env_ids[t.family].add(t.env_id)
        variants[t.family].add(getattr(t.payload, "variant", ""))
    for fam in sorted(per_family):
        out.append(
            f"| {fam} | {len(env_ids[fam])} | {per_family[fam]['tasks']} | {len(variants[fam])} |"
        )
    out += _passk_section(store, dataset, tasks)
    out += [
        "",
        "## Licenses",
        "",
        *(f"- {lic}" for lic in licenses),
        "",
        "Synthesized content; no third-party text is included.",
        "",
        "## Limitations",
        "",
        *(f"- {x}" for x in LIMITATIONS.get(kind, [])),
        "",
    ]
    return "\n".join(out)


def _passk_section(store: Store, dataset: str, tasks: list) -> list[str]:  # type: ignore[type-arg]
    audit = store.latest_audit(dataset)
    if audit is not None:
        source = f"audit `{audit.id}` of policy `{audit.policy}`, {audit.samples} samples per task"
        values = [d.pass_at.get(1, 0.0) for d in audit.per_task.values()]
        k = max(audit.ks)
        at_k = [d.pass_at.get(k, 0.0) for d in audit.per_task.values()]
    else:
        rated = [t.difficulty for t in tasks if t.difficulty is not None]
        if not rated:
            return ["", "## pass@k", "", "No pass@k estimate yet: run `envsynth audit`."]
        source = f"filter policy `{rated[0].policy}`, {rated[0].samples} samples per task"
        values = [d.pass_at.get(1, 0.0) for d in rated]
        k = max(default_ks(rated[0].samples))
        at_k = [d.pass_at.get(k, 0.0) for d in rated]
    out = [
        "",
        "## pass@k",
        "",
        f"From {source}: {sum(v > 0 for v in at_k)}/{len(at_k)} tasks have pass@{k} > 0.",
        "",
        "| pass@1 | tasks |",
        "| --- | ---: |",
    ]
    out += [f"| {label} | {n} |" for label, n in _histogram(values)]
    return out


def write_card(store: Store, dataset: str, out: str | Path) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_card(store, dataset))
    return path
