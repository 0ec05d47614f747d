"""The `envsynth` command line. Commands load the other packages lazily, by name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, cast

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from envsynth.errors import ConfigError, EnvsynthError

app = typer.Typer(
    help="Synthesize verified agent tasks, step them as Gymnasium environments, audit them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
generate_app = typer.Typer(
    help="Run a pipeline that generates a verified task dataset.", no_args_is_help=True
)
bench_app = typer.Typer(
    help="Benchmarks: each prints its baseline measured in the same run.", no_args_is_help=True
)
images_app = typer.Typer(
    help="Sandbox images: the bootstrapped base and the layers on it.", no_args_is_help=True
)
app.add_typer(generate_app, name="generate")
app.add_typer(images_app, name="images")
app.add_typer(bench_app, name="bench")
console = Console(stderr=True)
out = Console()

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="SQLite path or SQLAlchemy URL (default: $ENVSYNTH_DB or ./envsynth.db)"
    ),
]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="dataset name")]
ContextStrategyOpt = Annotated[
    str,
    typer.Option(
        help="what the policy sees once its history passes --context-budget: keep_all, "
        "summary, discard_75 or discard_all"
    ),
]
ContextBudgetOpt = Annotated[
    int, typer.Option(help="history size (characters) past which --context-strategy applies")
]
PolicyArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--policy-arg",
        help="backend option KEY=VALUE (repeatable), e.g. base_url=http://127.0.0.1:8000/v1",
    ),
]


def _policy_args(pairs: list[str] | None) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--policy-arg needs KEY=VALUE, got {pair!r}")
        try:
            args[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            args[key] = value
    return args


def _policy(name: str | None, args: list[str] | None, strategy: str, budget: int) -> Any:
    """The policy named (or the default), wrapped in context management unless keep_all."""
    from envsynth.policy import make_policy
    from envsynth.policy.context import ContextManaged, Strategy

    policy = make_policy(_default_policy(name), **_policy_args(args))
    if strategy == "keep_all":
        return policy
    # ContextManaged refuses a strategy it does not know, with the list of those it does.
    return ContextManaged(policy, cast(Strategy, strategy), budget)


def _default_policy(name: str | None) -> str:
    """The policy named, else the bundled model when its weights are installed, else random."""
    from envsynth.policy import bundled_available

    return name or ("bundled" if bundled_available() else "random")


@contextmanager
def _progress() -> Iterator[Any]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _store(db: str | None) -> Any:
    from envsynth.store import Store

    return Store(db)


@generate_app.command("general")
def generate_general(
    db: DbOpt = None,
    dataset: DatasetOpt = "general",
    envs: Annotated[int, typer.Option(help="number of environments")] = 1850,
    seed: Annotated[int, typer.Option(help="base seed; environment i uses seed + i")] = 0,
    families: Annotated[
        str | None, typer.Option(help="comma-separated family names (default: all)")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="JSON file of per-family config overrides")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="worker processes (default: CPU count)")
    ] = None,
    filter_policy: Annotated[
        str | None,
        typer.Option(
            help="policy of the pass@k filter stage, e.g. bundled or openai "
            "(default: no filter stage; see data_cards/model.md for why)"
        ),
    ] = None,
    filter_k: Annotated[int, typer.Option(help="k of the pass@k filter")] = 100,
    policy_arg: PolicyArgOpt = None,
) -> None:
    """Generate the general-agent dataset: synthesized environments, integrity-checked tasks."""
    from pipelines.general.pipeline import GeneralConfig, run_general
    from pipelines.passk_filter import PassKConfig

    overrides = {}
    if config is not None:
        try:
            overrides = orjson.loads(config.read_bytes())
        except (OSError, orjson.JSONDecodeError) as e:
            raise ConfigError(f"cannot read the config overrides {config}: {e}") from None
    # The filter is opt-in: it rejects what its policy cannot solve, so its policy must be
    # able to solve these families. The bundled CPU model solves none of them at the k an
    # hour affords (data_cards/model.md), and would empty the dataset.
    passk = (
        PassKConfig(policy=filter_policy, k=filter_k, policy_args=_policy_args(policy_arg))
        if filter_policy
        else None
    )
    cfg = GeneralConfig(
        dataset=dataset,
        envs=envs,
        seed=seed,
        overrides=overrides,
        passk=passk,
        families=families.split(",") if families else None,
        **({"workers": workers} if workers else {}),
    )
    store = _store(db)
    with _progress() as progress:
        run_id = run_general(cfg, store, progress)
    envs_n, toolsets = store.count_environments(dataset)
    _print_reports(store, run_id)
    out.print(
        f"{store.count_tasks(dataset)} accepted tasks, {envs_n} environments, "
        f"{toolsets} toolsets in {store.url}"
    )


@generate_app.command("code")
def generate_code(
    db: DbOpt = None,
    dataset: DatasetOpt = "code",
    instances: Annotated[
        Path | None, typer.Option(help="SWE-bench-style instance file (JSONL or Parquet)")
    ] = None,
    repos_dir: Annotated[
        Path | None,
        typer.Option(help="local mirrors: DIR/<owner>__<name> or DIR/<owner>/<name>"),
    ] = None,
    github: Annotated[
        list[str] | None, typer.Option(help="mine owner/name on GitHub (repeatable)")
    ] = None,
    limit: Annotated[int, typer.Option(help="most pull requests mined per GitHub repo")] = 50,
    local_repo: Annotated[
        Path | None, typer.Option(help="a local git repository with an issue/PR dump")
    ] = None,
    dump: Annotated[Path | None, typer.Option(help="JSON/JSONL dump of issues and PRs")] = None,
    repo_name: Annotated[
        str | None, typer.Option(help="owner/name of --local-repo (default: its remote)")
    ] = None,
    runs: Annotated[int, typer.Option(help="repeats of every test state")] = 3,
    judge_policy: Annotated[
        str | None, typer.Option(help="policy of the optional LLM judge filter")
    ] = None,
    repair_policy: Annotated[
        str | None, typer.Option(help="policy of the setup agent's repair loop")
    ] = None,
    policy_arg: PolicyArgOpt = None,
) -> None:
    """Generate code-agent tasks from issue–PR pairs, accepted on JUnit F2P > 0 and P2F = 0."""
    from pipelines.code_agent.filters import FilterConfig
    from pipelines.code_agent.pipeline import CodeConfig, run_code
    from pipelines.code_agent.sources import collect_candidates

    candidates, sources = collect_candidates(
        instances=instances,
        repos_dir=repos_dir,
        github=github or [],
        limit=limit,
        local_repo=local_repo,
        dump=dump,
        repo_name=repo_name,
    )
    cfg = CodeConfig(
        dataset=dataset,
        runs=runs,
        filters=FilterConfig(judge=judge_policy is not None),
        judge_policy=judge_policy,
        repair_policy=repair_policy,
        policy_options=_policy_args(policy_arg),
    )
    store = _store(db)
    with _progress() as progress:
        run_id = run_code(cfg, candidates, store, sources=sources, progress=progress)
    _print_reports(store, run_id)
    _print_yield(store, dataset, f"{len(candidates)} candidates")


@generate_app.command("search")
def generate_search(
    db: DbOpt = None,
    dataset: DatasetOpt = "search",
    questions: Annotated[int, typer.Option(help="questions constructed")] = 100,
    seed: Annotated[int, typer.Option(help="seed of the world and of the questions")] = 0,
    world_size: Annotated[int, typer.Option(help="entities in the embedded world")] = 400,
    answer_policy: Annotated[
        list[str] | None,
        typer.Option(help="an answer agent every kept question must defeat (repeatable)"),
    ] = None,
    answer_samples: Annotated[int, typer.Option(help="episodes per question and agent")] = 2,
    policy_arg: PolicyArgOpt = None,
) -> None:
    """Generate search-agent QA: long-tail questions verified by search, unsolved by agents."""
    from pipelines.search_qa.pipeline import SearchConfig, run_search

    cfg = SearchConfig(
        dataset=dataset,
        questions=questions,
        seed=seed,
        world_size=world_size,
        answer_policies=answer_policy or [],
        answer_samples=answer_samples,
        policy_options=_policy_args(policy_arg),
    )
    store = _store(db)
    with _progress() as progress:
        run_id = run_search(cfg, store, progress)
    _print_reports(store, run_id)
    _print_yield(store, dataset, f"{questions} questions")


@generate_app.command("interpreter")
def generate_interpreter(
    db: DbOpt = None,
    dataset: DatasetOpt = "interpreter",
    problems: Annotated[int, typer.Option(help="problems drawn (round-robin over families)")] = 60,
    seed: Annotated[int, typer.Option(help="seed of the draw")] = 0,
    families: Annotated[
        str | None, typer.Option(help="comma-separated family names (default: all)")
    ] = None,
    no_tool_policy: Annotated[
        str | None,
        typer.Option(help="a policy that must fail without the interpreter (e.g. openai)"),
    ] = None,
    no_tool_samples: Annotated[int, typer.Option(help="its answers per problem")] = 4,
    isolation: Annotated[
        str, typer.Option(help="where reference kernels run: auto, docker or local")
    ] = "auto",
    policy_arg: PolicyArgOpt = None,
) -> None:
    """Generate code-interpreter tasks, each verified by its reference run in a Jupyter kernel."""
    from pipelines.interpreter.pipeline import InterpreterConfig, run_interpreter

    cfg = InterpreterConfig.model_validate(
        {
            "dataset": dataset,
            "problems": problems,
            "seed": seed,
            "families": families.split(",") if families else None,
            "no_tool_policy": no_tool_policy,
            "no_tool_samples": no_tool_samples,
            "policy_options": _policy_args(policy_arg),
            "isolation": isolation,
        }
    )
    store = _store(db)
    with _progress() as progress:
        run_id = run_interpreter(cfg, store, progress)
    _print_reports(store, run_id)
    _print_yield(store, dataset, f"{problems} problems")


def _print_yield(store: Any, dataset: str, drawn: str) -> None:
    """The accepted count of a run, of what it drew, and the refusals, as plain text."""
    rejected = store.rejections(dataset)
    refused = ", ".join(f"{k}: {v}" for k, v in rejected.items())
    line = f"{store.count_tasks(dataset)} accepted of {drawn} in {store.url}"
    # Reasons are data: "solved_by:closed_book" must not render as an emoji code.
    out.print(Text(line + (f"; refused: {refused}" if refused else "")))


def _print_reports(store: Any, run_id: str) -> None:
    table = Table(title=f"run {run_id}")
    for col in ("stage", "in", "out", "rejections"):
        table.add_column(col)
    for r in store.run_reports(run_id):
        table.add_row(
            r.stage,
            str(r.items_in),
            str(r.items_out),
            # Reasons are data: "solved_by:closed_book" must not render as an emoji code.
            Text(", ".join(f"{k}: {v}" for k, v in r.rejections.items()) or "–"),
        )
    out.print(table)


@app.command("export")
def export_cmd(
    out_path: Annotated[Path, typer.Option("--out", help="output file")],
    db: DbOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", help="jsonl, parquet or swebench (code tasks)")
    ] = "jsonl",
    dataset: Annotated[str | None, typer.Option(help="dataset (default: all)")] = None,
) -> None:
    """Export accepted tasks, one row per task."""
    from envsynth.export import export

    n = export(_store(db), out_path, fmt, dataset)  # type: ignore[arg-type]
    out.print(f"wrote {n} tasks to {out_path}")


@app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(help="a JSONL file written by `envsynth export`")],
    db: DbOpt = None,
    dataset: Annotated[str | None, typer.Option(help="store under this dataset name")] = None,
) -> None:
    """Import exported JSONL; a file with any bad line imports nothing."""
    from envsynth.export import import_jsonl

    n = import_jsonl(_store(db), path, dataset)
    out.print(f"imported {n} tasks from {path}")


@app.command("card")
def card_cmd(
    db: DbOpt = None,
    dataset: DatasetOpt = "general",
    out_path: Annotated[
        Path | None, typer.Option("--out", help="default data_cards/<dataset>.md")
    ] = None,
) -> None:
    """Write the dataset's data card (HF YAML header, config, yields, pass@k, licenses)."""
    from envsynth.card import write_card

    path = write_card(_store(db), dataset, out_path or Path("data_cards") / f"{dataset}.md")
    out.print(f"wrote {path}")


