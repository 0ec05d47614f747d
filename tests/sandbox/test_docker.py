"""DockerSandbox against the real daemon: hardening in effect, the persistent shell, limits."""

from __future__ import annotations

import errno
import io
import time
from collections.abc import Iterator

import pytest
from conftest import factory

from sandbox.base import SandboxError
from sandbox.docker_sandbox import DockerSandbox, docker_client, leaked
from sandbox.spec import SandboxSpec

SPEC = SandboxSpec(
    memory_mb=192, pids=48, disk_mb=32, cpus=1.0, output_bytes=64 * 1024, wall_time_s=10
)


@pytest.fixture(scope="module")
def sb() -> Iterator[DockerSandbox]:
    make = factory("docker")
    with make(SPEC) as sandbox:
        assert isinstance(sandbox, DockerSandbox)
        yield sandbox
    assert not leaked()


def _procs(sb: DockerSandbox) -> list[str]:
    """Command names of every process in the container but init, timer, supervisor and shell."""
    r = sb.run("ps -eo pid=,args=")
    assert r.exit_code == 0, r
    rows = [line.split(None, 1) for line in r.stdout.splitlines()]
    ours = (
        "/sbin/docker-init",
        "sleep 3600",
        "/usr/bin/python3 -I -S",
        "bash --noprofile",
        "ps -eo",
    )
    return [args for _pid, args in rows if not args.startswith(ours)]


