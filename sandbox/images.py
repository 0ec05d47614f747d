"""Sandbox images: a base bootstrapped from this machine's Debian sources, toolchains on top.

No registry needs to be reachable. The base (`envsynth/base:bookworm`) is made with
`debootstrap --variant=minbase` from the mirror this machine's apt is configured with, then
`docker import`ed. Each toolchain image is a small recipe (apt packages, commands, environment)
built on the base with the docker SDK, tagged `envsynth/<name>:<recipe hash[:12]>` and labelled
with the full hash, so it is built once and shared; the hash covers the base image it was built
on, so a new base means new toolchain images. Builds get the default bridge network: the only
time a sandbox image reaches the network.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import docker
from docker.errors import APIError, BuildError, ImageNotFound
from docker.models.images import Image

from sandbox.base import SandboxError
from sandbox.docker_sandbox import docker_client

BASE = "base"
BASE_REPO, BASE_VERSION = "envsynth/base", "bookworm"
BASE_TAG = f"{BASE_REPO}:{BASE_VERSION}"
IMAGE_LABEL = "envsynth.image"
RECIPE_LABEL = "envsynth.recipe"
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# python3-minimal runs the shell supervisor of every Docker sandbox; procps gives `ps`.
BASE_PACKAGES = ("python3-minimal", "procps")


class ImageError(SandboxError):
    """An image could not be built; the message carries the tail of the build log."""


@dataclass(frozen=True)
class Recipe:
    """How to build one toolchain image on the base.

    Attributes:
        name: the image name (`envsynth/<name>`).
        apt: Debian packages to install.
        run: shell commands run (as root, with network) after the packages.
        env: environment of the image, as NAME=value pairs.
    """

    name: str
    apt: tuple[str, ...] = ()
    run: tuple[str, ...] = ()
    env: tuple[str, ...] = field(default=())

    def dockerfile(self, base_id: str) -> str:
        lines = [f"FROM {BASE_TAG}"]
        if self.apt:
            lines.append(
                "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                f"--no-install-recommends {' '.join(self.apt)} && rm -rf /var/lib/apt/lists/*"
            )
        lines += [f"RUN {cmd}" for cmd in self.run]
        lines += [f"ENV {pair}" for pair in self.env]
        # The base is pinned by content: a new base under the same tag makes a new recipe hash.
        lines.append(f"# base {base_id}")
        return "\n".join(lines) + "\n"

    def digest(self, base_id: str) -> str:
        return hashlib.sha256(self.dockerfile(base_id).encode()).hexdigest()


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        # Debian's ipykernel rather than pip's: the build needs no index beyond the apt mirror.
        # /opt/py is the kernel backend's interpreter; it sees the system's site-packages.
        Recipe(
            "python",
            apt=("python3", "python3-venv", "python3-pip", "python3-ipykernel", "git"),
            run=(
                "python3 -m venv --system-site-packages /opt/py",
                "/opt/py/bin/python -c 'import ipykernel'",
            ),
            env=(f"PATH=/opt/py/bin:{STD_PATH}",),
        ),
        Recipe("node", apt=("nodejs", "npm", "git"), run=("node --version",)),
        Recipe(
            "go",
            apt=("golang-go", "ca-certificates", "git"),
            # Modules fetched while an environment is built must outlive the sandbox's fresh
            # /tmp: they go under /opt (read-only at run time, as go wants its module cache);
            # only the build cache, rebuilt per run, lives in /tmp.
            env=(
                "GOPATH=/opt/go",
                "GOMODCACHE=/opt/go/pkg/mod",
                "GOCACHE=/tmp/go-cache",
                "GOTOOLCHAIN=local",
            ),
        ),
        Recipe(
            "java",
            apt=("default-jdk-headless", "maven", "git"),
            run=("javac -version",),
            # Dependencies resolved at build time (as root) stay where the tests (run as the
            # sandbox user, HOME=/work) look for them.
            env=(
                "MAVEN_OPTS=-Dmaven.repo.local=/opt/m2/repository",
                "GRADLE_USER_HOME=/opt/gradle",
            ),
        ),
        Recipe("cpp", apt=("g++", "make", "cmake", "libc6-dev", "git"), run=("g++ --version",)),
        Recipe(
            "php",
            apt=("php-cli", "php-xml", "php-mbstring", "composer", "git"),
            run=("php --version",),
        ),
    )
}
NAMES = (BASE, *RECIPES)


def build_images(names: list[str] | None = None) -> list[str]:
    """Make sure the named images (all when None) exist; return their tags.

    Each is built only when no image of its current recipe exists.
    """
    names = list(NAMES) if names is None else names
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ImageError(f"unknown image {unknown[0]!r}; known: {', '.join(NAMES)}")
    return [ensure_image(name) for name in names]


def ensure_image(name: str) -> str:
    """The tag of an up-to-date image `name`, building it (and the base) when needed.

    Processes that ask at the same time wait for one build instead of each running their own.
    """
    client = docker_client()
    if name == BASE:
        return _ensure_base(client)
    recipe = RECIPES.get(name)
    if recipe is None:
        raise ImageError(f"unknown image {name!r}; known: {', '.join(NAMES)}")
    base_id = client.images.get(_ensure_base(client)).id
    with _build_lock(name):
        return _ensure_recipe(client, recipe, base_id)


def current_tags() -> dict[str, str]:
    """Tag of each image's current recipe (toolchains only if the base exists)."""
    client = docker_client()
    tags = {BASE: BASE_TAG}
    try:
        base_id = client.images.get(BASE_TAG).id
    except ImageNotFound:
        return tags
    for name, recipe in RECIPES.items():
        tags[name] = f"envsynth/{name}:{recipe.digest(base_id)[:12]}"
    return tags


