"""Where code candidates come from: each source yields `CodeCandidate`s of one shape.

- `github`: GitHub's REST API (`GitHubClient`, `mine_pairs`).
- `local_dump`: a local git repository plus a JSON/JSONL dump of its issues and PRs.
- `instances`: SWE-bench-style instance files paired with local repository mirrors.
"""

from pipelines.code_agent.sources.collect import collect_candidates
from pipelines.code_agent.sources.github import (
    GitHubAuthError,
    GitHubClient,
    GitHubError,
    GitHubNotFoundError,
    GitHubRateLimitError,
    mine_pairs,
)
from pipelines.code_agent.sources.instances import InstanceFileError, read_instances
from pipelines.code_agent.sources.local_dump import DumpFormatError, read_local

__all__ = [
    "collect_candidates",
    "DumpFormatError",
    "GitHubAuthError",
    "GitHubClient",
    "GitHubError",
    "GitHubNotFoundError",
    "GitHubRateLimitError",
    "InstanceFileError",
    "mine_pairs",
    "read_instances",
    "read_local",
]
