"""pytest-testinfra access into a container through an :class:`~pipglr.outer.Outer`."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from testinfra.backend import base
from testinfra.backend.podman import PodmanBackend
from testinfra.host import Host

from pipglr.build import provenance
from pipglr.build.base import DEFAULT_TAG as OFFLINE_BASE
from pipglr.ops.outer import Outer

#: Set in CI: an unusable engine fails the run instead of skipping it.
REQUIRE_ENGINE = os.environ.get("PIPGLR_REQUIRE_ENGINE", "") == "1"


def unavailable(reason: str) -> None:
    """Skip, or fail under PIPGLR_REQUIRE_ENGINE=1."""
    if REQUIRE_ENGINE:
        pytest.fail(f"engine tests required but {reason}", pytrace=False)
    pytest.skip(reason)


def remove_images(*prefixes: str) -> None:
    """Remove the host podman's images whose names start with any of ``prefixes``."""
    listing = ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"]
    names = subprocess.run(listing, capture_output=True, text=True, check=False).stdout.split()
    mine = [name for name in names if name.startswith(prefixes)]
    if mine:
        subprocess.run(["podman", "rmi", "--force", *mine], capture_output=True, check=False)


def labelled_image(directory: Path, tag: str, facts: provenance.Provenance) -> str:
    """A small image ``tag`` on the offline base (one layer of its own, from the tag)
    carrying ``facts`` as provenance labels; returns ``tag``."""
    (directory / "Containerfile").write_text(f"FROM {OFFLINE_BASE}\nRUN echo {tag}\n")
    labels = [f"--label={k}={v}" for k, v in facts.to_labels().items()]
    subprocess.run(["podman", "build", "--quiet", *labels, "--tag", tag, str(directory)],
                   capture_output=True, check=True)  # fmt: skip
    return tag


def host(outer: Outer, container: str, user: str | None = None) -> Host:
    """A testinfra host inside ``container`` (optionally as ``user``)."""
    spec = f"{user}@{container}" if user else container
    return Host(OuterBackend(spec, podman=outer.podman))


class OuterBackend(PodmanBackend):  # type: ignore[misc]
    """testinfra's podman backend, with the podman command of an :class:`Outer`."""

    def __init__(self, name: str, *args: Any, podman: Sequence[str] = ("podman",), **kw: Any):
        self.podman_command = " ".join(shlex.quote(p) for p in podman)
        super().__init__(name, *args, **kw)

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        user = f"-u {shlex.quote(self.user)} " if self.user else ""
        out = self.run_local(f"{self.podman_command} exec {user}%s /bin/sh -c %s", self.name, cmd)
        out.command = self.encode(cmd)
        return out