@app.command("audit")
def audit_cmd(
    db: DbOpt = None,
    dataset: DatasetOpt = "general",
    policy: Annotated[
        str | None, typer.Option(help="default: bundled when present, else random")
    ] = None,
    policy_arg: PolicyArgOpt = None,
    samples: Annotated[int, typer.Option(help="episodes per task (n of pass@k)")] = 8,
    per_family: Annotated[
        int | None, typer.Option(help="audit this many random tasks per family")
    ] = None,
    families: Annotated[
        str | None,
        typer.Option(help="comma-separated families: only their tasks (the same ones drawn)"),
    ] = None,
    max_turns: Annotated[int | None, typer.Option(help="turn budget (default: the env's)")] = None,
    keep_trajectories: Annotated[
        bool, typer.Option("--keep-trajectories", help="store every episode's trajectory")
    ] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="report directory")] = Path("reports"),
    context_strategy: ContextStrategyOpt = "keep_all",
    context_budget: ContextBudgetOpt = 200_000,
) -> None:
    """Audit pass@k: a markdown table per family and a PNG plot."""
    from envsynth.audit import plot, render_markdown, run_audit

    pol = _policy(policy, policy_arg, context_strategy, context_budget)
    store = _store(db)
    with _progress() as progress:
        report = run_audit(
            store,
            dataset,
            pol,
            samples,
            per_family=per_family,
            families=families.split(",") if families else None,
            max_turns=max_turns,
            progress=lambda d, t: progress("audit", d, t),
            on_trajectory=(lambda t: store.put_trajectories([t])) if keep_trajectories else None,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"audit-{dataset}.md"
    md.write_text(render_markdown(report) + f"\n![pass@k](audit-{dataset}.png)\n")
    png = plot(report, out_dir / f"audit-{dataset}.png")
    out.print(render_markdown(report))
    out.print(f"wrote {md} and {png}")


@app.command("list")
def list_cmd(
    what: Annotated[
        str, typer.Argument(help="datasets, tasks, families, runs or policies")
    ] = "datasets",
    db: DbOpt = None,
    dataset: Annotated[str | None, typer.Option(help="for tasks and runs")] = None,
    limit: Annotated[int, typer.Option(help="for tasks")] = 20,
) -> None:
    """List what the store (or the registries) hold."""
    table = Table()
    if what == "families":
        from pipelines.general.family import load_families

        for col in ("family", "variants", "tools", "summary"):
            table.add_column(col)
        for name, fam in load_families().items():
            table.add_row(name, str(len(fam.variants)), str(len(fam.tools)), fam.summary)
    elif what == "policies":
        from envsynth.policy.base import POLICIES, _load_backends

        _load_backends()
        table.add_column("policy")
        for name in POLICIES:
            table.add_row(name)
    elif what == "datasets":
        for col in ("dataset", "kind", "accepted", "rejected"):
            table.add_column(col)
        for d in _store(db).datasets():
            table.add_row(d["name"], d["kind"], str(d["accepted"]), str(d["rejected"]))
    elif what == "tasks":
        store = _store(db)
        for col in ("id", "family", "instruction"):
            table.add_column(col)
        for tid in store.task_ids(dataset=dataset)[:limit]:
            t = store.task(tid)
            table.add_row(t.id, t.family, t.instruction[:90])
    elif what == "runs":
        for col in ("run", "pipeline", "dataset", "status"):
            table.add_column(col)
        for r in _store(db).runs(dataset):
            table.add_row(r["id"], r["pipeline"], r["dataset"], r["status"])
    else:
        raise ConfigError(
            f"cannot list {what!r}; choose datasets, tasks, families, runs or policies"
        )
    out.print(table)


@app.command("show")
def show_cmd(
    item_id: Annotated[str, typer.Argument(help="a task id (t-…) or trajectory id (tr-…)")],
    db: DbOpt = None,
) -> None:
    """Show one task (with its integrity checks) or one trajectory as JSON."""
    store = _store(db)
    if item_id.startswith("tr-"):
        out.print_json(store.trajectory(item_id).model_dump_json())
        return
    task = store.task(item_id)
    data = task.model_dump(mode="json")
    data["integrity_checks"] = [c.model_dump() for c in store.checks(item_id)]
    out.print_json(orjson.dumps(data).decode())


@app.command("rollout")
def rollout_cmd(
    env: Annotated[str, typer.Option(help="Gymnasium id")] = "envsynth/General-v0",
    policy: Annotated[
        str | None, typer.Option(help="policy backend (default: bundled when present, else random)")
    ] = None,
    policy_arg: PolicyArgOpt = None,
    episodes: Annotated[int, typer.Option(help="number of episodes")] = 10,
    db: DbOpt = None,
    dataset: DatasetOpt = "general",
    seed: Annotated[int, typer.Option(help="episode i resets with seed + i")] = 0,
    max_turns: Annotated[int | None, typer.Option(help="turn budget (default: the env's)")] = None,
    context_strategy: ContextStrategyOpt = "keep_all",
    context_budget: ContextBudgetOpt = 200_000,
) -> None:
    """Step an environment with a policy and store the trajectories."""
    from envsynth.rollout import EpisodeSpec, rollout

    store = _store(db)
    policy = _default_policy(policy)
    pol = _policy(policy, policy_arg, context_strategy, context_budget)
    budget = {"max_turns": max_turns} if max_turns else {}
    specs = [
        EpisodeSpec({"dataset": dataset, "db": store.url, **budget}, seed=seed + i)
        for i in range(episodes)
    ]
    trajectories = rollout(env, pol, specs)
    store.put_trajectories(trajectories)
    table = Table(title=f"{episodes} episodes of {env} with {policy}")
    for col in ("trajectory", "task", "turns", "reward", "reason"):
        table.add_column(col)
    for t in trajectories:
        v = t.verdict
        table.add_row(
            t.id,
            t.task_id,
            str(sum(m.role == "assistant" for m in t.messages)),
            f"{v.reward:.2f}" if v else "–",
            (v.reason if v else "")[:50],
        )
    out.print(table)
    mean = sum(t.verdict.reward for t in trajectories if t.verdict) / max(len(trajectories), 1)
    out.print(f"mean reward {mean:.3f}; stored {len(trajectories)} trajectories in {store.url}")


@app.command("replay")
def replay_cmd(
    trajectory_id: Annotated[str, typer.Argument(help="a stored trajectory id (tr-…)")],
    db: DbOpt = None,
    sandbox: Annotated[
        str | None,
        typer.Option(help="sandbox backend for environments that run code: docker or local"),
    ] = None,
) -> None:
    """Re-execute a stored trajectory in a fresh environment; report the first divergence."""
    from envsynth.replay import replay

    store = _store(db)
    trajectory = store.trajectory(trajectory_id)
    task = store.task(trajectory.task_id)
    report = replay(trajectory, task, **({"sandbox": sandbox} if sandbox else {}))
    if report.identical:
        out.print(
            f"identical: {report.messages} messages replayed, reward "
            f"{report.replayed_verdict.reward if report.replayed_verdict else '–'}"
        )
        return
    d = report.divergence
    if d is not None:
        out.print(f"[red]diverges at message {d.index}[/red]")
        out.print(f"recorded: {d.expected.model_dump_json() if d.expected else '(nothing)'}")
        out.print(f"replayed: {d.actual.model_dump_json() if d.actual else '(nothing)'}")
    else:
        rec, rep = report.recorded_verdict, report.replayed_verdict
        out.print(
            f"[red]same messages, different reward[/red]: recorded "
            f"{rec.reward if rec else '–'}, replayed {rep.reward if rep else '–'}"
        )
    raise typer.Exit(1)


@app.command(
    "train",
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    },
    add_help_option=False,
)
def train_cmd(ctx: typer.Context) -> None:
    """Train the bundled DSA model: `envsynth train run|config …` (see `envsynth train --help`)."""
    # A pass-through, so that torch is imported only when training is asked for.
    from model.training.cli import train_app

    train_app(args=ctx.args, prog_name="envsynth train")


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="weights: an `envsynth train` checkpoint, other .safetensors or a torch state "
            "dict (default: the bundled weights, else a random tiny model)"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the random initialisation")] = 0,
    thinking: Annotated[
        bool,
        typer.Option(
            "--thinking/--no-thinking",
            help="open each reply's reasoning block; the bundled model is trained without one",
        ),
    ] = False,
    guided: Annotated[
        bool,
        typer.Option(
            "--guided/--no-guided",
            help='decode tool calls by the tools\' schemas under tool_choice "auto" too',
        ),
    ] = False,
    context: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="the last tokens of a prompt the model sees; 0: all (default: 896 for the "
            "bundled weights, trained on 1,024-token windows; all for other weights)",
        ),
    ] = None,
) -> None:
    """Serve the model over an OpenAI-compatible /v1/chat/completions until interrupted."""
    from model.policy import WEIGHTS, available, default_context
    from model.serve import build_model, serve

    if checkpoint is None and available():
        checkpoint = WEIGHTS
        console.print(f"serving the bundled model ({WEIGHTS})")
    elif checkpoint is None:
        console.print("[yellow]no --checkpoint: serving a randomly initialised tiny model[/yellow]")
    if context is None and checkpoint is not None:
        # The bundled weights see a prompt's tail, as `bundled` does, whether or not the
        # file is named.
        context = default_context(checkpoint)
    model = build_model(checkpoint, seed)
    console.print(f"serving on http://{host}:{port}/v1 (Ctrl-C stops)")
    try:
        serve(
            model,
            host=host,
            port=port,
            block=True,
            thinking=thinking,
            guided=guided,
            context=context or None,
        )
    except KeyboardInterrupt:
        pass


