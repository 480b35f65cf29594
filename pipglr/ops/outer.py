"""Drive an outer podman (rootful or rootless) the way a pipglr user does.

An :class:`Outer` runs podman commands as the current user (``rootful`` when that is
root) or through a command that runs podman as another, unprivileged user (for the
test suite and the benchmarks: ``pipglr-test-podman``, which
``scripts/prepare-test-host.sh`` writes).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipglr import layout
from pipglr.errors import CommandError

#: Where the tests and benchmarks put their docker CLI in a pipglr container (tmpfs:
#: the container's root file system is read-only).
DOCKER_CLI = "/tmp/pipglr-docker"
#: Command that runs podman as the rootless test user.
ROOTLESS_PODMAN = os.environ.get("PIPGLR_ROOTLESS_PODMAN", "pipglr-test-podman")


@dataclass(frozen=True)
class Outer:
    """The podman that runs the outer pipglr container."""

    mode: str
    podman: tuple[str, ...]

    @classmethod
    def for_mode(cls, mode: str, rootless_podman: str = ROOTLESS_PODMAN) -> Outer:
        """The outer engine for ``rootful`` or ``rootless``."""
        if mode == "rootful":
            return cls(mode, ("podman",))
        return cls(mode, tuple(shlex.split(rootless_podman)))

    def available(self) -> str | None:
        """None when usable, else why not."""
        if shutil.which(self.podman[0]) is None:
            return f"{self.podman[0]} not found (run scripts/prepare-test-host.sh)"
        probe = self.run("info", "--format", "{{.Host.Security.Rootless}}", check=False)
        if probe.returncode != 0:
            return f"{' '.join(self.podman)} info failed: {probe.stderr.strip()[-300:]}"
        rootless = probe.stdout.strip() == "true"
        if rootless != (self.mode == "rootless"):
            return f"{' '.join(self.podman)} is not {self.mode}"
        return None

    def run(
        self,
        *args: str,
        check: bool = True,
        cwd: Path | None = None,
        input: bytes | str | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``podman ARGS``; raise with the output when ``check`` and it fails."""
        data = input.decode() if isinstance(input, bytes) else input
        result = subprocess.run(
            [*self.podman, *args],
            cwd=cwd,
            input=data,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise CommandError(
                f"podman {shlex.join(args)}",
                result.returncode,
                f"{result.stdout}\n{result.stderr}",
                self.mode,
            )
        return result

    def touch(self, path: Path) -> None:
        """Create an empty file owned by the user this podman runs as."""
        self.write_file(path, "")

    def write_file(self, path: Path, text: str) -> None:
        """Write ``text`` to ``path`` (mode 0600) as the user this podman runs as."""
        if self.mode == "rootless":
            self.run("unshare", "sh", "-c", 'umask 077; cat > "$1"', "sh", str(path), input=text)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)

    def private_dir(self, prefix: str) -> Path:
        """A new 0700 directory under the temp dir, owned by the user podman runs as."""
        if self.mode == "rootless":
            template = f"{tempfile.gettempdir()}/{prefix}XXXXXX"
            return Path(self.run("unshare", "mktemp", "-d", template).stdout.strip())
        return Path(tempfile.mkdtemp(prefix=prefix))

    def pipe_from(self, producer: Sequence[str], *args: str) -> None:
        """Run ``producer | podman ARGS`` (e.g. ``podman save | podman load``)."""
        with subprocess.Popen(producer, stdout=subprocess.PIPE) as source:
            result = subprocess.run(
                [*self.podman, *args],
                stdin=source.stdout,
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0 or source.returncode != 0:
            raise CommandError(
                f"{shlex.join(producer)} | podman {shlex.join(args)}",
                result.returncode or source.returncode,
                result.stderr,
            )

    def exec(
        self, container: str, *args: str, user: str | None = None, check: bool = True, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """``podman exec [--user U] -i CONTAINER ARGS``."""
        user_args = ("--user", user) if user else ()
        return self.run("exec", "-i", *user_args, container, *args, check=check, **kw)

    def wait_for(
        self, container: str, args: Sequence[str], user: str | None = None, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        """Repeat an exec until it succeeds; fail with its last output."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.exec(container, *args, user=user, check=False)
            if result.returncode == 0:
                return result
            if time.monotonic() > deadline:
                raise CommandError(
                    shlex.join(args),
                    result.returncode,
                    f"{result.stdout}\n{result.stderr}",
                    f"in {container}, {self.mode}, retried for {timeout:.0f}s",
                )
            time.sleep(1)

    def copy_image_from_root(self, tag: str) -> None:
        """Make root's image ``tag`` available to this (rootless) podman, if it differs."""
        if self.mode != "rootless":
            return
        want = subprocess.run(
            ["podman", "image", "inspect", "--format", "{{.Id}}", tag],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        have = self.run("image", "inspect", "--format", "{{.Id}}", tag, check=False)
        if have.stdout.strip() != want:
            self.pipe_from(["podman", "save", tag], "load")

    def install_docker_cli(self, container: str, docker_cli: str) -> None:
        """Copy a docker CLI into ``container``: the stand-in for the docker executor's
        API calls, for the tests and the benchmarks (not part of the image)."""
        self.run("cp", docker_cli, f"{container}:{DOCKER_CLI}")

    def load_nested_image(self, container: str, image: str, from_root: bool = False) -> None:
        """Load this podman's ``image`` (``from_root``: root's, in either mode, without
        copying it into this podman's storage first) into the nested storage of
        ``container``, through the inner Docker-compatible API as user runner."""
        self.pipe_from(
            ["podman", "save", image] if from_root else [*self.podman, "save", image],
            "exec", "-i", "--user", layout.RUNNER.name, container,
            DOCKER_CLI, "-H", layout.DOCKER_HOST, "load",
        )  # fmt: skip
