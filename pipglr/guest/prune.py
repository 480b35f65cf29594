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
evictor's ``PIPGLR_EVICT_MIN_AGE`` (default 1 h). Runs in the image (python3-podman).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podman import PodmanClient
from podman.errors import APIError, NotFound

from pipglr import layout
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


def prune(client: PodmanClient, now: float, grace: float) -> str:
    """One prune; a line saying what went."""
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
    text = (
        f"pruned {removed} stopped container(s) no running job needs, "
        f"{len(images.get('ImagesDeleted') or [])} dangling image(s), "
        f"{len(networks.get('NetworksDeleted') or [])} network(s), {volumes} volume(s); "
        f"reclaimed {int(images.get('SpaceReclaimed') or 0)} bytes of images"
    )
    return text + (f"; not removed: {kept_errors[-1]}" if kept_errors else "")


def main(image_threshold: str) -> str:
    """The timer's prune against the nested API."""
    grace = load_settings(image_threshold).min_age
    with PodmanClient(base_url=f"unix://{layout.SOCKET_PATH}") as client:
        return prune(client, time.time(), grace)
