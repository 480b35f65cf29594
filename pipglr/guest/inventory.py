"""What the nested storage holds, read from the nested podman's API (podman-py).

Images (``GET /libpod/images/json?all=true``), the executor's volumes (``runner-*``,
the per-build and per-project cache volumes gitlab-runner's docker executor creates),
the per-project cache directories under the cache volume (the executor binds
``<cache_dir>/<project unique name>/...``), which of them any container in any state
uses (``GET /libpod/containers/{id}/json``: ``Image``, ``Mounts``), and how many bytes
they take (``GET /libpod/system/df``: ``ImagesSize`` counts every layer once).
Cache directories hold files of the jobs' uids, so they are measured and removed in
the rootless podman's user namespace (``podman unshare du`` / ``rm``).
Runs in the image: python3-podman is the Debian package.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from podman import PodmanClient
from podman.errors import APIError, NotFound

from pipglr import layout
from pipglr.guest import lru
from pipglr.guest.lastuse import LastUse

#: Volumes the executor creates (``runner-<token>-project-<id>-concurrent-<n>-...``).
EXECUTOR_VOLUME_PREFIX = "runner-"
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def epoch(value: Any) -> float:
    """Seconds since the epoch from an API time (number or RFC 3339 text)."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        text = value.replace("Z", "+00:00")
        head, dot, rest = text.partition(".")
        if dot:  # nanoseconds: keep microseconds, fromisoformat wants at most 6 digits
            digits = "".join(c for c in rest if c.isdigit())
            text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
        try:
            return datetime.datetime.fromisoformat(text).timestamp()
        except ValueError:
            return 0.0
    return 0.0


#: How often an image list (or ``system df``) is asked again when an image went while
#: podman made it.
LIST_ATTEMPTS = 5
#: Seconds between those attempts (a removal takes a moment to finish).
LIST_PAUSE = 0.5
T = TypeVar("T")


def again_if_an_image_went(call: Callable[[], T], attempts: int = LIST_ATTEMPTS) -> T:
    """``call()``, asked again when it fails because an image went meanwhile. Podman
    lists image ids first and reads each image after: one removed in between (by the
    evictor, the prune or a job's ``podman rmi``) fails the whole image list or
    ``system df`` with 500 "... image not known" (measured on podman 5.4.2 during the
    evictor's loop). Any other error is raised at once."""
    for attempt in range(attempts):
        try:
            return call()
        except APIError as exc:
            if "image not known" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(LIST_PAUSE)
    raise AssertionError("unreachable")


def list_images(client: PodmanClient, attempts: int = LIST_ATTEMPTS) -> list[Any]:
    """Every image (``all=True``), asked again if an image went meanwhile."""
    return again_if_an_image_went(lambda: list(client.images.list(all=True)), attempts)


def maintained(labels: dict[str, str], tags: Sequence[str]) -> bool:
    """Whether an image is a maintained job image (``pipglr images``): it carries
    :data:`layout.MAINTAINED_LABEL` = NAME and is still tagged ``localhost/NAME``. A
    rebuild's previous image keeps the label but loses the tag, so it ages out."""
    name = str(labels.get(layout.MAINTAINED_LABEL) or "")
    image = f"{layout.MAINTAINED_PREFIX}{name}"
    return bool(name) and any(t in (image, f"{image}:latest") for t in tags)


@dataclass(frozen=True)
class Use:
    """What one container holds on to."""

    container: str
    image: str
    volumes: frozenset[str]
    cache_dirs: frozenset[str]


@dataclass(frozen=True)
class Usage:
    """Bytes the managed things take: images (layers once), volumes, cache dirs."""

    images: int
    volumes: int
    cache: int
    filesystem_size: int = 0
    filesystem_free: int = 0

    @property
    def total(self) -> int:
        return self.images + self.volumes + self.cache


