"""Sandbox images: recipe hashing, the mirror read from apt's sources, a real python image."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from conftest import factory

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
