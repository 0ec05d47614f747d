"""All the candidates a command line asks for, from any mix of sources, with their names."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from envsynth.errors import ConfigError
from pipelines.code_agent.candidate import CodeCandidate
from pipelines.code_agent.sources.github import GitHubClient, mine_pairs
from pipelines.code_agent.sources.instances import find_mirror, read_instances
from pipelines.code_agent.sources.local_dump import read_local


def collect_candidates(
    *,
    instances: Path | None = None,
    repos_dir: Path | None = None,
    github: Sequence[str] = (),
    limit: int = 50,
    local_repo: Path | None = None,
    dump: Path | None = None,
    repo_name: str | None = None,
) -> tuple[list[CodeCandidate], list[str]]:
    """The candidates of every source given, and a description of each source.

    Each source is read whole (and validated) before any work starts, so a bad input fails
    the command at once instead of half-way through a run.
    """
    candidates: list[CodeCandidate] = []
    sources: list[str] = []
    if instances is not None:
        if repos_dir is None:
            raise ConfigError("--instances needs --repos-dir, the directory of repository mirrors")
        candidates += read_instances(instances, repos_dir)
        sources.append(f"instances:{instances.name}")
    if (local_repo is None) != (dump is None):
        raise ConfigError("--local-repo and --dump go together")
    if local_repo is not None and dump is not None:
        candidates += list(read_local(local_repo, dump, repo_name))
        sources.append(f"local:{repo_name or local_repo.name}")
    if github:
        if repos_dir is None:
            raise ConfigError(
                "--github needs --repos-dir with a mirror of each repository "
                "(DIR/<owner>__<name>): environments are built from local clones"
            )
        with GitHubClient() as client:
            for repo in github:
                mirror = find_mirror(repos_dir, repo)
                if mirror is None:
                    raise ConfigError(f"no mirror of {repo} under {repos_dir}")
                candidates += list(mine_pairs(client, repo, limit=limit, repo_path=mirror))
                sources.append(f"github:{repo}")
    if not sources:
        raise ConfigError(
            "give a source: --instances FILE --repos-dir DIR, --github owner/name, "
            "or --local-repo DIR --dump FILE"
        )
    counts = Counter(c.instance_id for c in candidates)
    duplicates = sorted(i for i, n in counts.items() if n > 1)
    if duplicates:
        raise ConfigError(f"the sources give instance ids more than once: {duplicates[:5]}")
    return candidates, sources
