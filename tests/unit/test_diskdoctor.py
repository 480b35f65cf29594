"""pipglr.ops.diskdoctor: which bounds the filesystem under podman's volumes has."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from pipglr.ops import diskdoctor
from pipglr.ops.doctor import OK, WARN

HOME = "/home/ci"
ROOT = f"{HOME}/.local/share/containers/storage"
VOLUMES = f"{ROOT}/volumes"
#: The lines every sample shares: pseudo filesystems and a root filesystem.
BASE = """\
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
/dev/sda2 / ext4 rw,relatime,errors=remount-ro 0 0
tmpfs /run tmpfs rw,nosuid,nodev,size=3259120k,mode=755 0 0
"""


@pytest.mark.parametrize(
    ("extra", "status", "words"),
    [
        # Everything on /: the warning, with the fix.
        ("", WARN, "is on / (ext4), shared with the host; no project quotas"),
        # /home of its own is still shared (with every user's files).
        ("/dev/sdb1 /home ext4 rw,relatime 0 0\n", WARN, "jobs filling it fill /home"),
        # A mount elsewhere that does not hold the volumes changes nothing.
        ("/dev/sdc1 /srv xfs rw,prjquota 0 0\n", WARN, "is on / (ext4)"),
        # ~/.local/share/containers on its own filesystem.
        (f"/dev/sdc1 {HOME}/.local/share/containers xfs rw,relatime 0 0\n", OK,
         "a filesystem of its own; no project quotas"),
        # The volume directory itself mounted.
        (f"/dev/sdc1 {VOLUMES} ext4 rw 0 0\n", OK, "a filesystem of its own"),
        # Shared /home, but xfs with project quotas.
        ("/dev/sdb1 /home xfs rw,relatime,attr2,inode64,prjquota 0 0\n", OK,
         "(xfs, project quotas), shared, but --storage-opt size="),
        # ext4 with prjquota on a dedicated filesystem: both.
        (f"/dev/sdc1 {HOME}/.local/share/containers ext4 rw,prjquota 0 0\n", OK,
         "project quotas), a filesystem of its own; --storage-opt size="),
        # Quota accounting without enforcement is not a bound.
        ("/dev/sdb1 /home xfs rw,pqnoenforce 0 0\n", WARN, "no project quotas"),
        # A later mount covers an earlier one at the same point.
        (f"/dev/sdc1 {VOLUMES} xfs rw 0 0\n/dev/sdd1 /home ext4 rw 0 0\n"
         f"tmpfs {VOLUMES} tmpfs rw 0 0\n", OK, "on /home/ci/.local/share/containers/storage/"
         "volumes (tmpfs)"),
    ],
)  # fmt: skip
def test_disk_bounds_over_sample_mounts(extra: str, status: str, words: str) -> None:
    found = diskdoctor.check_disk_bounds(VOLUMES, ROOT, BASE + extra)
    assert found.status == status and words in found.detail, found
    assert found.fix == (diskdoctor.FIX if status == WARN else "")
    assert found.check == "disk bounds" and not found.blocks


def test_a_mount_point_with_a_space_is_decoded() -> None:
    """The kernel writes a space in a mount point as \\040."""
    home = "/home/c i"
    text = BASE + "/dev/sdc1 /home/c\\040i/.local/share/containers xfs rw 0 0\n"
    found = diskdoctor.check_disk_bounds(
        f"{home}/.local/share/containers/storage/volumes",
        f"{home}/.local/share/containers/storage",
        text,
    )
    assert found.status == OK and "on /home/c i/.local/share/containers (xfs)" in found.detail


def test_mount_of_prefers_the_deepest_mount_point_by_parts() -> None:
    """`/homes` is not above `/home/ci`: the match is by path parts, not text."""
    mounts = diskdoctor.parse_mounts(BASE + "/dev/sdb1 /homes ext4 rw 0 0\n")
    found = diskdoctor.mount_of(PurePosixPath(VOLUMES), mounts)
    assert found is not None and found.point == PurePosixPath("/")


def test_no_mounts_readable_is_a_warning() -> None:
    found = diskdoctor.check_disk_bounds(VOLUMES, ROOT, "")
    assert found.status == WARN and found.fix == diskdoctor.FIX
