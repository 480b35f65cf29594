"""The same-version host: a privileged container of the image playing the host.

The host's own podman (Debian 12: 4.3 with runc) is not the nested one (the image's
5.4 with crun), so "nested / host" compares versions as much as nesting. This
container runs the image under test ``--privileged`` with systemd, pipglr's own
services stopped, and its *root* podman (the nested version, rootful, native overlay
on a volume, cgroupfs) playing a host, as the auto-update test's machine does.
"nested / same-version host" then measures pipglr's nesting alone: the rootless
podman user in the least-privilege outer, against rootful podman of the same version
one container deep. Its API socket is published into a host directory, so a host
process (the job bench's runner) can drive it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipglr import layout
from pipglr.errors import EngineError
from pipglr.ops.outer import Outer

SAME_HOST_NAME = "pipglr-bench-samehost"
SAME_HOST_VOLUME = "pipglr-bench-samehost-lib"
#: Where the API socket's host directory is mounted in the container.
API_DIR = "/run/pipglr-bench-api"
#: The API service's process id, in the container.
PID_FILE = "/run/pipglr-bench-api.pid"
#: The image's services that would otherwise run pipglr in there.
PIPGLR_UNITS = (
    layout.RUNNER_SERVICE_UNIT, layout.EVICTOR_UNIT,
    layout.PODMAN_SOCKET_UNIT, layout.PODMAN_SERVICE_UNIT,
)  # fmt: skip


def run_args(image: str, api_dir: Path) -> list[str]:
    """``podman run`` arguments of the playing container."""
    return [
        "run", "--detach", "--name", SAME_HOST_NAME, "--privileged", "--systemd", "always",
        # pipglr's egress guard and host-id check are for pipglr, not the playing host
        "--env", "PIPGLR_EGRESS_GUARD=off", "--env", layout.HOST_IDS_CONSENT,
        "--volume", f"{SAME_HOST_VOLUME}:/var/lib/containers",
        "--volume", f"{api_dir}:{API_DIR}",
        image,
    ]  # fmt: skip


#: Prints the hard RLIMIT_NOFILE and RLIMIT_NPROC (-1: unlimited).
HARD_LIMITS = (
    "import resource as r; print(r.getrlimit(r.RLIMIT_NOFILE)[1], r.getrlimit(r.RLIMIT_NPROC)[1])"
)


def engine_conf(nofile: int, nproc: int) -> str:
    """containers.conf of the playing podman: cgroupfs (no D-Bus for root's podman in
    the image: crun cannot reach systemd's cgroup manager) and rlimits no higher than
    the hard limits it runs under (podman's defaults are higher; raising them needs
    CAP_SYS_RESOURCE, which these CI sandboxes lack: see the host quirks notes).
    An unlimited (negative) limit is left to podman."""
    limits = [f'"{name}={n}:{n}"' for name, n in (("nofile", nofile), ("nproc", nproc)) if n >= 0]
    return (
        f"[containers]\ndefault_ulimits = [{', '.join(limits)}]\n"
        '[engine]\ncgroup_manager = "cgroupfs"\n'
    )


class SameVersionHost:
    """Start, use and remove the playing container of one outer mode."""

    def __init__(self, outer: Outer, image: str) -> None:
        self.outer = outer
        self.image = image
        self._tmp = tempfile.TemporaryDirectory(prefix="pipglr-bench-api-", dir="/var/tmp")
        self.api_dir = Path(self._tmp.name)
        os.chmod(self.api_dir, 0o777)  # the rootless user's root creates the socket

    def start(self, *images: str) -> None:
        """Run it, stop pipglr's units in it and load ``images`` into its podman."""
        self.remove()
        self.outer.copy_image_from_root(self.image)
        self.outer.run(*run_args(self.image, self.api_dir))
        self.outer.wait_for(SAME_HOST_NAME, ["podman", "info"], timeout=120)
        self.sh("systemctl stop " + " ".join(PIPGLR_UNITS) + " || true")
        # the hard limits in there (a rootless outer's user may have lower ones)
        hard = self.outer.exec(SAME_HOST_NAME, str(layout.PYTHON), "-c", HARD_LIMITS).stdout
        nofile, nproc = (int(n) for n in hard.split())
        self.sh("mkdir -p /etc/containers/containers.conf.d && cat > "
                "/etc/containers/containers.conf.d/pipglr-bench.conf",
                engine_conf(nofile, nproc))  # fmt: skip
        for image in images:
            self.outer.copy_image_from_root(image)
            self.outer.pipe_from([*self.outer.podman, "save", image],
                                 "exec", "-i", SAME_HOST_NAME, "podman", "load")  # fmt: skip

    def remove(self) -> None:
        self.outer.run("rm", "--force", "--ignore", "--time", "2", SAME_HOST_NAME, check=False)
        self.outer.run("volume", "rm", "--force", SAME_HOST_VOLUME, check=False)

    def close(self) -> None:
        """Remove the container and the socket directory."""
        self.remove()
        self._tmp.cleanup()

    def sh(self, script: str, input: str | None = None,
           timeout: float = 1800) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """``sh -c script`` as root in the playing container."""
        return self.outer.exec(SAME_HOST_NAME, "sh", "-c", script, input=input,
                               check=False, timeout=timeout)  # fmt: skip

    def job(self, script: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        """A job there: ``script`` (stdin) with ``sh`` in a container of the image."""
        return self.outer.exec(
            SAME_HOST_NAME, "podman", "run", "--rm", "-i", "--entrypoint", "sh", self.image,
            input=script, check=False, timeout=timeout,
        )  # fmt: skip

    def podman_version(self) -> str:
        return self.sh(
            "podman info --format '{{.Version.Version}}, storage {{.Store.GraphDriverName}}, "
            "runtime {{.Host.OCIRuntime.Name}}' 2>/dev/null"
        ).stdout.strip() or "unknown"  # fmt: skip

    @contextmanager
    def api(self) -> Iterator[str]:
        """Serve its podman API on a socket in the host directory; yield its URL."""
        sock = self.api_dir / "podman.sock"
        sock.unlink(missing_ok=True)
        self.outer.run("exec", "--detach", SAME_HOST_NAME, "sh", "-c",
                       f"echo $$ > {PID_FILE}; exec podman system service --time=0 "
                       f"unix://{API_DIR}/podman.sock")  # fmt: skip
        deadline = time.monotonic() + 30
        while not sock.exists():
            if time.monotonic() > deadline:
                raise EngineError(f"the same-version host's API socket {sock} never appeared")
            time.sleep(0.1)
        try:
            yield f"unix://{sock}"
        finally:
            self.sh(f"kill $(cat {PID_FILE})")
