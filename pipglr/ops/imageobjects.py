"""What every operation starts from: the operator's podman, the pipglr image's labels,
and the secrets and volumes that podman holds.

Everything goes through an :class:`~pipglr.ops.outer.Outer` (the user's podman, or a
command that runs podman as that user) and through the runlabels *read from the
image*, so the CLI never types a label's command line itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipglr.build import labels
from pipglr.errors import EngineError, UsageError
from pipglr.ops.outer import Outer


@dataclass
class ImageObjects:
    """The operator's podman and the pipglr image it works with."""

    outer: Outer
    image: str

    def label_args(self, name: str, extra: Sequence[str] = ()) -> list[str]:
        """Label ``name`` as stored in the image: the arguments after ``podman``."""
        result = self.outer.run("image", "inspect", "--format", "{{json .Labels}}", self.image,
                                check=False)  # fmt: skip
        if result.returncode != 0:
            raise EngineError(f"no image {self.image}: build it (invoke build) or pull it")
        stored = json.loads(result.stdout or "{}") or {}
        if name not in stored:
            raise UsageError(f"{self.image} has no {name!r} label: is it a pipglr image?")
        argv = labels.argv_from_text(stored[name], self.image)
        if argv[0] != "podman":
            raise UsageError(f"the {name} label of {self.image} does not run podman")
        return [*argv[1:], *extra]

    def run_label(self, name: str, extra: Sequence[str] = (), cwd: Path | None = None) -> str:
        """Execute a label; return its stdout, raise with its stderr on failure."""
        args = self.label_args(name, extra)
        result = self.outer.run(*args, cwd=cwd, check=False, timeout=900)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["failed"])[-1]
            raise EngineError(f"the {name} label failed: {last}")
        return result.stdout

    def secrets(self) -> list[str]:
        return self.outer.run("secret", "ls", "--format", "{{.Name}}").stdout.split()

    def volumes(self) -> list[str]:
        return self.outer.run("volume", "ls", "--format", "{{.Name}}").stdout.split()
