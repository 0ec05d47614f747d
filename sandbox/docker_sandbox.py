"""`DockerSandbox`: a hardened container with a persistent shell, through the docker SDK.

Each sandbox is one container that can do nothing but hold its tmpfs work dirs and run the
supervisor: no network (unless `spec.network`), no capabilities, no new privileges, a
read-only root, a non-root user, limits on pids, memory (swap included), cpu and open files,
and docker's init as pid 1. Its main process is the dead-man timer: `sleep` for the sandbox's
lifetime, after which the container stops and removes itself. Commands run in one persistent
shell, driven over a single `docker exec` (see `sandbox/docker_shell.py`).
"""

from __future__ import annotations

import functools
import secrets
import threading
import time

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.types import Mount, Ulimit

from sandbox import reaper
from sandbox.base import BACKENDS, Sandbox, SandboxError
from sandbox.docker_shell import Reply, ShellChannel, ShellGone
from sandbox.pool import Pool
from sandbox.shell_supervisor import PATH_LEN
from sandbox.spec import ExecResult, SandboxSpec

USER = "65534:65534"
DEFAULT_LIFETIME_S = 3600.0
OPEN_FILES = 4096
BACKEND = "envsynth.backend"  # the label telling this backend's containers from the kernels'


@functools.cache
def docker_client() -> docker.DockerClient:
    """This process's client of the daemon; `SandboxError` with what to do when none answers."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException as e:
        raise SandboxError(f"no Docker daemon answers ({e}); run scripts/setup-docker.sh") from e
    return client


def unavailable_reason() -> str | None:
    """Why the Docker backend cannot run on this machine, or None when it can."""
    try:
        client = docker_client()
    except SandboxError as e:
        return str(e)
    try:
        client.images.get(SandboxSpec().image)
    except ImageNotFound:
        return f"the image {SandboxSpec().image} is missing; run `envsynth images build base`"
    return None


def leaked() -> list[str]:
    """This process's Docker sandbox containers that are still there, described."""
    try:
        client = docker_client()
    except SandboxError:
        return []
    mine = reaper.owned_by_this_process(client)
    return [f"container {c.name} ({c.status})" for c in mine if c.labels.get(BACKEND) == "docker"]


