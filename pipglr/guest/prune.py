"""``prune``: the scheduled clean-up (``pipglr-prune.timer``, ``PRUNE_INTERVAL``).

What it removes, and what it never touches:

- stopped containers, but never one of a job that may still be running: the docker
  executor creates a job's helper ("predefined") and build containers once and starts
  them again stage after stage (upstream ``executors/docker/docker.go``), so between
  two stages all of a running job's containers are stopped. Containers are grouped by
  the job label the executor sets (``com.gitlab.gitlab-runner.job.id``, upstream
  ``executors/docker/internal/labels``); a group goes only when none of it is running
  and none of it was created, started or finished within the grace period;
- dangling images and unused networks older than the grace period (podman refuses
  whatever a container uses);
- unused volumes other than the executor's ``runner-*`` ones: those hold a project's
  builds and cache, and the evictor ages them by last use.

Tagged images are left to the evictor (:mod:`pipglr.guest.evictor`), which removes
them least recently used first instead of all at once. The grace period is the
evictor's ``PIPGLR_EVICT_MIN_AGE`` (default 1 h). What went is counted in
:data:`pipglr.layout.PRUNE_STATS` (:data:`EMPTY_STATS`, :func:`record`) for the metrics
exporter. Runs in the image (python3-podman).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podman import PodmanClient
from podman.errors import APIError, NotFound

from pipglr import layout
from pipglr.guest import statsbook
from pipglr.guest.evictor import load_settings
from pipglr.guest.inventory import EXECUTOR_VOLUME_PREFIX, epoch

JOB_LABEL = "com.gitlab.gitlab-runner.job.id"
_ACTIVE = {"running", "paused", "restarting", "stopping", "configured"}


@dataclass(frozen=True)
class Box:
    """A container as the prune sees it."""

    id: str
    state: str
    job: str | None
    last_activity: float


def box(attrs: Mapping[str, Any]) -> Box:
    """From a ``GET /libpod/containers/json`` entry."""
    labels = attrs.get("Labels") or {}
    times = [epoch(attrs.get(k)) for k in ("Created", "StartedAt", "ExitedAt")]
    return Box(
        str(attrs.get("Id", "")), str(attrs.get("State", "")).lower(),
        labels.get(JOB_LABEL) or None, max(times),
    )  # fmt: skip


def prunable(boxes: Sequence[Box], now: float, grace: float) -> list[Box]:
    """Stopped containers no running job may need again."""
    by_job: dict[str, list[Box]] = {}
    for b in boxes:
        by_job.setdefault(b.job or f"container {b.id}", []).append(b)
    chosen = []
    for group in by_job.values():
        busy = any(b.state in _ACTIVE for b in group)
        recent = any(now - b.last_activity < grace for b in group)
        if not busy and not recent:
            chosen.extend(group)
    return chosen


@dataclass(frozen=True)
class Pruned:
    """What one prune removed, and what it could not."""

    containers: int = 0
    images: int = 0
    networks: int = 0
    volumes: int = 0
    #: The images' ``SpaceReclaimed`` (podman reports no size for the others).
    bytes: int = 0
    errors: tuple[str, ...] = field(default=())

    def line(self) -> str:
        """The journal line."""
        text = (
            f"pruned {self.containers} stopped container(s) no running job needs, "
            f"{self.images} dangling image(s), {self.networks} network(s), "
            f"{self.volumes} volume(s); reclaimed {self.bytes} bytes of images"
        )
        return text + (f"; not removed: {self.errors[-1]}" if self.errors else "")


def prune_counted(client: PodmanClient, now: float, grace: float) -> Pruned:
    """One prune; what went."""
    until = f"{int(grace)}s"
    boxes = [box(c.attrs) for c in client.containers.list(all=True)]
    removed, kept_errors = 0, []
    for b in prunable(boxes, now, grace):
        try:
            client.containers.remove(b.id)
            removed += 1
        except NotFound:
            pass
        except APIError as exc:
            kept_errors.append(str(exc.explanation or exc).splitlines()[0])
    images = client.images.prune(filters={"dangling": True, "until": until})
    networks = client.networks.prune(filters={"until": until})
    volumes = 0
    for volume in client.volumes.list(filters={"dangling": True}):
        if str(volume.name).startswith(EXECUTOR_VOLUME_PREFIX):
            continue
        if now - epoch(volume.attrs.get("CreatedAt")) < grace:
            continue
        try:
            client.volumes.remove(volume.name)
            volumes += 1
        except APIError as exc:
            kept_errors.append(str(exc.explanation or exc).splitlines()[0])
    return Pruned(
        removed, len(images.get("ImagesDeleted") or []),
        len(networks.get("NetworksDeleted") or []), volumes,
        int(images.get("SpaceReclaimed") or 0), tuple(kept_errors),
    )  # fmt: skip


def prune(client: PodmanClient, now: float, grace: float) -> str:
    """One prune; a line saying what went."""
    return prune_counted(client, now, grace).line()


#: The shape of :data:`pipglr.layout.PRUNE_STATS` (:mod:`pipglr.guest.statsbook`).
EMPTY_STATS: dict[str, Any] = {
    "runs": 0,
    "removed": {"containers": 0, "images": 0, "networks": 0, "volumes": 0},
    "bytes": 0,
    "failures": 0,
    "last_run": None,
    "last_failure": None,
}


def record(stats: statsbook.Stats, now: float, pruned: Pruned | None) -> None:
    """Count one run in ``stats``: what it removed, each item it could not remove as a
    failure; ``pruned`` None: the run itself failed (one failure, no ``last_run``)."""
    statsbook.add(stats, "runs")
    if pruned is None:
        statsbook.add(stats, "failures")
        stats["last_failure"] = now
        return
    for kind in ("containers", "images", "networks", "volumes"):
        statsbook.add(stats, "removed", kind, amount=getattr(pruned, kind))
    statsbook.add(stats, "bytes", amount=pruned.bytes)
    if pruned.errors:
        statsbook.add(stats, "failures", amount=len(pruned.errors))
        stats["last_failure"] = now
    stats["last_run"] = now


def counted(client: PodmanClient, now: float, grace: float, stats_path: Path) -> str:
    """One prune, counted in ``stats_path`` (also when it fails: then it raises on)."""
    stats = statsbook.load(stats_path, EMPTY_STATS)
    try:
        pruned = prune_counted(client, now, grace)
    except Exception:
        record(stats, now, None)
        _save(stats_path, stats)
        raise
    record(stats, now, pruned)
    return pruned.line() + _save(stats_path, stats)


def _save(path: Path, stats: statsbook.Stats) -> str:
    """Write the counters; a failure is said ("" when written), not fatal: a prune
    that worked is not failed by its counters."""
    try:
        statsbook.save(path, stats)
    except OSError as exc:
        return f"; counters not written to {path} ({exc.strerror or exc})"
    return ""


def main(image_threshold: str, stats_path: Path = Path(str(layout.PRUNE_STATS))) -> str:
    """The timer's prune against the nested API."""
    grace = load_settings(image_threshold).min_age
    with PodmanClient(base_url=f"unix://{layout.SOCKET_PATH}") as client:
        return counted(client, time.time(), grace, stats_path)