@dataclass
class Inventory:
    """Reads and removes what the evictor manages."""

    client: PodmanClient
    cache_root: Path = Path(str(layout.CACHE_MOUNT))
    storage: Path = Path(str(layout.STORAGE_MOUNT))
    run: Runner = _run

    def uses(self) -> list[Use]:
        """Every container (any state) and what it uses."""
        found = []
        for listed in self.client.containers.list(all=True):
            try:
                attrs = self.client.containers.get(listed.id).attrs
            except NotFound:
                continue  # removed meanwhile
            found.append(self.use_of(attrs))
        return found

    def use_of(self, attrs: dict[str, Any]) -> Use:
        """A container's use from its inspect data."""
        mounts = attrs.get("Mounts") or []
        volumes = {m.get("Name", "") for m in mounts if m.get("Type") == "volume"}
        caches = set()
        for mount in mounts:
            source = Path(str(mount.get("Source", "")))
            if mount.get("Type") == "bind" and source.is_relative_to(self.cache_root):
                parts = source.relative_to(self.cache_root).parts
                if parts:
                    caches.add(parts[0])
        return Use(
            str(attrs.get("Id", "")), str(attrs.get("Image", "")),
            frozenset(volumes - {""}), frozenset(caches),
        )  # fmt: skip

    def cache_dirs(self) -> dict[str, tuple[int, float]]:
        """Size and newest modification time of each top-level cache directory."""
        try:
            names = sorted(n for n in os.listdir(self.cache_root) if not n.startswith("."))
        except OSError:
            return {}
        if not names:
            return {}
        done = self.run(
            ["podman", "unshare", "du", "-s", "-B1", "--time", "--time-style=+%s",
             *(str(self.cache_root / n) for n in names)]
        )  # fmt: skip
        found = {}
        for line in done.stdout.splitlines():
            size, _, rest = line.partition("\t")
            when, _, path = rest.partition("\t")
            if size.isdigit() and when.isdigit():
                found[Path(path).name] = (int(size), float(when))
        return found

    def usage(self) -> Usage:
        """Current bytes per kind, and the storage filesystem's size and free space."""
        df = again_if_an_image_went(self.client.df)
        volumes = sum(
            int(v.get("Size") or 0)
            for v in df.get("Volumes") or []
            if str(v.get("VolumeName", "")).startswith(EXECUTOR_VOLUME_PREFIX)
        )
        cache = sum(size for size, _ in self.cache_dirs().values())
        stat = os.statvfs(self.storage)
        return Usage(
            int(df.get("ImagesSize") or 0), volumes, cache,
            stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize,
        )  # fmt: skip

    def items(self, book: LastUse, uses: Sequence[Use]) -> list[lru.Item]:
        """Every image, executor volume and cache directory as an eviction item;
        last use from the book, else the creation (modification) time."""
        used_images = {u.image for u in uses}
        used_volumes = {v for u in uses for v in u.volumes}
        used_caches = {c for u in uses for c in u.cache_dirs}
        items = []
        for image in list_images(self.client):
            a = image.attrs
            key = str(a.get("Id", ""))
            tags = tuple(t for t in a.get("RepoTags") or [] if t and "<none>" not in t)
            last = book.get(lru.IMAGE, key) or epoch(a.get("Created"))
            items.append(
                lru.Item(lru.IMAGE, key, int(a.get("Size") or 0), last, tags,
                         key in used_images, str(a.get("ParentId") or "") or None,
                         maintained(a.get("Labels") or {}, tags))
            )  # fmt: skip
        sizes = {
            str(v.get("VolumeName")): int(v.get("Size") or 0)
            for v in again_if_an_image_went(self.client.df).get("Volumes") or []
        }
        for volume in self.client.volumes.list():
            name = str(volume.name)
            if name.startswith(EXECUTOR_VOLUME_PREFIX):
                last = book.get(lru.VOLUME, name) or epoch(volume.attrs.get("CreatedAt"))
                items.append(
                    lru.Item(lru.VOLUME, name, sizes.get(name, 0), last, (name,),
                             name in used_volumes)
                )  # fmt: skip
        for name, (size, mtime) in self.cache_dirs().items():
            last = max(book.get(lru.CACHE, name) or 0.0, mtime)
            items.append(lru.Item(lru.CACHE, name, size, last, (name,), name in used_caches))
        return items

    def in_use(self, item: lru.Item) -> bool:
        """Asked again right before a removal: a job may have started meanwhile."""
        uses = self.uses()
        if item.kind == lru.IMAGE:
            return any(u.image == item.key for u in uses)
        if item.kind == lru.VOLUME:
            return any(item.key in u.volumes for u in uses)
        return any(item.key in u.cache_dirs for u in uses)

    def remove(self, item: lru.Item) -> str | None:
        """Remove ``item`` without force (podman itself refuses what a container
        uses); None on success, else the reason it stays."""
        try:
            if item.kind == lru.IMAGE:
                # By tag: an id with several tags needs force, which would also take
                # containers; the last untag removes the image.
                for ref in item.names or (item.key,):
                    self.client.images.remove(ref)
            elif item.kind == lru.VOLUME:
                self.client.volumes.remove(item.key)
            else:
                path = self.cache_root / item.key
                done = self.run(["podman", "unshare", "rm", "-rf", "--one-file-system", str(path)])
                if done.returncode != 0:
                    return (done.stderr.strip().splitlines() or ["rm failed"])[-1]
        except NotFound:
            return None
        except APIError as exc:
            return str(exc.explanation or exc).splitlines()[0]
        return None
