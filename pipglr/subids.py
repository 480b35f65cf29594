"""Compute the in-image subuid/subgid ranges of the ``podman`` user.

Nested containers need :data:`~pipglr.layout.NESTED_IDS` ids besides their root.
They must come from ids the outer container has (its ``uid_map``), must avoid the
accounts of the outer container (root, runner, podman) and no range may straddle two
outer extents: the kernel maps every inner extent through exactly one outer extent,
and a straddling one fails with "newuidmap: write to uid_map failed".

Standard library only: this module runs in the image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipglr import layout
from pipglr.errors import IdLayoutError


@dataclass(frozen=True, order=True)
class Extent:
    """One line of a ``uid_map``: ``count`` ids from ``inside`` map to ``outside``."""

    inside: int
    outside: int
    count: int

    @property
    def end(self) -> int:
        """First inside id after this extent."""
        return self.inside + self.count


@dataclass(frozen=True, order=True)
class IdRange:
    """One ``/etc/subuid`` entry: ``count`` ids starting at ``start``."""

    start: int
    count: int

    @property
    def end(self) -> int:
        """First id after this range."""
        return self.start + self.count


def parse_id_map(text: str) -> list[Extent]:
    """Parse ``/proc/<pid>/uid_map`` (or ``gid_map``) text into extents."""
    extents = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise IdLayoutError(f"unreadable id map line {line!r}: expected 3 numbers")
        inside, outside, count = (int(f) for f in fields)
        extents.append(Extent(inside, outside, count))
    return sorted(extents)


def read_id_map(path: Path = Path("/proc/self/uid_map")) -> list[Extent]:
    """Read and parse an id map of the current process."""
    return parse_id_map(path.read_text())


def rootless_host_map(host_id: int, sub_start: int, sub_count: int) -> list[Extent]:
    """The map rootless podman gives the outer container for a host user.

    Container id 0 is the host user itself; ids 1.. come from its subid range.
    """
    return [Extent(0, host_id, 1), Extent(1, sub_start, sub_count)]


#: The map the image is built for: a host user with one range of the required size.
DEFAULT_OUTER_MAP = rootless_host_map(1000, 100000, layout.HOST_SUBIDS_REQUIRED)


def compute_ranges(
    outer: Sequence[Extent],
    exclude: Iterable[int] = (0, layout.RUNNER.uid, layout.PODMAN.uid),
    needed: int = layout.NESTED_IDS,
) -> list[IdRange]:
    """Choose ranges totalling ``needed`` ids inside ``outer``, avoiding ``exclude``.

    Ranges are taken lowest id first, each one inside a single extent.

    Raises:
        IdLayoutError: the extents hold fewer than ``needed`` usable ids.
    """
    skip = sorted(set(exclude))
    ranges: list[IdRange] = []
    remaining = needed
    for extent in sorted(outer):
        start = extent.inside
        cuts = [i for i in skip if extent.inside <= i < extent.end] + [extent.end]
        for cut in cuts:
            if remaining == 0:
                return ranges
            take = min(cut - start, remaining)
            if take > 0:
                ranges.append(IdRange(start, take))
                remaining -= take
            start = cut + 1
    if remaining:
        usable = needed - remaining
        raise IdLayoutError(
            f"the outer container has only {usable} usable ids for nested containers, "
            f"{needed} are needed: give the host user one subuid and one subgid range "
            f"of {layout.HOST_SUBIDS_REQUIRED} ids (e.g. `usermod --add-subuids "
            f"100000-{100000 + layout.HOST_SUBIDS_REQUIRED - 1} --add-subgids "
            f"100000-{100000 + layout.HOST_SUBIDS_REQUIRED - 1} USER`, after removing "
            f"its old ranges), then run `podman system migrate` as that user"
        )
    return ranges


def misfits(ranges: Iterable[IdRange], outer: Sequence[Extent]) -> list[IdRange]:
    """Ranges that do not lie wholly inside one extent of ``outer``."""
    return [r for r in ranges if not any(e.inside <= r.start and r.end <= e.end for e in outer)]


def job_id_map(ranges: Iterable[IdRange], owner: int = layout.PODMAN.uid) -> list[Extent]:
    """The ``uid_map`` of a nested container (a job), in the outer container's ids: its
    root is ``owner`` (the podman user), its ids from 1 the ``ranges`` in order, one
    extent each. A job image's own sub-id ranges must each lie inside one of these
    extents (:func:`misfits`), or newuidmap fails in the job."""
    extents, inside = [Extent(0, owner, 1)], 1
    for r in ranges:
        extents.append(Extent(inside, r.start, r.count))
        inside += r.count
    return extents


def render_subid_file(user: str, ranges: Iterable[IdRange]) -> str:
    """Text of ``/etc/subuid`` (or ``/etc/subgid``) giving ``ranges`` to ``user``."""
    return "".join(f"{user}:{r.start}:{r.count}\n" for r in ranges)


def parse_subid_file(text: str, user: str) -> list[IdRange]:
    """The ranges ``/etc/subuid``-format ``text`` gives to ``user``."""
    ranges = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] == user:
            ranges.append(IdRange(int(fields[1]), int(fields[2])))
    return ranges


def image_subid_file() -> str:
    """The ``/etc/subuid`` and ``/etc/subgid`` text baked into the image."""
    return render_subid_file(layout.PODMAN.name, compute_ranges(DEFAULT_OUTER_MAP))