@BACKENDS.register("docker")
class DockerSandbox(Sandbox):
    """A hardened container with a persistent shell; see the module docstring.

    Args:
        spec: limits and image; `SandboxSpec()` when None.
        lifetime_s: the dead-man timer: the container ends itself this long after its start.
        client: a Docker client (one from the environment when None).
    """

    def __init__(
        self,
        spec: SandboxSpec | None = None,
        *,
        lifetime_s: float = DEFAULT_LIFETIME_S,
        client: docker.DockerClient | None = None,
    ) -> None:
        self.spec = spec or SandboxSpec()
        self._client = client or docker_client()
        self._lifetime_s = lifetime_s
        self._lock = threading.RLock()
        self._closed = False
        reaper.reap_once(self._client)
        self._container, self._shell = self._start()

    # ---- the Sandbox protocol ---------------------------------------------------------------
    def run(self, cmd: str, timeout: float | None = None) -> ExecResult:
        if "\0" in cmd:
            raise ValueError("a shell command cannot contain NUL bytes")
        timeout = self.spec.wall_time_s if timeout is None else timeout
        with self._lock:
            self._check_open()
            start = time.monotonic()
            try:
                reply = self._shell.run(cmd, timeout, self.spec.output_bytes)
            except ShellGone as e:
                note = self._recover(str(e))
                elapsed = time.monotonic() - start
                return ExecResult(
                    exit_code=None, stderr=note, timed_out=elapsed >= timeout, duration_s=elapsed
                )
            return _result(reply, time.monotonic() - start)

    def put_file(self, path: str, data: bytes) -> None:
        raw = path.encode()
        self._request(b"P", PATH_LEN.pack(len(raw)) + raw + data)

    def get_file(self, path: str) -> bytes:
        return self._request(b"G", path.encode())

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._shell.close()
            _remove(self._container)

    # ---- beyond the protocol ------------------------------------------------------------------
    def reset(self) -> bool:
        """Make the sandbox as new (no processes, empty work dir and /tmp, fresh shell).

        Returns False when that could not be verified; the caller should then discard it.
        A work dir that came from the image cannot be made as new in place: always False.
        """
        if self.spec.workdir_from_image:
            return False
        try:
            self._request(b"K", b"")
        except (OSError, SandboxError):
            return False
        return True

    @property
    def container_id(self) -> str:
        return self._container.id

    def expires_in(self) -> float:
        """Seconds until the dead-man timer ends the container."""
        return float(self._container.labels[reaper.DEADLINE]) - time.time()

    # ---- steps --------------------------------------------------------------------------------
    def _start(self) -> tuple[Container, ShellChannel]:
        container = self._create_container()
        try:
            return container, self._start_shell(container)
        except BaseException:
            _remove(container)
            raise

    def _create_container(self) -> Container:
        spec = self.spec
        disk = f"size={spec.disk_mb}m,nosuid,nodev,exec"
        ncpu = _daemon_cpus(self._client)
        tmpfs = {"/tmp": f"{disk},mode=1777"}
        mounts = []
        if spec.workdir_from_image:
            # An anonymous volume is filled from the image on first mount, keeps the image's
            # owners, and is removed with the container (auto-remove and the reaper ask for it).
            mounts.append(Mount(target=spec.workdir, source=None, type="volume"))
        else:
            tmpfs[spec.workdir] = f"{disk},uid=65534,gid=65534,mode=0700"
        try:
            return self._client.containers.run(
                spec.image,
                ["sleep", str(int(self._lifetime_s))],
                name=f"envsynth-{secrets.token_hex(6)}",
                detach=True,
                auto_remove=True,
                init=True,
                user=USER,
                read_only=True,
                tmpfs=tmpfs,
                mounts=mounts,
                shm_size=f"{min(spec.disk_mb, 64)}m",
                working_dir=spec.workdir,
                environment={"HOME": spec.workdir, "TMPDIR": "/tmp"},
                network_mode="bridge" if spec.network else "none",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                privileged=False,
                pids_limit=spec.pids,
                mem_limit=f"{spec.memory_mb}m",
                memswap_limit=f"{spec.memory_mb}m",
                nano_cpus=int(min(spec.cpus, ncpu) * 1e9),
                ulimits=[
                    Ulimit(name="nofile", soft=OPEN_FILES, hard=OPEN_FILES),
                    Ulimit(name="core", soft=0, hard=0),
                ],
                hostname="sandbox",
                labels={**reaper.owner_labels(self._lifetime_s), BACKEND: "docker"},
            )
        except ImageNotFound as e:
            raise SandboxError(
                f"no image {spec.image}; build it with `envsynth images build`"
            ) from e
        except APIError as e:
            raise SandboxError(f"could not start a container of {spec.image}: {e}") from e

    def _start_shell(self, container: Container, keep: str = "") -> ShellChannel:
        try:
            return ShellChannel(self._client.api, container.id, self.spec.workdir, USER, keep)
        except (APIError, ShellGone) as e:
            raise SandboxError(f"the shell of container {container.name} did not start: {e}") from e

    def _recover(self, why: str) -> str:
        """The supervisor is gone: start a new one, or a new container if this one ended."""
        self._shell.close()
        if self._running():
            try:
                self._shell = self._start_shell(self._container, self._shell.keep)
                return (
                    f"envsynth: the sandbox's shell was lost ({why}); a new one was started "
                    f"(variables, functions and the working directory were reset)\n"
                )
            except SandboxError:
                pass  # the container was on its way down as well
        _remove(self._container)
        self._container, self._shell = self._start()
        return (
            f"envsynth: the sandbox's container ended ({why}); a fresh one was started "
            f"(files and shell state were reset)\n"
        )

    def _running(self) -> bool:
        try:
            self._container.reload()
        except NotFound:
            return False
        return self._container.status == "running"

    def _request(self, kind: bytes, payload: bytes) -> bytes:
        with self._lock:
            self._check_open()
            try:
                return self._shell.request(kind, payload)
            except ShellGone as e:
                self._recover(str(e))
                raise SandboxError(
                    f"the sandbox's shell was lost during a file request: {e}"
                ) from e

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("this sandbox is closed")


def docker_pool(
    spec: SandboxSpec | None = None,
    *,
    size: int = 2,
    max_live: int = 8,
    lifetime_s: float = DEFAULT_LIFETIME_S,
) -> Pool[DockerSandbox]:
    """A warm pool of `DockerSandbox`es: reset on release, discarded if that fails."""
    min_left = min(600.0, lifetime_s / 2)
    return Pool(
        lambda: DockerSandbox(spec, lifetime_s=lifetime_s),
        size=size,
        max_live=max_live,
        reset=DockerSandbox.reset,
        close=DockerSandbox.close,
        healthy=lambda sb: sb.expires_in() > min_left,
    )


@functools.cache
def _daemon_cpus(client: docker.DockerClient) -> int:
    """CPUs of the daemon's machine: docker refuses a cpu limit above it."""
    return int(client.info().get("NCPU", 1))


def _result(reply: Reply, duration_s: float) -> ExecResult:
    # surrogateescape: output that is not UTF-8 (or a cap that cut a character) stays lossless;
    # `.encode("utf-8", "surrogateescape")` gives back the exact bytes.
    return ExecResult(
        exit_code=reply.exit_code,
        stdout=reply.stdout.decode("utf-8", "surrogateescape"),
        stderr=reply.stderr.decode("utf-8", "surrogateescape") + reply.note,
        timed_out=reply.timed_out,
        oom_killed=reply.oom_killed,
        truncated=reply.truncated,
        duration_s=duration_s,
    )


def _remove(container: Container) -> None:
    """Remove a container and wait until it is gone (auto-remove may already be at it)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            container.remove(force=True, v=True)
        except NotFound:
            return
        except APIError as e:
            if e.status_code != 409:
                raise SandboxError(f"could not remove container {container.name}: {e}") from e
        try:
            container.reload()
        except NotFound:
            return
        time.sleep(0.05)
    raise SandboxError(f"container {container.name} would not go away")