def list_images() -> list[dict]:
    """envsynth's images: tag, recipe (hash prefix), size_mb, created."""
    rows = []
    for image in _ours(docker_client()):
        rows.append(
            {
                "tag": image.tags[0] if image.tags else image.short_id,
                "recipe": image.labels.get(RECIPE_LABEL, "")[:12],
                "size_mb": image.attrs.get("Size", 0) / 1e6,
                "created": _created(image.attrs.get("Created", "")),
            }
        )
    return sorted(rows, key=lambda r: r["tag"])


def prune_images(keep_current: bool = True) -> list[str]:
    """Remove envsynth images not of a current recipe (all of them if not `keep_current`).

    Untagged images that carry our labels go too: a rebuild under the same tag, or a build
    that failed half way, leaves them, and nothing can name them again (`docker image prune`
    limited to ours). Images still used by a container, or by images built on them, are left
    alone. Returns what was removed: tags, and "<short id> (untagged)".
    """
    client = docker_client()
    keep = set(current_tags().values()) if keep_current else set()
    if keep_current and _base_current(client) is None:
        keep.discard(BASE_TAG)
    removed = [
        f"{image.short_id} (untagged)"
        for image in client.images.list(filters={"dangling": True, "label": IMAGE_LABEL})
        if remove_quietly(client, image.id)
    ]
    # Toolchains first: the base cannot go while images built on it remain.
    for image in sorted(_ours(client), key=lambda i: i.labels.get(IMAGE_LABEL) == BASE):
        if any(t in keep for t in image.tags):
            continue
        if remove_quietly(client, image.id):
            removed.append(image.tags[0] if image.tags else image.short_id)
    return removed


def remove_quietly(client: docker.DockerClient, ref: str) -> bool:
    """Remove an image (or untag it, if `ref` is one of several tags); False if it is in use.

    In use: a container runs from it, or another image is built on it. Docker refuses both
    without `force`, which is never given here.
    """
    try:
        client.images.remove(ref, force=False, noprune=False)
    except APIError:  # ImageNotFound included: gone already
        return False
    return True


def _ours(client: docker.DockerClient) -> list[Image]:
    """envsynth's own images, not the images others build on them.

    Everything built FROM the base inherits its labels, and every layer of a build in progress
    is an image too, so a label alone does not make an image ours: the base is an import (no
    parent), and a toolchain image carries its own name's tag.
    """
    mine = []
    for image in client.images.list(filters={"label": IMAGE_LABEL}):
        name = image.labels[IMAGE_LABEL]
        if name == BASE:
            if not image.attrs.get("Parent"):
                mine.append(image)
        elif name in RECIPES and any(t.startswith(f"envsynth/{name}:") for t in image.tags):
            mine.append(image)
    return mine


