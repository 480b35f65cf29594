"""What a new outer run takes over from the last one, with a transient nested store.

The nested podman keeps its container records (``db.sql``, c/storage's container
and container-layer lists) in its run root, a tmpfs (``transient_store`` in the
storage.conf :mod:`pipglr.guest.podmansetup` writes). That is what keeps a job that
fills the storage volume from being reported as succeeded: with the database on the
full volume, podman could not record the job container's exit code, and its
Docker-compatible wait answered ``StatusCode: 0`` (podman's
``pkg/api/handlers/compat/containers.go``, ``WaitContainerDocker``; measured). It
also means every outer start is a fresh nested podman, like a reboot of a host
with ``transient_store`` (podman's own ``podman-clean-transient.service`` runs
``podman system prune --external`` at boot). At the API service's first start in an
outer run (no :data:`MARKER` on the runtime tmpfs yet), :func:`carry_over` (its
``ExecStartPre``, so the rootless pause process it starts lives where the service's
would):

- removes the containers c/storage still lists but podman no longer knows (a
  previous outer run of a persistent store: the records of its last containers);
- collects the container layers nothing lists any more (``system prune
  --external``: the writable layers of the last run's job containers);
- registers again every volume whose data is on the storage volume (the executor's
  ``runner-*`` cache volumes: ``podman volume create`` keeps an existing ``_data``);
- retires the database of a store that was persistent before (``db.sql`` in the
  graph root), once the above no longer needs it.

Images are not affected: their records stay on the storage volume. Standard
library only: this module runs in the image.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipglr import layout
from pipglr.errors import EngineError

#: Runs a podman command line and returns its result (``subprocess.run`` by default).
Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]

#: The rootless graph root inside the storage volume.
GRAPH_ROOT = Path(str(layout.STORAGE_MOUNT)) / "storage"
#: Written on the podman user's runtime tmpfs once carried over: gone with the outer run.
MARKER = Path(str(layout.PODMAN_RUNTIME_DIR)) / ".pipglr-carried-over"
DB_NAME = "db.sql"
#: The files of a persistent store's database (sqlite and its journal files).
LEGACY_DB_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm")
#: ``podman ps --external``'s state of a container only c/storage knows.
STORAGE_ONLY = "storage"


def _podman(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, check=False, timeout=300
    )


@dataclass(frozen=True)
class CarryOver:
    """What :func:`carry_over` did."""

    fresh: bool
    removed: int = 0
    volumes: int = 0
    legacy_db: bool = False

    def summary(self) -> str:
        if not self.fresh:
            return "nested store already set up in this run"
        legacy = "; the persistent store's database retired" if self.legacy_db else ""
        return (
            f"transient nested store: {self.removed} leftover container(s) removed, "
            f"{self.volumes} volume(s) carried over{legacy}"
        )


def _checked(run: Run, args: Sequence[str]) -> str:
    result = run(args)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise EngineError(
            f"nested `podman {' '.join(args)}` failed at boot: {last} "
            f"(`journalctl -u {layout.PODMAN_SERVICE_UNIT}` has the rest)"
        )
    return result.stdout


def leftover_containers(ps_json: str) -> list[str]:
    """Ids of the containers only c/storage lists (``podman ps -a --external``)."""
    return [str(c["Id"]) for c in json.loads(ps_json or "[]") if c.get("State") == STORAGE_ONLY]


def volume_names(volumes: Path) -> list[str]:
    """Volumes whose data is on the storage volume (``NAME/_data``), sorted."""
    if not volumes.is_dir():
        return []
    return sorted(d.name for d in volumes.iterdir() if (d / "_data").is_dir())


def carry_over(
    run: Run = _podman, graph_root: Path = GRAPH_ROOT, marker: Path = MARKER
) -> CarryOver:
    """Clean up after the last outer run and register its volumes again; once per
    outer run (a second setup in the same run could take a running build's
    containers for leftovers)."""
    if marker.exists():
        return CarryOver(fresh=False)
    stale = leftover_containers(_checked(run, ["ps", "--all", "--external", "--format", "json"]))
    if stale:
        _checked(run, ["rm", "--force", *stale])
    _checked(run, ["system", "prune", "--external", "--force"])
    known = set(_checked(run, ["volume", "ls", "--format", "{{.Name}}"]).split())
    missing = [n for n in volume_names(graph_root / "volumes") if n not in known]
    for name in missing:
        _checked(run, ["volume", "create", "--ignore", name])
    legacy = [graph_root / name for name in LEGACY_DB_FILES if (graph_root / name).exists()]
    for path in legacy:
        path.unlink()
    marker.touch()
    return CarryOver(True, len(stale), len(missing), bool(legacy))
