"""pipglr.guest.statsbook: the counters files of the podman user's services."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from pipglr.guest import statsbook

EMPTY = {"runs": 0, "removed": {"images": 0, "volumes": 0}, "last_run": None, "note": ""}


def test_load_is_empty_without_a_file_and_continues_from_one(tmp_path: Path) -> None:
    """Missing or damaged: the empty shape (a copy: the template is not changed);
    otherwise the file's counters, continued."""
    path = tmp_path / "s.json"
    first = statsbook.load(path, EMPTY)
    assert first == EMPTY
    statsbook.add(first, "removed", "images", amount=3)
    assert EMPTY["removed"] == {"images": 0, "volumes": 0}, "the template is untouched"
    statsbook.add(first, "runs")
    first["last_run"] = 12.5
    statsbook.save(path, first)
    again = statsbook.load(path, EMPTY)
    assert again == {"runs": 1, "removed": {"images": 3, "volumes": 0}, "last_run": 12.5,
                     "note": ""}  # fmt: skip
    statsbook.add(again, "runs")
    assert again["runs"] == 2
    for damaged in ("{not json", "[1, 2]", '"text"'):
        path.write_text(damaged)
        assert statsbook.load(path, EMPTY) == EMPTY, damaged


def test_load_keeps_the_shape_and_drops_what_does_not_fit(tmp_path: Path) -> None:
    """Values of the wrong type fall back to the empty ones; unknown keys go; a new
    key of the shape starts empty (a file of an older version continues)."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"runs": "7", "removed": {"images": 2, "other": 9},
                                "last_run": True, "stray": 1, "note": "hi"}))  # fmt: skip
    assert statsbook.load(path, EMPTY) == {
        "runs": 0, "removed": {"images": 2, "volumes": 0}, "last_run": None, "note": "hi",
    }  # fmt: skip


def test_save_is_atomic_and_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("old")
    path.chmod(0o600)
    statsbook.save(path, {"runs": 4})
    assert json.loads(path.read_text()) == {"runs": 4}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"], "no temporary left"


def test_write_atomic_leaves_the_old_file_when_it_fails(tmp_path: Path) -> None:
    """A write that fails (here: the target is a directory) leaves no temporary file
    and raises; bytes and text are both written as given."""
    statsbook.write_atomic(tmp_path / "b", b"\x00\x01")
    assert (tmp_path / "b").read_bytes() == b"\x00\x01"
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        statsbook.write_atomic(tmp_path / "dir", "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "dir"]
