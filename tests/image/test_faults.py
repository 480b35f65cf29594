"""Faults: the in-image services killed outright come back on their own, and the
next real job succeeds; a job that fills the nested storage fails clearly and the
space comes back. Recovery times go to ``build/test-logs/recovery-MODE.txt``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipglr import layout
from pipglr.build import base
from pipglr.guest import storagereserve
from pipglr.ops.outer import Outer
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab
from tests.harness.joblog import JobLog, describe
from tests.image.conftest import LOG_DIR, Pipglr, queue, second_pipglr

pytestmark = [pytest.mark.image, pytest.mark.security]


def main_pid(pipglr: Pipglr, unit: str) -> int:
    shown = pipglr.outer.exec(pipglr.name, "systemctl", "show", "-P", "MainPID", unit)
    return int(shown.stdout.strip() or 0)


def recovered(pipglr: Pipglr, unit: str, old_pid: int, ready: list[str], user: str,
              timeout: float = 60) -> float:  # fmt: skip
    """Seconds from now until ``unit`` has a new main process and ``ready`` succeeds."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        pid = main_pid(pipglr, unit)
        if pid not in (0, old_pid):
            probe = pipglr.outer.exec(pipglr.name, *ready, user=user, check=False)
            if probe.returncode == 0:
                return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"{unit} did not come back within {timeout:.0f}s")


def record(pipglr: Pipglr, what: str, value: float, unit: str = "s") -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / f"recovery-{pipglr.outer.mode}.txt").open("a") as out:
        out.write(f"{what}: {value:.1f} {unit}\n")


def kill(pipglr: Pipglr, unit: str) -> int:
    """SIGKILL every process of ``unit``; return the main pid it had."""
    pid = main_pid(pipglr, unit)
    assert pid > 0, f"{unit} was not running"
    pipglr.outer.exec(pipglr.name, "systemctl", "kill", "--signal", "SIGKILL", unit)
    return pid


def test_killed_api_service_is_restarted_and_the_next_job_runs(
    pipglr: Pipglr, fake_gitlab: Client
) -> None:
    """SIGKILL of the nested podman API: systemd restarts it, the socket answers the
    runner again, and a job queued right then succeeds."""
    old = kill(pipglr, layout.PODMAN_SERVICE_UNIT)
    ping = [str(layout.PYTHON), "-m", layout.GUEST_MODULE, "ping"]
    seconds = recovered(pipglr, layout.PODMAN_SERVICE_UNIT, old, ping, layout.RUNNER.name)
    record(pipglr, "API service SIGKILL -> socket answers", seconds)
    job = fake_gitlab.wait(queue(fake_gitlab, pipglr, name="after-api-kill",
                                 script=["echo alive"]), timeout=180)  # fmt: skip
    assert job["state"] == "success", describe(job)


def test_killed_runner_is_restarted_and_the_next_job_runs(
    pipglr: Pipglr, fake_gitlab: Client
) -> None:
    """SIGKILL of gitlab-runner: systemd restarts it; a job queued after the kill runs.
    The recovery time is until the unit has a new, active main process."""
    old = kill(pipglr, layout.RUNNER_SERVICE_UNIT)
    active = ["systemctl", "is-active", "--quiet", layout.RUNNER_SERVICE_UNIT]
    seconds = recovered(pipglr, layout.RUNNER_SERVICE_UNIT, old, active, "root")
    job_id = queue(fake_gitlab, pipglr, name="after-runner-kill", script=["echo alive"])
    started = time.monotonic()
    job = fake_gitlab.wait(job_id, timeout=180)
    record(pipglr, "runner SIGKILL -> unit active again", seconds)
    record(pipglr, "  then queued job -> success", time.monotonic() - started)
    assert job["state"] == "success", describe(job)


FULL = "pipglr-full"
#: Size of the nested storage of the storage-full container: room for the helper
#: image (imported on the first job) and the small job image, little more.
FULL_SIZE = "1200m"


def mount_tmpfs(outer: Outer) -> Path:
    """A size-limited tmpfs owned by the container's podman user, where the outer
    podman sees it: a rootless podman lives in a mount namespace of its own (on this
    CI host one that took no later host mounts), so it is mounted in there."""
    options = f"size={FULL_SIZE},mode=0755,uid={layout.PODMAN.uid},gid={layout.PODMAN.gid}"
    mount = outer.private_dir("pipglr-full-")
    command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)]
    if outer.mode == "rootless":
        outer.run("unshare", *command)
    else:
        subprocess.run(command, check=True)
    return mount


