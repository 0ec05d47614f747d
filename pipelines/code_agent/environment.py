"""Repository trees and the two image layers a code task runs in.

- `export_tree` writes the files of one commit and a fresh one-commit git repository over
  them: the agent gets `git diff` and `git status`, and nothing of the history — in
  particular not the commits after the base that hold the fix.
- The **environment image** (`envsynth/env-<owner>__<name>:<hash>`) is the toolchain image plus
  the repository at one commit and its installed dependencies; it is keyed by the recipe and
  that commit's tree, so the instances of a repository share it.
- The **instance image** (`envsynth/inst-<instance>:<hash>`) is a thin layer on it: the
  environment commit's files and git metadata are removed, the instance's base tree is copied
  in. What it adds above the environment image is the disk one instance costs.

Sandboxes mount `REPO_DIR`'s parent from the image (`SandboxSpec.workdir_from_image`), so
each run starts from exactly this content on a volume that goes with its container.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from docker.errors import APIError, BuildError, ImageNotFound

from envsynth.ids import content_hash
from pipelines.code_agent.candidate import CodeAgentError
from pipelines.code_agent.recipes import REPO_DIR, EnvRecipe
from sandbox.docker_sandbox import USER, docker_client
from sandbox.images import IMAGE_LABEL, ensure_image, remove_quietly

ENV_LABEL = "envsynth.env"  # the recipe digest of an environment image
RECIPE_JSON_LABEL = "envsynth.env-recipe"
TREE_LABEL = "envsynth.tree"
REPO_LABEL = "envsynth.repo"
STEP_TIMEOUT_S = 900
# Dependency and build output the agent's `git add -A` should never pick up.
GIT_EXCLUDES = (
    "node_modules/",
    "*.egg-info/",
    "__pycache__/",
    ".pytest_cache/",
    "build/",
    "vendor/",
    "target/",
)
_GIT_ID = {
    "GIT_AUTHOR_NAME": "envsynth",
    "GIT_AUTHOR_EMAIL": "envsynth@localhost",
    "GIT_COMMITTER_NAME": "envsynth",
    "GIT_COMMITTER_EMAIL": "envsynth@localhost",
    # A fixed date makes the fresh repository, and so the image layer, reproducible.
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}


@dataclass(frozen=True)
class RepoTree:
    """The files of one commit, exported to `path` with a fresh one-commit repository.

    Attributes:
        path: the directory holding the files (and the new `.git`).
        commit: the source commit.
        tree: git's tree hash of that commit: the content key of the files.
        files: the paths of the files, relative to `path`.
    """

    path: Path
    commit: str
    tree: str
    files: tuple[str, ...]


def git(repo: Path, *args: str, input: bytes | None = None, env: dict | None = None) -> bytes:
    """Run git in `repo`; `CodeAgentError` with git's message when it fails."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=input,
        capture_output=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
    )
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip()
        raise CodeAgentError(f"git {' '.join(args[:2])} failed in {repo}: {msg}")
    return proc.stdout


def export_tree(repo_path: str | Path, commit: str, dest: Path) -> RepoTree:
    """Write `commit`'s files to the empty directory `dest`, under a fresh repository."""
    repo = Path(repo_path)
    tree = git(repo, "rev-parse", f"{commit}^{{tree}}").decode().strip()
    archive = git(repo, "archive", "--format=tar", commit)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise CodeAgentError(f"{dest} is not empty; a tree is exported into an empty directory")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="tar")
    files = tuple(git(repo, "ls-tree", "-r", "-z", "--name-only", commit).decode().split("\0")[:-1])
    git(dest, "init", "-q", "-b", "main")
    (dest / ".git/info").mkdir(parents=True, exist_ok=True)
    (dest / ".git/info/exclude").write_text("\n".join(GIT_EXCLUDES) + "\n")
    git(dest, "add", "-A", "-f", ".")
    git(dest, "commit", "-q", "--no-gpg-sign", "-m", f"base {commit[:12]}", env=_GIT_ID)
    return RepoTree(dest, commit, tree, files)


def image_name(kind: str, name: str) -> str:
    """A docker repository name for `kind` (env | inst) and a repo or instance name."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower().replace("/", "__")).strip("-._")
    return f"envsynth/{kind}-{slug[:100] or 'x'}"


def run_step(cmd: str) -> str:
    """The Dockerfile line that runs one install command, bounded in time."""
    return f"RUN timeout {STEP_TIMEOUT_S} sh -c {shlex.quote(cmd)}"


# Where the machine reaches package registries through a TLS-inspecting proxy, its own trust
# store holds the proxy's CA; installs inside the build then need the same trust.
CA_BUNDLE = "/etc/envsynth/ca-certificates.crt"
CA_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
    "npm_config_cafile",
    "GIT_SSL_CAINFO",
)


def host_ca_bundle() -> bytes | None:
    """This machine's CA bundle (what its own pip and npm trust), if it has one."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return None


def env_dockerfile(toolchain_tag: str, install: Sequence[str]) -> str:
    lines = [f"FROM {toolchain_tag}"]
    if host_ca_bundle() is not None:
        lines.append(f"COPY ca.crt {CA_BUNDLE}")
        lines.append("ENV " + " ".join(f"{v}={CA_BUNDLE}" for v in CA_VARIABLES))
    lines += [f"COPY repo/ {REPO_DIR}/", f"WORKDIR {REPO_DIR}"]
    lines += [run_step(cmd) for cmd in install]
    return "\n".join(lines) + "\n"


@dataclass
class BuildResult:
    """One `docker build`: the image id when it worked, and the log either way."""

    image_id: str | None
    log: str
    seconds: float


