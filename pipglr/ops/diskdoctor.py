"""The doctor's disk-bounds row: what stops a hostile job from filling the host's disk.

Inside pipglr the nested containers' logs are bounded and the evictor caps images,
volumes and the cache; what bounds the filesystem under the user's podman volumes
(where the nested storage lives) is the host's business: a filesystem of its own
(filling it fills nothing else), or project quotas (xfs ``prjquota``, ext4 ``prjquota``
with the ``project`` feature) that let root put a size limit on a directory and let
podman enforce ``--storage-opt size=``. Pure functions over the text of
``/proc/self/mounts`` and the paths ``podman info`` names, like
:mod:`pipglr.ops.doctor`, which gathers the inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from pipglr.ops.doctor import OK, WARN, Finding

#: What the row's fix says.
FIX = "put ~/.local/share/containers on its own filesystem (or an xfs with prjquota)"
#: Filesystems with project quotas, and the mount options that enforce them
#: (xfs's ``pqnoenforce`` only accounts: not a limit).
QUOTA_OPTIONS = {"xfs": {"prjquota", "pquota", "pqenforce"}, "ext4": {"prjquota"}}
#: Mount points that are never a dedicated filesystem for podman's storage.
SHARED_MOUNTS = {PurePosixPath("/"), PurePosixPath("/home"), PurePosixPath("/var")}


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mounts``."""

    point: PurePosixPath
    fstype: str
    options: frozenset[str]


def _unescape(field: str) -> str:
    """A mounts field with the kernel's octal escapes (``\\040`` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    """The mounts of ``/proc/self/mounts`` text, in order (later ones cover earlier)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            point = PurePosixPath(_unescape(fields[1]))
            mounts.append(Mount(point, fields[2], frozenset(fields[3].split(","))))
    return mounts


def mount_of(path: PurePosixPath, mounts: list[Mount]) -> Mount | None:
    """The mount holding ``path``: the longest mount point above it (the last one when
    several share it, as a later mount covers an earlier one)."""
    best: Mount | None = None
    for mount in mounts:
        if path.is_relative_to(mount.point) and (
            best is None or len(mount.point.parts) >= len(best.point.parts)
        ):
            best = mount
    return best


def check_disk_bounds(volume_path: str, graph_root: str, mounts_text: str) -> Finding:
    """Whether the filesystem under podman's volumes is bounded: dedicated (its mount
    point is the volume directory or inside podman's storage directory, the parent of
    ``graph_root``) or with project quotas. ✓ when either holds, ! otherwise."""
    volumes = PurePosixPath(volume_path)
    storage = PurePosixPath(graph_root).parent
    mount = mount_of(volumes, parse_mounts(mounts_text))
    if mount is None:
        return Finding("disk bounds", WARN, f"no mount found for {volumes}", FIX)
    dedicated = mount.point not in SHARED_MOUNTS and (
        mount.point == volumes or mount.point.is_relative_to(storage)
    )
    quotas = bool(QUOTA_OPTIONS.get(mount.fstype, set()) & mount.options)
    where = f"{volumes} is on {mount.point} ({mount.fstype}"
    where += ", project quotas)" if quotas else ")"
    size = (
        "--storage-opt size= and a root-set project quota on the volume directory can be enforced"
        if quotas
        else "no project quotas, so no size limit (--storage-opt size=) can be enforced"
    )
    if dedicated:
        return Finding("disk bounds", OK, f"{where}, a filesystem of its own; {size}")
    if quotas:
        return Finding("disk bounds", OK, f"{where}, shared, but {size}")
    return Finding(
        "disk bounds",
        WARN,
        f"{where}, shared with the host; {size}: jobs filling it fill {mount.point}",
        FIX,
    )
