"""pipglr.guest.carryover: what a new outer run takes over with a transient store."""

from __future__ import annotations

import json
import subprocess
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

from pipglr.errors import EngineError
from pipglr.guest import carryover, podmansetup

PS: list[dict[str, object]] = [
    {"Id": "aaa", "State": "storage", "Names": ["runner-x-build"]},  # only c/storage knows it
    {"Id": "bbb", "State": "exited", "Names": ["known"]},
]


class FakePodman:
    """Answers ``ps``/``volume ls`` like podman and records every command line."""

    def __init__(self, ps: list[dict[str, object]], volumes: Sequence[str] = (),
                 fail: str = "") -> None:  # fmt: skip
        self.ps, self.volumes, self.fail = ps, list(volumes), fail
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        out = ""
        if args[0] == self.fail:
            return subprocess.CompletedProcess(args, 125, "", "Error: boom\n")
        if args[0] == "ps":
            out = json.dumps(self.ps)
        elif args[:2] == ["volume", "ls"]:
            out = "".join(f"{v}\n" for v in self.volumes)
        return subprocess.CompletedProcess(args, 0, out, "")


def graph_root(tmp_path: Path, volumes: Sequence[str], legacy: bool = False) -> Path:
    root = tmp_path / "storage"
    for name in volumes:
        (root / "volumes" / name / "_data").mkdir(parents=True)
    (root / "volumes" / "not-a-volume").mkdir(parents=True)  # no _data: left alone
    if legacy:
        (root / "db.sql").write_text("old records")
        (root / "db.sql-wal").write_text("")
    return root


def test_first_start_removes_leftovers_collects_layers_and_carries_volumes(
    tmp_path: Path,
) -> None:
    root = graph_root(tmp_path, ["runner-p-cache-1", "runner-q-cache-2"], legacy=True)
    podman = FakePodman(PS, volumes=["runner-q-cache-2"])
    marker = tmp_path / "marker"
    done = carryover.carry_over(podman, root, marker)
    assert podman.calls == [
        ["ps", "--all", "--external", "--format", "json"],
        ["rm", "--force", "aaa"],  # not bbb: podman knows it
        ["system", "prune", "--external", "--force"],
        ["volume", "ls", "--format", "{{.Name}}"],
        ["volume", "create", "--ignore", "runner-p-cache-1"],
    ]
    assert done == carryover.CarryOver(True, removed=1, volumes=1, legacy_db=True)
    assert not (root / "db.sql").exists() and not (root / "db.sql-wal").exists()
    assert (root / "volumes" / "runner-p-cache-1" / "_data").is_dir()  # data untouched
    assert marker.exists()
    assert "1 leftover container(s) removed, 1 volume(s) carried over" in done.summary()


def test_second_start_in_the_same_run_does_nothing(tmp_path: Path) -> None:
    """A restart of the API service must not take a running build's containers
    (``podman build`` keeps storage-only containers) for leftovers."""
    marker = tmp_path / "marker"
    marker.touch()
    podman = FakePodman(PS)
    done = carryover.carry_over(podman, graph_root(tmp_path, ["v"]), marker)
    assert podman.calls == [] and not done.fresh
    assert done.summary() == "nested store already set up in this run"


def test_nothing_left_no_removal_and_no_legacy_db(tmp_path: Path) -> None:
    root = graph_root(tmp_path, [])
    podman = FakePodman([])
    done = carryover.carry_over(podman, root, tmp_path / "marker")
    assert ["rm", "--force"] not in [c[:2] for c in podman.calls]
    assert done == carryover.CarryOver(True) and "retired" not in done.summary()


def test_a_failing_podman_is_one_line_and_no_marker(tmp_path: Path) -> None:
    """The next start tries again: the marker is written only when all went through."""
    marker = tmp_path / "marker"
    failed = r"^nested `podman system prune .*` failed at boot: Error: boom \("
    with pytest.raises(EngineError, match=failed):
        carryover.carry_over(FakePodman(PS, fail="system"), graph_root(tmp_path, []), marker)
    assert not marker.exists()


def test_storage_conf_asks_for_a_transient_store() -> None:
    conf = tomllib.loads(podmansetup.storage_conf(podmansetup.StorageChoice("vfs", None, "")))
    assert conf["storage"]["transient_store"] is True
