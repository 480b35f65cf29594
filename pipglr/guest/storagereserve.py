"""``storage-check``: keep the nested podman able to clean up after a full disk.

Podman's container records are on the run root's tmpfs (a transient store, see
:mod:`pipglr.guest.carryover`), so a job that fills the nested storage still gets
its exit recorded and the executor removes its containers. What a full volume still
needs rewritten on the volume itself are c/storage's image and layer lists (when an
image goes) and the evictor's book. So a few MiB are held back in a reserve file on
the storage volume. Every :data:`CHECK_INTERVAL` (``pipglr-storage-check.timer``,
user podman) this check looks at the free space; when it is below half the
reserve, it gives up a quarter of the reserve, removes the stopped nested
containers no running job needs (:func:`prune_stopped`) and takes the reserve back
once there is room again.

Not ``podman container prune``: between two stages every container of a running job
is stopped (the docker executor starts its helper and build containers again stage
after stage), and a plain prune removed them under the job. The check decides as the
scheduled prune does (:func:`pipglr.guest.prune.prunable`: containers grouped by the
executor's job label; a group goes only when none of it is running and none of it
was active within the grace period), with a grace of :data:`FULL_GRACE` instead of
the prune timer's hour: a full volume needs the room, and a running job's containers
are all stopped only for the moment between two stages. It lists the containers and
removes the chosen ones with the podman CLI (``podman container rm`` without
``--force``: one that started again meanwhile stays), so it needs no API service.

A quarter at a time, because a check can come while the job that fills the disk is
still writing (seen in CI, when podman's database was still on the volume):
everything released then goes to the job and nothing is left for the cleanup. With
the reserve given up in steps, the next check's quarter is there after the writer
stopped.

Standard library only (the job-aware choice imports podman-py's module only when the
volume is full): this module runs in the image.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pipglr import layout

#: Held back on the storage volume: room for what a cleanup rewrites there.
RESERVE_BYTES = 64 * 2**20
#: How much of the reserve one check gives up when the storage is full.
RELEASE_STEP = RESERVE_BYTES // 4
RESERVE_NAME = ".pipglr-reserve"
#: How often the timer runs the check (systemd time span).
CHECK_INTERVAL = "15s"
#: Seconds a stopped job's containers are spared after its last activity when the
#: volume is full: far longer than the pause between two stages of a running job.
FULL_GRACE = 600
_CHUNK = 2**20


def reserve_path(storage: Path) -> Path:
    return storage / RESERVE_NAME


def free_bytes(storage: Path) -> int:
    return shutil.disk_usage(storage).free


def take_reserve(storage: Path, size: int = RESERVE_BYTES) -> bool:
    """Make the reserve file ``size`` bytes of real blocks; False when there is no room
    (a partial reserve is removed again, so it never adds to a full disk)."""
    path = reserve_path(storage)
    have = path.stat().st_size if path.exists() else 0
    if have >= size:
        return True
    if free_bytes(storage) < (size - have) * 2:
        return False
    try:
        with path.open("ab") as out:
            zeros = bytes(_CHUNK)
            for _ in range(have, size, _CHUNK):
                out.write(zeros)
            out.flush()
            os.fsync(out.fileno())
    except OSError:
        path.unlink(missing_ok=True)
        return False
    return True


def release_reserve(storage: Path, step: int = RELEASE_STEP) -> tuple[int, int]:
    """Give up to ``step`` bytes of the reserve back; (released, left) in bytes."""
    path = reserve_path(storage)
    have = path.stat().st_size if path.exists() else 0
    left = max(0, have - step)
    if left:
        os.truncate(path, left)
    else:
        path.unlink(missing_ok=True)
    return have - left, left


@dataclass(frozen=True)
class CheckResult:
    """What one check did; ``notable`` unless it only found the reserve in place."""

    text: str
    notable: bool


def check(
    storage: Path, podman: str = "podman", size: int = RESERVE_BYTES, step: int = RELEASE_STEP
) -> CheckResult:
    """One check: recover when nearly full, keep the reserve otherwise; say what."""
    free = free_bytes(storage)
    if free >= size // 2:
        taken = take_reserve(storage, size)
        state = "kept" if taken else "not taken yet (too little room)"
        return CheckResult(f"nested storage: {free // 2**20} MiB free, reserve {state}", not taken)
    released, left = release_reserve(storage, step)
    removed, failure = prune_stopped(podman)
    taken = take_reserve(storage, size)
    outcome = f"removed, {failure}" if failure else "removed"
    return CheckResult(
        f"nested storage was full ({free // 2**20} MiB free): {released // 2**20} MiB of the "
        f"reserve released ({left // 2**20} MiB left), {removed} "
        f"stopped container(s) no running job needs {outcome}; now "
        f"{free_bytes(storage) // 2**20} MiB free, "
        f"reserve {'taken back' if taken else 'not taken back yet'}",
        True,
    )


def _failure(result: subprocess.CompletedProcess[str], what: str) -> str:
    reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
    return f"{what} failed ({reason})"


def prune_stopped(
    podman: str = "podman", now: float | None = None, grace: float = FULL_GRACE
) -> tuple[int, str]:
    """Remove the stopped containers no running job needs (the scheduled prune's
    choice, :func:`pipglr.guest.prune.prunable`); return how many went and what failed
    (empty when nothing did)."""
    from pipglr.guest import prune  # podman-py: only when the volume is full

    listed = subprocess.run(
        [podman, "container", "ls", "--all", "--format", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if listed.returncode != 0:
        return 0, _failure(listed, "listing the containers")
    try:
        entries = json.loads(listed.stdout or "[]")
    except json.JSONDecodeError:
        return 0, "listing the containers failed (not JSON)"
    boxes = [prune.box(entry) for entry in entries if isinstance(entry, dict)]
    chosen = prune.prunable(boxes, time.time() if now is None else now, grace)
    if not chosen:
        return 0, ""
    removed = subprocess.run(
        [podman, "container", "rm", *(b.id for b in chosen)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    count = len(removed.stdout.split())
    return count, "" if removed.returncode == 0 else _failure(removed, "prune")


def main_check() -> str:
    """The check on the storage volume, as a journal line: routine ones at debug
    priority (the unit's LogLevelMax drops them), the rest at notice."""
    result = check(Path(str(layout.STORAGE_MOUNT)))
    return f"<{5 if result.notable else 7}>pipglr: {result.text}"