def unmount_tmpfs(outer: Outer, mount: Path) -> None:
    prefix = [*outer.podman, "unshare"] if outer.mode == "rootless" else []
    subprocess.run([*prefix, "umount", str(mount)], check=False)
    subprocess.run([*prefix, "rmdir", str(mount)], check=False)


@pytest.fixture(scope="module")
def full_storage(pipglr: Pipglr, fake_gitlab: Client) -> Iterator[dict[str, Any]]:
    """A second pipglr whose nested storage is a small tmpfs (:func:`mount_tmpfs`,
    owned by the container's podman user), with its own runner token and the
    small base image as its job image; a job fills that storage. Yields the handle,
    the fill job's record and the bytes used before it."""
    outer = pipglr.outer
    mount = mount_tmpfs(outer)
    # Its runner: an authentication token of its set that no other test runs.
    config = pipglr.config_text.replace(
        pipglr.runner_tokens()[0], gitlab.token("second", outer.mode)
    )
    try:
        with second_pipglr(pipglr, FULL, storage=mount) as second:
            handle = second.start(config)
            outer.copy_image_from_root(base.DEFAULT_TAG)
            outer.load_nested_image(FULL, base.DEFAULT_TAG)
            warm = fake_gitlab.wait(run_on_full(fake_gitlab, handle, "warm", ["true"]),
                                    timeout=240)  # fmt: skip
            assert warm["state"] == "success", describe(warm)
            reserve = storagereserve.reserve_path(Path(str(layout.STORAGE_MOUNT)))
            outer.exec(FULL, "test", "-s", str(reserve))  # taken at boot, before any job
            before = storage_used(handle)
            fill = ["dd if=/dev/zero of=/fill bs=1M status=none || exit 7"]
            job = fake_gitlab.wait(run_on_full(fake_gitlab, handle, "fill", fill), timeout=300)
            yield {"handle": handle, "job": job, "before": before}
    finally:
        unmount_tmpfs(outer, mount)


def run_on_full(fake_gitlab: Client, handle: Pipglr, name: str, script: list[str]) -> int:
    """Queue a job for the storage-full container's runner (job image: the base)."""
    spec = {"image": base.DEFAULT_TAG, "runner": handle.runner_tokens()[0], "variables": {}}
    return fake_gitlab.add_job({**spec, "name": name, "script": script})


def storage_used(handle: Pipglr) -> int:
    """Bytes used on the nested storage's file system."""
    df = handle.outer.exec(handle.name, "df", "--output=used", "-B1", str(layout.STORAGE_MOUNT))
    return int(df.stdout.split()[-1])


@pytest.mark.destructive
def test_full_nested_storage_comes_back_and_the_next_job_runs(
    full_storage: dict[str, Any], fake_gitlab: Client
) -> None:
    """A job filled the nested storage (its trace shows ENOSPC), then exited 7: it is
    reported failed with that exit code (podman's records are on the run root's tmpfs,
    not on the full volume: before, the wait answered 0 and the job "succeeded"); the
    runner stays up; the space comes back without anyone's hand (the executor's own
    removal of the job's containers, or the storage check's reserve and prune); the
    next job succeeds."""
    handle, job, before = full_storage["handle"], full_storage["job"], full_storage["before"]
    log = JobLog.of(job)
    assert log.contains("No space left on device"), describe(job)
    assert (job["state"], job["exit_code"]) == ("failed", 7), describe(job)
    assert log.contains("Job failed: exit code 7"), describe(job)
    active = handle.outer.exec(FULL, "systemctl", "is-active", layout.RUNNER_SERVICE_UNIT,
                               check=False)  # fmt: skip
    assert active.stdout.strip() == "active", "the runner went down with the storage"
    started = time.monotonic()
    while storage_used(handle) > before + storagereserve.RESERVE_BYTES + 50 * 2**20:
        assert time.monotonic() - started < 120, handle.journal(layout.STORAGE_CHECK_UNIT)
        time.sleep(1)
    record(handle, "storage full -> space back", time.monotonic() - started)
    again = fake_gitlab.wait(run_on_full(fake_gitlab, handle, "again", ["echo space-is-back"]),
                             timeout=240)  # fmt: skip
    assert again["state"] == "success", describe(again)