def _base_current(client: docker.DockerClient) -> Image | None:
    try:
        image = client.images.get(BASE_TAG)
    except ImageNotFound:
        return None
    return image if image.labels.get(RECIPE_LABEL) == _base_digest() else None


def apt_mirror(root: Path = Path("/")) -> str:
    """The Debian mirror this machine's apt uses, read from its sources at run time."""
    for sources in sorted((root / "etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", sources.read_text()):
            fields = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith("#"):
                    fields[key.strip().lower()] = value.strip()
            suites = fields.get("suites", "").split()
            if "deb" in fields.get("types", "").split() and BASE_VERSION in suites:
                return fields["uris"].split()[0]
    legacy = root / "etc/apt/sources.list"
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            words = [w for w in re.sub(r"\[.*?\]", "", line).split() if w]
            if len(words) >= 3 and words[0] == "deb" and words[2] == BASE_VERSION:
                return words[1]
    raise ImageError(f"no apt source for Debian {BASE_VERSION} on this machine to bootstrap from")


def _ensure_recipe(client: docker.DockerClient, recipe: Recipe, base_id: str) -> str:
    name = recipe.name
    digest = recipe.digest(base_id)
    tag = f"envsynth/{name}:{digest[:12]}"
    try:
        image = client.images.get(tag)
        if image.labels.get(RECIPE_LABEL) == digest:
            return tag
    except ImageNotFound:
        pass
    _build(client, recipe, tag, digest, base_id)
    return tag


def _ensure_base(client: docker.DockerClient) -> str:
    digest = _base_digest()
    with _build_lock(BASE):
        try:
            if client.images.get(BASE_TAG).labels.get(RECIPE_LABEL) == digest:
                return BASE_TAG
        except ImageNotFound:
            pass
        _bootstrap_base(client, digest)
    return BASE_TAG


@contextmanager
def _build_lock(name: str) -> Iterator[None]:
    """An exclusive lock across processes on building image `name`."""
    path = Path(tempfile.gettempdir()) / f"envsynth-image-{name}.lock"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _base_digest() -> str:
    recipe = f"debootstrap --variant=minbase --include={','.join(BASE_PACKAGES)} {BASE_VERSION}"
    return hashlib.sha256(recipe.encode()).hexdigest()


def _bootstrap_base(client: docker.DockerClient, digest: str) -> None:
    for tool in ("debootstrap", "tar"):
        if shutil.which(tool) is None:
            raise ImageError(f"building the base image needs {tool}; run scripts/setup-docker.sh")
    mirror = apt_mirror()
    with tempfile.TemporaryDirectory(prefix="envsynth-base-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "root"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            BASE_VERSION,
            str(root),
            mirror,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise ImageError(f"debootstrap failed:\n{(done.stdout + done.stderr)[-3000:]}")
        changes = [
            f"ENV PATH={STD_PATH}",
            "ENV LANG=C.UTF-8",
            'CMD ["/bin/bash"]',
            f"LABEL {IMAGE_LABEL}={BASE} {RECIPE_LABEL}={digest}",
        ]
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE
        )
        try:
            client.api.import_image(
                src=tar.stdout,
                repository=BASE_REPO,
                tag=BASE_VERSION,
                changes=changes,
                stream_src=True,
            )
        finally:
            tar.stdout.close()  # type: ignore[union-attr]
            if tar.wait() != 0:
                raise ImageError("packing the bootstrapped root with tar failed")


def _build(
    client: docker.DockerClient, recipe: Recipe, tag: str, digest: str, base_id: str
) -> None:
    labels = {IMAGE_LABEL: recipe.name, RECIPE_LABEL: digest}
    dockerfile = io.BytesIO(recipe.dockerfile(base_id).encode())
    try:
        client.images.build(
            fileobj=dockerfile,
            tag=tag,
            labels=labels,
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="bridge",
        )
    except BuildError as e:
        log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in e.build_log)
        raise ImageError(f"building {tag} failed: {e.msg}\n{log[-3000:]}") from e
    except APIError as e:
        raise ImageError(f"building {tag} failed: {e}") from e


def _created(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp[:19]).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp
