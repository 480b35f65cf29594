"""pytest-testinfra access into a container through an :class:`~pipglr.outer.Outer`."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from typing import Any

from testinfra.backend import base
from testinfra.backend.podman import PodmanBackend
from testinfra.host import Host

from pipglr.outer import Outer

#: Set in CI: an unusable engine fails the run instead of skipping it.
REQUIRE_ENGINE = os.environ.get("PIPGLR_REQUIRE_ENGINE", "") == "1"


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
