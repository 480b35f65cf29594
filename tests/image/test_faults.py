"""Faults: the in-image services killed outright come back on their own, and the
next real job succeeds; a job that fills the nested storage fails clearly and the
space comes back. Recovery times go to ``build/test-logs/recovery-MODE.txt``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipglr import base, labels, layout
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab
from tests.image.conftest import LOG_DIR, Pipglr, dump_logs, queue, wait_ready

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
    assert job["state"] == "success", job.get("trace", "")[-2000:]


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
    assert job["state"] == "success", job.get("trace", "")[-2000:]


FULL = "pipglr-full"
FULL_SECRET = "pipglr-full-config"
#: Size of the nested storage of the storage-full container: room for the helper
#: image (imported on the first job) and the small job image, little more.
FULL_SIZE = "1200m"
#: The second container's runner: an authentication token no other test runs.
FULL_TOKEN = gitlab.AUTH_TOKENS[1]


@pytest.fixture
def full_storage(pipglr: Pipglr) -> Iterator[Pipglr]:
    """A second pipglr whose nested storage is a small tmpfs (mounted by root on the
    host, handed to the container's podman user), with its own runner token and the
    small base image as its job image."""
    outer = pipglr.outer
    mount = Path(tempfile.mkdtemp(prefix="pipglr-full-", dir="/var/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FULL_SIZE},mode=0755", "tmpfs",
                    str(mount)], check=True)  # fmt: skip
    owner = f"{layout.PODMAN.uid}:{layout.PODMAN.gid}"
    if outer.mode == "rootless":
        outer.run("unshare", "chown", owner, str(mount))
    else:
        os.chown(mount, layout.PODMAN.uid, layout.PODMAN.gid)
    config = pipglr.config_text.replace(pipglr.runner_tokens()[0], FULL_TOKEN)
    outer.run("rm", "--force", "--ignore", FULL)
    outer.run("secret", "rm", FULL_SECRET, check=False)
    outer.run("secret", "create", FULL_SECRET, "-", input=config)
    args = labels.second_instance(pipglr.settings, pipglr.image, FULL, FULL_SECRET)[1:]
    storage = f"{FULL}-{layout.STORAGE_VOLUME}:"
    args = [a.replace(storage, f"{mount}:", 1) if a.startswith(storage) else a for a in args]
    handle = Pipglr(outer, pipglr.image, pipglr.workdir, FULL, pipglr.settings)
    try:
        outer.run(*args)
        wait_ready(outer, FULL)
        outer.copy_image_from_root(base.DEFAULT_TAG)
        outer.load_nested_image(FULL, base.DEFAULT_TAG)
        yield handle
    finally:
        dump_logs(outer, FULL)
        outer.run("rm", "--force", "--ignore", FULL, check=False)
        outer.run("volume", "rm", "--force", f"{FULL}-{layout.CACHE_VOLUME}",
                  f"{FULL}-{layout.RUNNER_VOLUME}", check=False)  # fmt: skip
        outer.run("secret", "rm", FULL_SECRET, check=False)
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def storage_used(handle: Pipglr) -> int:
    """Bytes used on the nested storage's file system."""
    df = handle.outer.exec(handle.name, "df", "--output=used", "-B1", str(layout.STORAGE_MOUNT))
    return int(df.stdout.split()[-1])


@pytest.mark.destructive
def test_full_nested_storage_fails_the_job_clearly_and_recovers(
    full_storage: Pipglr, fake_gitlab: Client
) -> None:
    """A job fills the nested storage: it fails with "No space left on device" in its
    trace, the runner stays up, the space comes back when the job's container goes,
    and the next job succeeds."""
    spec = {"image": base.DEFAULT_TAG, "runner": FULL_TOKEN, "variables": {}}
    warm = fake_gitlab.wait(fake_gitlab.add_job({**spec, "name": "warm", "script": ["true"]}),
                            timeout=240)  # fmt: skip
    assert warm["state"] == "success", warm.get("trace", "")[-2000:]
    before = storage_used(full_storage)
    fill = ["dd if=/dev/zero of=/fill bs=1M status=none; echo dd-exit=$?; exit 7"]
    job = fake_gitlab.wait(fake_gitlab.add_job({**spec, "name": "fill", "script": fill}),
                           timeout=300)  # fmt: skip
    trace = job.get("trace", "")
    assert job["state"] == "failed", trace[-2000:]
    assert "No space left on device" in trace and "dd-exit=1" in trace, trace[-2000:]
    active = full_storage.outer.exec(FULL, "systemctl", "is-active", layout.RUNNER_SERVICE_UNIT,
                                     check=False)  # fmt: skip
    assert active.stdout.strip() == "active", "the runner went down with the storage"
    after = storage_used(full_storage)
    assert after < before + 50 * 2**20, f"space not back: {before} -> {after} bytes used"
    again = fake_gitlab.wait(fake_gitlab.add_job({**spec, "name": "again",
                                                  "script": ["echo space-is-back"]}),
                             timeout=240)  # fmt: skip
    assert again["state"] == "success", again.get("trace", "")[-2000:]
    record(
        full_storage, f"storage full ({FULL_SIZE}): MiB used before fill / after", before / 2**20
    )
    record(full_storage, "  after the failed job", after / 2**20)
