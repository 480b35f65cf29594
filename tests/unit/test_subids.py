"""pipglr.subids: the podman user's subuid/subgid layout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipglr import layout, subids
from pipglr.errors import IdLayoutError
from pipglr.subids import (
    Extent,
    IdRange,
    compute_ranges,
    image_subid_file,
    misfits,
    parse_id_map,
    parse_subid_file,
    render_subid_file,
    rootless_host_map,
)

REPO = Path(__file__).resolve().parents[2]

EXCLUDED = {0, layout.RUNNER.uid, layout.PODMAN.uid}

SHAPES = [
    pytest.param(rootless_host_map(1000, 100000, 65539), id="rootless-65539"),
    pytest.param([Extent(0, 0, 4294967295)], id="rootful-identity"),
    pytest.param(rootless_host_map(1000, 524288, 200000), id="rootless-large"),
    pytest.param(
        rootless_host_map(1000, 100000, 30000) + [Extent(30001, 300000, 35539)],
        id="rootless-two-ranges",
    ),
    pytest.param(
        [Extent(0, 5000, 1), Extent(1, 100000, 1500), Extent(1501, 400000, 64038)],
        id="straddles-user-ids",
    ),
]


def test_default_layout_matches_the_documented_one() -> None:
    """A 65539-id host range gives podman:1:999 and podman:1002:64537."""
    assert image_subid_file() == "podman:1:999\npodman:1002:64537\n"


@pytest.mark.parametrize("outer", SHAPES)
def test_ranges_total_nested_ids_and_avoid_accounts(outer: list[Extent]) -> None:
    """Every shape yields exactly 65536 ids, none of them root, runner or podman."""
    ranges = compute_ranges(outer)
    ids = {i for r in ranges for i in range(r.start, r.end)}
    assert len(ids) == sum(r.count for r in ranges) == layout.NESTED_IDS
    assert not ids & EXCLUDED


@pytest.mark.parametrize("outer", SHAPES)
def test_no_range_straddles_an_outer_extent(outer: list[Extent]) -> None:
    """Each range lies inside a single extent of the outer map."""
    assert misfits(compute_ranges(outer), outer) == []


def test_split_host_range_is_cut_at_the_extent_border() -> None:
    """Contiguous inside ids from two extents become two ranges, not one."""
    outer = rootless_host_map(1000, 100000, 30000) + [Extent(30001, 300000, 35539)]
    ranges = compute_ranges(outer)
    assert IdRange(1002, 28999) in ranges and IdRange(30001, 35538) in ranges


def test_misfits_detects_a_straddling_range() -> None:
    """A range crossing from one extent into the next is reported."""
    outer = [Extent(0, 0, 10), Extent(10, 500, 10)]
    assert misfits([IdRange(5, 10)], outer) == [IdRange(5, 10)]
    assert misfits([IdRange(1, 9), IdRange(10, 10)], outer) == []


@pytest.mark.parametrize("count", [65536, 65537, 1000])
def test_too_few_ids_raise_with_the_fix(count: int) -> None:
    """Too small a host range is an error recommending 65539 ids and usermod.

    (65538 subids are the exact minimum: container root is the host user itself;
    65539 is the documented size, leaving one spare id.)
    """
    with pytest.raises(IdLayoutError) as info:
        compute_ranges(rootless_host_map(1000, 100000, count))
    message = str(info.value)
    assert "65539" in message and "usermod" in message and "\n" not in message


def test_parse_id_map_reads_proc_format() -> None:
    """/proc/self/uid_map text parses into sorted extents."""
    text = "         1     100000      65539\n         0       1000          1\n"
    assert parse_id_map(text) == [Extent(0, 1000, 1), Extent(1, 100000, 65539)]


def test_parse_id_map_rejects_garbage() -> None:
    """A malformed map line is an IdLayoutError, not a crash."""
    with pytest.raises(IdLayoutError):
        parse_id_map("0 1000\n")


def test_subid_file_round_trip() -> None:
    """render_subid_file and parse_subid_file are inverse for one user."""
    ranges = [IdRange(1, 999), IdRange(1002, 64537)]
    text = render_subid_file("podman", ranges) + "other:5:6\n"
    assert parse_subid_file(text, "podman") == ranges


def test_a_jobs_ids_come_in_three_pieces() -> None:
    """The image's layout gives a job ids 0-65536 as 0, 1-999 and 1000-65536."""
    ranges = subids.compute_ranges(subids.DEFAULT_OUTER_MAP)
    pieces = [(e.inside, e.count) for e in subids.job_id_map(ranges)]
    assert pieces == [(0, 1), (1, 999), (1000, 64537)]


def test_the_example_job_images_subids_fit_the_jobs_pieces() -> None:
    """examples/podman-job's sub-id ranges (README: Image builds in jobs) each lie in one
    piece of a job's ids, so newuidmap works in the job; the common ``root:1:65535``
    straddles two and fails (the control)."""
    containerfile = (REPO / "examples/podman-job/Containerfile").read_text()
    found = re.search(r"printf '([^']*)' > /etc/subuid", containerfile)
    assert found, "the example writes /etc/subuid with printf"
    text = found[1].replace("\\n", "\n")
    job = subids.job_id_map(subids.compute_ranges(subids.DEFAULT_OUTER_MAP))
    for user in ("root", "build"):
        ranges = subids.parse_subid_file(text, user)
        assert sum(r.count for r in ranges) >= 65535, (user, ranges)
        assert subids.misfits(ranges, job) == [], (user, ranges)
    assert subids.misfits([subids.IdRange(1, 65535)], job) == [subids.IdRange(1, 65535)]
