"""pipglr.guest.storagereserve: the reserve that lets a full nested storage recover."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipglr.guest import prune
from pipglr.guest import storagereserve as sr

SIZE = 4 * 2**20


def container(cid: str, state: str, job: str | None, ago: float) -> dict[str, Any]:
    """A `podman container ls --all --format json` entry, last active ``ago`` s back."""
    when = int(time.time() - ago)
    labels = {prune.JOB_LABEL: job} if job else {}
    return {"Id": cid, "State": state, "Labels": labels,
            "Created": when - 5, "StartedAt": when - 4, "ExitedAt": when}  # fmt: skip


#: Two finished containers (one of job 9, one of no job), both long stopped.
FINISHED = [container("aaa", "exited", "9", 7200), container("bbb", "exited", None, 7200)]


def fake_podman(
    tmp_path: Path, containers: list[dict[str, Any]] | None = None, status: int = 0
) -> str:
    """A `podman` that records its arguments, lists ``containers`` for `container ls`
    and prints the ids it was asked to remove for `container rm`."""
    listing = tmp_path / "ps.json"
    listing.write_text(json.dumps(FINISHED if containers is None else containers))
    script = tmp_path / "podman"
    script.write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n'
        f'case "$2" in ls) cat {listing} ;; rm) shift 2; printf "%s\\n" "$@" ;; esac\n'
        f"exit {status}\n"
    )
    script.chmod(0o755)
    return str(script)


def test_reserve_is_real_blocks_of_the_size(tmp_path: Path) -> None:
    assert sr.take_reserve(tmp_path, SIZE)
    reserve = sr.reserve_path(tmp_path)
    assert reserve.stat().st_size == SIZE and reserve.stat().st_blocks * 512 >= SIZE


def test_no_reserve_without_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Taking the reserve never pushes a nearly full volume over."""
    monkeypatch.setattr(sr, "free_bytes", lambda _: SIZE)
    assert not sr.take_reserve(tmp_path, SIZE)
    assert not sr.reserve_path(tmp_path).exists()


def test_check_with_room_keeps_the_reserve_and_prunes_nothing(tmp_path: Path) -> None:
    podman = fake_podman(tmp_path)
    said = sr.check(tmp_path, podman, SIZE)
    assert "reserve kept" in said.text and sr.reserve_path(tmp_path).exists()
    assert not said.notable, "a routine check stays out of the journal"
    assert not (tmp_path / "calls").exists(), "no prune while there is room"


def test_check_when_full_releases_prunes_and_retakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below half the reserve: reserve gone, stopped containers pruned, reserve back
    once the prune made room (here: the second look at the free space)."""
    sr.take_reserve(tmp_path, SIZE)
    looks = iter([SIZE // 4, 100 * SIZE, 100 * SIZE, 100 * SIZE])
    monkeypatch.setattr(sr, "free_bytes", lambda _: next(looks))
    podman = fake_podman(tmp_path)
    said = sr.check(tmp_path, podman, SIZE, SIZE // 4)
    assert (tmp_path / "calls").read_text() == (
        "container ls --all --format json\ncontainer rm aaa bbb\n"
    )
    assert "was full" in said.text, said
    assert "2 stopped container(s) no running job needs removed" in said.text, said
    assert "1 MiB of the reserve released (3 MiB left)" in said.text, said
    assert "reserve taken back" in said.text and sr.reserve_path(tmp_path).exists()
    assert said.notable


def test_failed_prune_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sr, "free_bytes", lambda _: 0)
    said = sr.check(tmp_path, fake_podman(tmp_path, [], 125), SIZE)
    assert "listing the containers failed" in said.text, said
    assert "not taken back yet" in said.text, said


def test_a_writer_eating_the_first_release_leaves_some_for_the_next_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check while the job that fills the disk still writes: what it gives up goes to
    the job. The reserve goes a quarter at a time, so the next checks (the job has
    stopped by then) still give podman's database room; only then is it all gone."""
    sr.take_reserve(tmp_path, SIZE)
    monkeypatch.setattr(sr, "free_bytes", lambda _: 0)  # every release eaten at once
    podman = fake_podman(tmp_path, [])
    left = []
    for _ in range(5):
        said = sr.check(tmp_path, podman, SIZE, SIZE // 4)
        reserve = sr.reserve_path(tmp_path)
        left.append(reserve.stat().st_size if reserve.exists() else 0)
        assert "was full (0 MiB free)" in said.text, said
    assert left == [SIZE * 3 // 4, SIZE // 2, SIZE // 4, 0, 0]
    assert (tmp_path / "calls").read_text().count("container ls --all") == 5
    assert "0 MiB of the reserve released (0 MiB left)" in said.text, said


def test_release_truncates_real_blocks(tmp_path: Path) -> None:
    """Giving part of the reserve back frees its blocks (the file shrinks on disk)."""
    sr.take_reserve(tmp_path, SIZE)
    assert sr.release_reserve(tmp_path, SIZE // 4) == (SIZE // 4, SIZE * 3 // 4)
    assert sr.reserve_path(tmp_path).stat().st_blocks * 512 <= SIZE * 3 // 4 + 4096
    assert sr.release_reserve(tmp_path, SIZE) == (SIZE * 3 // 4, 0)
    assert not sr.reserve_path(tmp_path).exists()


def test_a_full_volume_spares_the_stopped_containers_of_a_running_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between two stages every container of a running job is stopped: the check must
    not remove them (a plain `podman container prune` did). Job 7's helper stopped 20 s
    ago and its build container was only created; job 8's build container runs while
    its helper stopped an hour ago. Positive control in the same check: the finished
    job 9 and an old container of no job go."""
    monkeypatch.setattr(sr, "free_bytes", lambda _: 0)
    containers = [
        container("helper7", "exited", "7", 20), container("build7", "created", "7", 30),
        container("helper8", "exited", "8", 3600), container("build8", "running", "8", 3600),
        *FINISHED,
    ]  # fmt: skip
    said = sr.check(tmp_path, fake_podman(tmp_path, containers), SIZE)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["container ls --all --format json", "container rm aaa bbb"], calls
    assert "2 stopped container(s) no running job needs removed" in said.text, said
    assert "prune" not in " ".join(calls), "never podman's own prune"


def test_nothing_to_remove_runs_no_rm(tmp_path: Path) -> None:
    """Only a running job's containers: listed, none removed, no rm call."""
    running = [container("helper7", "exited", "7", 20)]
    assert sr.prune_stopped(fake_podman(tmp_path, running)) == (0, "")
    assert (tmp_path / "calls").read_text() == "container ls --all --format json\n"
