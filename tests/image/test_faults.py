"""Faults: the in-image services killed outright come back on their own, and the
next real job succeeds. Recovery times go to ``build/test-logs/recovery-MODE.txt``.
"""

from __future__ import annotations

import time

import pytest

from pipglr import layout
from tests.fakegitlab.ctl import Client
from tests.image.conftest import LOG_DIR, Pipglr, queue

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


def record(pipglr: Pipglr, what: str, seconds: float) -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / f"recovery-{pipglr.outer.mode}.txt").open("a") as out:
        out.write(f"{what}: {seconds:.1f} s\n")


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