def test_hardening_is_in_effect(sb: DockerSandbox) -> None:
    attrs = docker_client().api.inspect_container(sb.container_id)
    host, config = attrs["HostConfig"], attrs["Config"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["Privileged"] is False
    assert host["ReadonlyRootfs"] is True
    assert host["NetworkMode"] == "none"
    assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"])
    assert host["PidsLimit"] == SPEC.pids
    assert host["Memory"] == host["MemorySwap"] == SPEC.memory_mb << 20
    assert host["NanoCpus"] == int(SPEC.cpus * 1e9)
    assert host["Init"] is True
    assert config["User"] == "65534:65534"
    assert set(host["Tmpfs"]) == {SPEC.workdir, "/tmp"}
    assert f"size={SPEC.disk_mb}m" in host["Tmpfs"][SPEC.workdir]
    assert not host["Binds"] and not attrs["Mounts"], "nothing of the host may be mounted"
    assert config["Labels"]["envsynth.sandbox"] == "1"


def test_hardening_holds_from_inside(sb: DockerSandbox) -> None:
    assert sb.run("id -u").stdout.strip() == "65534"
    denied = sb.run("touch /etc/x")
    assert denied.exit_code != 0 and "Read-only file system" in denied.stderr
    caps = sb.run("grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status").stdout.split()
    assert caps[1::2] == ["0000000000000000"] * 3
    assert sb.run("ls /sys/class/net").stdout.split() == ["lo"]
    assert sb.run("cat /proc/self/status | grep NoNewPrivs").stdout.split()[1] == "1"
    assert sb.run("ulimit -n").stdout.strip() == "4096"
    size_kb = int(sb.run(f"df -k --output=size {SPEC.workdir} | tail -1").stdout)
    assert size_kb == SPEC.disk_mb * 1024
    assert not sb.run("ls /var/run/docker.sock").ok


def test_network_only_when_asked() -> None:
    factory("docker")
    with DockerSandbox(SPEC.model_copy(update={"network": True})) as sb:
        attrs = docker_client().api.inspect_container(sb.container_id)
        assert attrs["HostConfig"]["NetworkMode"] == "bridge"
        assert "eth0" in sb.run("ls /sys/class/net").stdout.split()


def test_shell_state_persists_between_commands(sb: DockerSandbox) -> None:
    assert sb.run("mkdir -p d && cd d && export FOO=bar && x=5 && declare -a arr=(a b)").ok
    assert sb.run('greet() { echo hi "$1"; }').ok
    r = sb.run('pwd; echo "$FOO $x ${arr[1]}"; greet you')
    assert r.stdout.split("\n")[:3] == [f"{SPEC.workdir}/d", "bar 5 b", "hi you"], r
    assert sb.run("cd ..").ok


def test_exit_code_and_streams(sb: DockerSandbox) -> None:
    r = sb.run("echo out; echo err >&2; false")
    assert (r.exit_code, r.stdout, r.stderr) == (1, "out\n", "err\n")
    r = sb.run("(exit 42)")
    assert r.exit_code == 42


def test_printed_markers_and_frames_cannot_fake_completion(sb: DockerSandbox) -> None:
    # Everything a framed protocol or a naive one might take for an end of command: exit lines,
    # our own frame kinds with plausible headers, NULs, a docker stream header.
    fake = (
        r"printf 'X\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x050 0 0\n'; "
        r"printf '\x01\x00\x00\x00\x00\x00\x00\x10X'; echo '__ENVSYNTH_DONE__ 0'; "
        r"echo 0 >&2; sleep 0.3; echo late; exit_code=7; (exit $exit_code)"
    )
    r = sb.run(fake)
    assert r.exit_code == 7 and not r.timed_out, r
    assert r.stdout.endswith("__ENVSYNTH_DONE__ 0\nlate\n"), r


def test_binary_output_round_trips(sb: DockerSandbox) -> None:
    r = sb.run("head -c 3000 /dev/urandom > blob; cat blob")
    assert r.stdout.encode("utf-8", "surrogateescape") == sb.get_file("blob")


def test_output_is_capped_per_stream(sb: DockerSandbox) -> None:
    r = sb.run("head -c 200000 /dev/zero; head -c 100 /dev/zero >&2")
    assert r.exit_code == 0 and r.truncated
    assert len(r.stdout) == SPEC.output_bytes and len(r.stderr) == 100


def test_endless_flood_still_times_out(sb: DockerSandbox) -> None:
    r = sb.run("yes", timeout=1)
    assert r.timed_out and r.truncated and r.duration_s < 5, r
    assert r.stdout == "y\n" * (SPEC.output_bytes // 2)


def test_timeout_kills_the_whole_tree_and_keeps_the_shell(sb: DockerSandbox) -> None:
    assert sb.run("cd /tmp && export KEPT=yes").ok
    tree = (
        "sleep 101 & setsid sleep 102 & (nohup sleep 103 >/dev/null &); "
        "setsid sh -c 'sleep 104 & sleep 105' & sleep 106"
    )
    r = sb.run(tree, timeout=1)
    assert r.timed_out and r.exit_code is None and r.duration_s < 5, r
    assert _procs(sb) == []
    assert sb.run('echo "$PWD $KEPT"').stdout == "/tmp yes\n"
    assert sb.run("cd").ok


def test_loop_inside_the_shell_times_out_and_keeps_state(sb: DockerSandbox) -> None:
    assert sb.run("export LOOPED=1").ok
    r = sb.run("while :; do :; done", timeout=0.5)
    assert r.timed_out and "new one was started" not in r.stderr, r
    assert sb.run("echo $LOOPED").stdout == "1\n"


def test_shell_that_ignores_the_interrupt_is_replaced(sb: DockerSandbox) -> None:
    assert sb.run("cd /tmp").ok
    r = sb.run("trap '' USR1; while :; do :; done", timeout=0.5)
    assert r.timed_out and "a new one was started" in r.stderr, r
    assert sb.run("pwd").stdout == f"{SPEC.workdir}\n"


def test_killing_the_shell_or_the_supervisor_is_survived(sb: DockerSandbox) -> None:
    r = sb.run("kill -9 $$")
    assert r.exit_code == 137 and "a new one was started" in r.stderr, r
    r = sb.run("kill -9 $PPID")  # the supervisor itself
    assert r.exit_code is None and "shell was lost" in r.stderr, r
    assert sb.run("echo back").stdout == "back\n"
    assert _procs(sb) == []


def test_killing_everything_gets_a_fresh_container(sb: DockerSandbox) -> None:
    first = sb.container_id
    r = sb.run("kill -9 -1")  # the dead-man timer too: the container ends
    assert r.exit_code is None and "fresh one was started" in r.stderr, r
    assert sb.container_id != first
    assert sb.run("echo back").stdout == "back\n"


def test_oom_is_reported_and_survived(sb: DockerSandbox) -> None:
    r = sb.run("python3 -c 'b = bytearray(1 << 30)'", timeout=20)
    assert r.oom_killed and r.exit_code == 137, r
    assert sb.run("echo fine").stdout == "fine\n"


def test_fork_bomb_is_killed(sb: DockerSandbox) -> None:
    r = sb.run("b() { b | b & }; b; sleep 1; echo not-reached", timeout=10)
    assert r.exit_code == 137 and "process limit" in r.stderr and "not-reached" not in r.stdout
    assert _procs(sb) == []


def test_files_in_and_out(sb: DockerSandbox) -> None:
    sb.put_file("sub/dir/f.bin", b"\x00\xffdata")
    sb.put_file("/tmp/abs.txt", b"abs")
    assert sb.run("cat sub/dir/f.bin | od -An -tx1").stdout.split() == [
        "00",
        "ff",
        "64",
        "61",
        "74",
        "61",
    ]
    assert sb.get_file("/tmp/abs.txt") == b"abs"
    sb.run("echo made > made.txt")
    assert sb.get_file(f"{SPEC.workdir}/made.txt") == b"made\n"
    with pytest.raises(FileNotFoundError):
        sb.get_file("missing")
    with pytest.raises(OSError) as denied:
        sb.put_file("/etc/passwd", b"x")
    assert denied.value.errno == errno.EROFS


def test_reset_leaves_nothing(sb: DockerSandbox) -> None:
    sb.run(
        "mkdir -p locked/in && touch locked/in/f /tmp/t && chmod 000 locked; "
        "export DIRTY=1; (sleep 300 &)"
    )
    assert sb.reset()
    assert sb.run('ls -A; ls -A /tmp; echo "[$DIRTY]"').stdout == "[]\n"
    assert _procs(sb) == []


def test_dead_man_timer_ends_the_container() -> None:
    factory("docker")
    client = docker_client()
    sb = DockerSandbox(SPEC, lifetime_s=5)
    try:
        cid = sb.container_id
        assert client.containers.get(cid).status == "running"
        deadline = time.monotonic() + 20
        while client.api.containers(all=True, filters={"id": cid}):
            assert time.monotonic() < deadline, "the container outlived its lifetime"
            time.sleep(0.2)
    finally:
        sb.close()
    with pytest.raises(SandboxError):
        sb.run("true")


def test_workdir_from_image_starts_with_the_image_content_and_goes_with_it() -> None:
    client = docker_client()
    dockerfile = (
        f"FROM {SandboxSpec().image}\n"
        "RUN mkdir -p /work/repo && echo base > /work/repo/a.txt && chown -R 65534:65534 /work\n"
    )
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), rm=True)
    try:
        spec = SPEC.model_copy(update={"image": image.id, "workdir_from_image": True})
        with DockerSandbox(spec) as sb:
            r = sb.run("cat repo/a.txt && echo changed > repo/a.txt && cat repo/a.txt")
            assert r.stdout == "base\nchanged\n", r
            assert not sb.reset(), "an image work dir cannot be reset in place"
            attrs = client.api.inspect_container(sb.container_id)
            volumes = [m["Name"] for m in attrs["Mounts"] if m["Type"] == "volume"]
            assert len(volumes) == 1 and "/tmp" in attrs["HostConfig"]["Tmpfs"]
            first = sb.container_id
        # A second sandbox of the same image sees the image's content, not the first's edit.
        with DockerSandbox(spec) as sb:
            assert sb.run("cat repo/a.txt").stdout == "base\n"
        left = {c.id for c in client.containers.list(all=True)}
        assert first not in left and sb.container_id not in left
        assert volumes[0] not in {v.name for v in client.volumes.list()}, "volume left behind"
    finally:
        client.images.remove(image.id, force=True)