def build(
    dockerfile: str,
    files: dict[str, Path | bytes],
    *,
    tag: str | None = None,
    labels: dict[str, str] | None = None,
    network: bool = True,
) -> BuildResult:
    """Build `dockerfile` with a context of `files` (name → directory, file or bytes).

    Layers are cached by docker, so a build that extends an earlier one only runs its new
    steps: that is how the setup agent tries commands one after the other cheaply.
    """
    client = docker_client()
    context = _context_tar(dockerfile, files)
    start = time.monotonic()
    log: list[str] = []
    try:
        stream = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            labels=labels,
            rm=True,
            forcerm=True,
            decode=True,
            network_mode="bridge" if network else "none",
        )
        image_id = None
        for chunk in stream:
            if "stream" in chunk:
                log.append(chunk["stream"])
            if "error" in chunk:
                log.append(chunk["error"])
                image_id = None
                break
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except (APIError, BuildError) as e:
        log.append(str(e))
        image_id = None
    return BuildResult(image_id, "".join(log), time.monotonic() - start)


def _context_tar(dockerfile: str, files: dict[str, Path | bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", dockerfile.encode())
        for name, item in files.items():
            if isinstance(item, bytes):
                _add_bytes(tar, name, item)
            else:
                tar.add(str(item), arcname=name)
    buf.seek(0)
    return buf


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def env_context(tree: RepoTree) -> dict[str, Path | bytes]:
    """The build context of an environment image: the tree, and the CA bundle if any."""
    files: dict[str, Path | bytes] = {"repo": tree.path}
    ca = host_ca_bundle()
    if ca is not None:
        files["ca.crt"] = ca
    return files


def toolchain_tag(toolchain: str) -> str:
    return ensure_image(toolchain)


def find_env_image(recipe: EnvRecipe, tree: str) -> str | None:
    """The tag of an existing environment image of this recipe and tree, if any."""
    tag = f"{image_name('env', recipe.repo)}:{env_digest(recipe, tree)[:12]}"
    try:
        docker_client().images.get(tag)
    except ImageNotFound:
        return None
    return tag


def cached_env_images(repo: str, tree: str) -> Iterator[tuple[str, EnvRecipe]]:
    """Environment images already built for this repository at this tree, with recipes."""
    client = docker_client()
    # Labels are inherited: an instance image carries its environment's labels too, so the
    # image kind must be part of the filter.
    filters = {
        "label": [f"{IMAGE_LABEL}=env", f"{REPO_LABEL}={repo}", f"{TREE_LABEL}={tree}", ENV_LABEL]
    }
    for image in client.images.list(filters=filters):
        raw = image.labels.get(RECIPE_JSON_LABEL)
        if raw and image.tags:
            yield image.tags[0], EnvRecipe.model_validate_json(raw)


def env_digest(recipe: EnvRecipe, tree: str) -> str:
    return content_hash({"recipe": recipe.digest(), "tree": tree})


def build_env_image(recipe: EnvRecipe, repo_tree: RepoTree) -> str:
    """Build (or find) the environment image of `recipe` over `repo_tree`; its tag."""
    existing = find_env_image(recipe, repo_tree.tree)
    if existing:
        return existing
    digest = env_digest(recipe, repo_tree.tree)
    tag = f"{image_name('env', recipe.repo)}:{digest[:12]}"
    dockerfile = env_dockerfile(toolchain_tag(recipe.toolchain), recipe.install)
    # The sandbox user owns the work dir, so the agent and the tests can write in it.
    dockerfile += f"RUN chown -R {USER} {Path(REPO_DIR).parent}\n"
    labels = {
        IMAGE_LABEL: "env",
        ENV_LABEL: digest,
        REPO_LABEL: recipe.repo,
        TREE_LABEL: repo_tree.tree,
        RECIPE_JSON_LABEL: recipe.model_dump_json(),
    }
    result = build(dockerfile, env_context(repo_tree), tag=tag, labels=labels)
    if result.image_id is None:
        raise CodeAgentError(
            f"the environment image of {recipe.repo} did not build:\n{result.log[-3000:]}"
        )
    return tag


def build_instance_image(env_tag: str, env_files: Sequence[str], tree: RepoTree, name: str) -> str:
    """Layer the instance's base tree over the environment image; its tag.

    The environment commit's files that the instance does not have are deleted, so no file of
    a later commit survives in the instance.
    """
    client = docker_client()
    env_id = client.images.get(env_tag).id
    digest = content_hash({"env": env_id, "tree": tree.tree, "files": list(env_files)})
    tag = f"{image_name('inst', name)}:{digest[:12]}"
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    stale = "\0".join(env_files).encode()
    dockerfile = (
        f"FROM {env_tag}\n"
        "COPY stale /tmp/envsynth-stale\n"
        f"RUN cd {REPO_DIR} && rm -rf .git && xargs -0 -r rm -f -- < /tmp/envsynth-stale "
        "&& rm /tmp/envsynth-stale\n"
        f"COPY --chown={USER} tree/ {REPO_DIR}/\n"
    )
    result = build(
        dockerfile,
        {"stale": stale, "tree": tree.path},
        tag=tag,
        labels={IMAGE_LABEL: "instance", TREE_LABEL: tree.tree},
        network=False,
    )
    if result.image_id is None:
        raise CodeAgentError(f"the instance image {tag} did not build:\n{result.log[-3000:]}")
    return tag


def image_size_mb(tag: str) -> float:
    return docker_client().images.get(tag).attrs.get("Size", 0) / 1e6


def remove_image(tag: str) -> None:
    """Remove an image if nothing uses it; quietly leave it otherwise."""
    remove_quietly(docker_client(), tag)
