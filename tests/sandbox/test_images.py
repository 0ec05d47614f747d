"""Sandbox images: recipe hashing, the mirror read from apt's sources, a real python image."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import orjson
import pytest
from conftest import factory
from docker.errors import APIError

from sandbox import images
from sandbox.docker_sandbox import DockerSandbox, docker_client
from sandbox.images import RECIPES, Recipe
from sandbox.spec import SandboxSpec

DERIVED = "envsynth-test/derived:1"


def test_same_recipe_same_hash_and_any_change_a_new_one() -> None:
    recipe = Recipe("x", apt=("a", "b"), run=("true",), env=("K=v",))
    assert recipe.digest("sha256:1") == Recipe("x", ("a", "b"), ("true",), ("K=v",)).digest(
        "sha256:1"
    )
    variants = [
        Recipe("x", apt=("a", "c"), run=("true",), env=("K=v",)),
        Recipe("x", apt=("a", "b"), run=("false",), env=("K=v",)),
        Recipe("x", apt=("a", "b"), run=("true",), env=("K=w",)),
    ]
    digests = {recipe.digest("sha256:1"), recipe.digest("sha256:2")}
    digests |= {v.digest("sha256:1") for v in variants}
    assert len(digests) == 5, "each change of packages, commands, env or base is a new image"


def test_every_toolchain_has_a_recipe() -> None:
    assert set(RECIPES) == {"python", "node", "go", "java", "cpp", "php"}
    assert "python3-ipykernel" in RECIPES["python"].apt


def test_mirror_is_read_from_deb822_sources(tmp_path: Path) -> None:
    d = tmp_path / "etc/apt/sources.list.d"
    d.mkdir(parents=True)
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb deb-src\n# a comment: with a colon\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert images.apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_is_read_from_a_legacy_sources_list(tmp_path: Path) -> None:
    (tmp_path / "etc/apt").mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64] http://legacy.example/debian bookworm main\n"
    )
    assert images.apt_mirror(tmp_path) == "http://legacy.example/debian"
    (tmp_path / "etc/apt/sources.list").write_text("deb http://x.example/debian buster main\n")
    with pytest.raises(images.ImageError):
        images.apt_mirror(tmp_path)


def test_this_machine_has_a_mirror() -> None:
    assert images.apt_mirror().startswith(("http://", "https://", "file:/"))


def test_python_image_builds_once_and_runs_the_kernel_interpreter() -> None:
    factory("docker")
    client = docker_client()
    tag = images.ensure_image("python")
    image = client.images.get(tag)
    digest = image.labels[images.RECIPE_LABEL]
    assert tag == f"envsynth/python:{digest[:12]}"
    assert digest == RECIPES["python"].digest(client.images.get(images.BASE_TAG).id)

    start = time.monotonic()
    assert images.build_images(["python"]) == [tag]
    assert time.monotonic() - start < 10, "an image of the current recipe is not rebuilt"
    assert client.images.get(tag).id == image.id

    listed = {row["tag"]: row for row in images.list_images()}
    assert listed[tag]["recipe"] == digest[:12] and listed[tag]["size_mb"] > 0
    assert images.BASE_TAG in listed
    # An image someone builds on ours inherits our labels; it is still not ours to prune.
    derived, _ = client.images.build(
        fileobj=io.BytesIO(f"FROM {tag}\nLABEL purpose=test\n".encode()), tag=DERIVED, rm=True
    )
    try:
        assert derived.labels[images.IMAGE_LABEL] == "python"
        assert DERIVED not in {row["tag"] for row in images.list_images()}
        removed = images.prune_images(keep_current=True)
        assert not {tag, images.BASE_TAG, DERIVED} & set(removed)
        assert client.images.get(tag).id == image.id and client.images.get(DERIVED)
    finally:
        client.images.remove(DERIVED)

    with DockerSandbox(SandboxSpec(image=tag, memory_mb=256)) as sb:
        r = sb.run("python -c 'import ipykernel, sys; print(sys.prefix)'; id -u", timeout=30)
        assert r.stdout.split() == ["/opt/py", "65534"], r


def _tar(name: str) -> bytes:
    """A filesystem of one empty file, for `docker import`: an image with no labels."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    return buf.getvalue()


def test_prune_removes_our_untagged_leftovers_and_no_one_elses() -> None:
    factory("docker")
    client = docker_client()
    ours, foreign = "envsynth-test/leftover:1", "envsynth-test/foreign:1"
    made: list[str] = []

    def build(marker: str) -> str:
        dockerfile = f"FROM {images.BASE_TAG}\nRUN echo {marker} > /marker\n"
        image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ours, rm=True)
        made.append(str(image.id))
        return made[-1]

    def import_(name: str) -> str:
        reply = client.api.import_image_from_data(_tar(name), repository=foreign.split(":")[0])
        image = client.images.get(orjson.loads(reply.splitlines()[-1])["status"])
        image.tag(foreign)
        made.append(str(image.id))
        return made[-1]

    try:
        # Rebuilding under the same tag leaves the first build untagged, with our labels.
        first, second = build(f"one-{time.time_ns()}"), build(f"two-{time.time_ns()}")
        foreign_first = import_(f"a{time.time_ns()}")
        import_(f"b{time.time_ns()}")
        dangling = {i.id for i in client.images.list(filters={"dangling": True})}
        assert {first, foreign_first} <= dangling and first != second

        removed = images.prune_images(keep_current=True)

        assert f"{first[:19]} (untagged)" in removed, removed  # short_id: sha256: + 12 hex
        left = {i.id for i in client.images.list(all=True)}
        assert first not in left and second in left
        assert foreign_first in left, "an untagged image without our labels is not ours"
    finally:
        for ref in made:
            try:
                client.images.remove(ref, force=True)
            except APIError:  # pruned by the test
                pass