@bench_app.command("synthesis")
def bench_synthesis(
    envs: Annotated[int, typer.Option(help="environments to generate")] = 1850,
    steps: Annotated[int, typer.Option(help="steps timed for the overhead measurement")] = 20000,
    workers: Annotated[int | None, typer.Option(help="worker processes")] = None,
) -> None:
    """Time default generation with every integrity check, and env step overhead vs a bare env."""
    from envsynth.bench.synthesis import run_bench

    out.print(run_bench(envs=envs, steps=steps, workers=workers))


@images_app.command("build")
def images_build(
    names: Annotated[
        list[str] | None, typer.Argument(help="images to build (default: all)")
    ] = None,
) -> None:
    """Build the base image (debootstrap + docker import) and the toolchain images on it."""
    from sandbox.images import build_images

    for tag in build_images(names or None):
        out.print(f"ready {tag}")


TaskDbOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--task-db",
        help="a store whose code tasks use environment and instance images (repeatable)",
    ),
]
RepoOpt = Annotated[
    str | None, typer.Option(help="only this repository's environment and instance images")
]


@images_app.command("list")
def images_list(task_db: TaskDbOpt = None, repo: RepoOpt = None) -> None:
    """List envsynth's images: toolchains, then code tasks' environment and instance images."""
    from pipelines.code_agent.task_images import existing_stores, task_images
    from sandbox.images import list_images

    stores = existing_stores(task_db or [])
    table = Table()
    for col in ("image", "recipe", "size MB", "created"):
        table.add_column(col)
    for row in list_images():
        table.add_row(row["tag"], row["recipe"], f"{row['size_mb']:.0f}", row["created"])
    out.print(table)
    rows = task_images(stores, repo)
    if not rows:
        return
    table = Table(
        title="environment and instance images of code tasks",
        caption="sizes count the layers an image shares with others",
    )
    for col in ("image", "kind", "repo", "size MB", "tasks"):
        table.add_column(col)
    for r in rows:
        uses = str(r.tasks) if stores else "–"
        table.add_row(r.tag, r.kind, r.repo, f"{r.size_mb:.0f}", uses)
    out.print(table)
    if not stores:
        out.print("tasks: name the stores that use these images with --task-db")


@images_app.command("prune")
def images_prune(
    keep_current: Annotated[bool, typer.Option(help="keep images of the current recipes")] = True,
    task_db: TaskDbOpt = None,
    repo: RepoOpt = None,
) -> None:
    """Remove envsynth images whose recipe is no longer current (or all of them), untagged
    leftovers of our builds, and, with --task-db, the environment and instance images no
    task of those stores uses."""
    from pipelines.code_agent.task_images import existing_stores, prune_task_images, task_images
    from sandbox.images import prune_images

    stores = existing_stores(task_db or [])
    removed = prune_task_images(stores, repo) if stores else []
    removed += prune_images(keep_current=keep_current)
    for tag in removed:
        out.print(f"removed {tag}")
    if not stores and (kept := task_images(repo=repo)):
        out.print(
            f"kept {len(kept)} environment and instance image tags: name the stores whose "
            "tasks use them with --task-db to prune the others"
        )


@bench_app.command("kernels")
def bench_kernels(
    lengths: Annotated[str | None, typer.Option(help="comma-separated T, e.g. 8192,131072")] = None,
    shapes: Annotated[
        str | None, typer.Option(help="comma-separated presets: ours,deepseek")
    ] = None,
    repeats: Annotated[int, typer.Option(help="timed repeats per measure")] = 5,
) -> None:
    """DSA attention (indexer + top-k + sparse attention) vs dense causal SDPA, on a GPU."""
    from envsynth.bench.kernels import run_bench

    out.print(
        run_bench(
            lengths=[int(x) for x in lengths.split(",")] if lengths else None,
            shapes=shapes.split(",") if shapes else None,
            repeats=repeats,
        )
    )


@bench_app.command("generation")
def bench_generation(
    tasks: Annotated[int, typer.Option(help="tasks, one per family")] = 4,
    samples: Annotated[int, typer.Option(help="episodes per task")] = 4,
    turns: Annotated[int, typer.Option(help="turn budget of an episode")] = 6,
    max_tokens: Annotated[int, typer.Option(help="most tokens a turn")] = 128,
) -> None:
    """Bundled-model episodes: prefix reuse vs whole-prompt prefill, and the policy defaults."""
    from envsynth.bench.generation import run_bench

    out.print(run_bench(tasks=tasks, samples=samples, turns=turns, max_tokens=max_tokens))


@bench_app.command("grpo")
def bench_grpo(
    sequences: Annotated[int, typer.Option(help="sampled sequences in the update")] = 24,
    tokens: Annotated[int, typer.Option(help="tokens sampled per sequence")] = 48,
    repeats: Annotated[int, typer.Option(help="timed repeats per setting")] = 2,
) -> None:
    """One GRPO update of the bundled model: one sequence per forward vs padded batches."""
    from envsynth.bench.grpo import run_bench

    out.print(run_bench(sequences=sequences, tokens=tokens, repeats=repeats))


@bench_app.command("code")
def bench_code(
    python: Annotated[int, typer.Option(help="generated Python repositories")] = 3,
    javascript: Annotated[int, typer.Option(help="generated JavaScript repositories")] = 1,
    go: Annotated[int, typer.Option(help="generated Go repositories")] = 1,
    runs: Annotated[int, typer.Option(help="validation repeats per state")] = 3,
    modules: Annotated[int, typer.Option(help="modules (test files) per repository")] = 8,
    tests: Annotated[int, typer.Option(help="tests per module")] = 50,
    work: Annotated[int, typer.Option(help="loop iterations per test")] = 20000,
    sdists: Annotated[
        bool,
        typer.Option(
            "--sdists",
            help="also run the setup agent on package sdists (needs the package index; minutes)",
        ),
    ] = False,
    keep_images: Annotated[
        bool, typer.Option("--keep-images", help="leave the bench's images in docker")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the figures to this JSON file")
    ] = None,
) -> None:
    """Code instances: env build cold/cached, validation vs raw suite time, disk per instance."""
    from envsynth.bench.code import code_table, run_code_bench

    report = run_code_bench(
        python=python,
        javascript=javascript,
        go=go,
        runs=runs,
        modules=modules,
        tests_per_module=tests,
        work=work,
        sdists=sdists,
        keep_images=keep_images,
        # markup off: pip extras such as [test,tests] would read as rich markup
        log=lambda line: console.print(line, style="dim", markup=False, highlight=False),
    )
    out.print(code_table(report))
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


@bench_app.command("sandbox")
def bench_sandbox(
    n: Annotated[int, typer.Option(help="commands timed per measure")] = 200,
) -> None:
    """Sandbox latencies (p50/p95) with their baselines: cold vs warm, shell vs docker exec."""
    from envsynth.bench.sandbox import run_bench

    out.print(run_bench(n=n))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted: what was finished is stored; run the same command "
            "again to resume[/yellow]"
        )
        sys.exit(130)
    except EnvsynthError as e:
        console.print(f"[red]error:[/red] {e}")
        sys.exit(2)
    except ValidationError as e:
        console.print(f"[red]invalid option:[/red] {e}")
        sys.exit(2)
