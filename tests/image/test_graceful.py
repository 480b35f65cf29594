"""Stopping pipglr lets running jobs finish (gitlab-runner's SIGQUIT graceful stop).

Destructive: a second pipglr container from the run label, with its own runner
(another authentication token of the fake GitLab), is stopped during a job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pipglr import labels, layout
from pipglr.outer import Outer
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab
from tests.image.conftest import Pipglr, dump_logs, load_job_image, wait_ready

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.destructive]

NAME = "pipglr-graceful"
SECRET = "pipglr-graceful-config"


@pytest.fixture
def second(pipglr: Pipglr) -> Iterator[tuple[Outer, str]]:
    """A second pipglr whose runner has the fake GitLab's second token."""
    outer = pipglr.outer
    first = pipglr.runner_tokens()[0]
    config = pipglr.config_text.replace(first, gitlab.AUTH_TOKENS[1])
    outer.run("rm", "--force", "--ignore", NAME)
    outer.run("secret", "rm", SECRET, check=False)
    outer.run("secret", "create", SECRET, "-", input=config)
    outer.run(*labels.second_instance(pipglr.settings, pipglr.image, NAME, SECRET)[1:])
    try:
        wait_ready(outer, NAME)
        load_job_image(outer, NAME, pipglr.image)
        yield outer, NAME
    finally:
        dump_logs(outer, NAME)
        outer.run("rm", "--force", "--ignore", NAME, check=False)
        volumes = [f"{NAME}-{v}" for v in
                   (layout.STORAGE_VOLUME, layout.CACHE_VOLUME, layout.RUNNER_VOLUME)]  # fmt: skip
        outer.run("volume", "rm", "--force", *volumes, check=False)
        outer.run("secret", "rm", SECRET, check=False)


def test_stopping_pipglr_lets_the_running_job_finish(
    second: tuple[Outer, str], fake_gitlab: Client, pipglr: Pipglr
) -> None:
    """`podman stop` (what pipglr down runs) during a job: the job still succeeds."""
    outer, name = second
    job_id = fake_gitlab.add_job({
        "name": "outlives-stop", "image": pipglr.image, "runner": gitlab.AUTH_TOKENS[1],
        "script": ["echo started", "sleep 15", "echo finished after the stop began"],
    })  # fmt: skip
    deadline = time.monotonic() + 180
    while "started" not in fake_gitlab.job(job_id).get("trace", "").replace("$ echo", ""):
        assert time.monotonic() < deadline, fake_gitlab.job(job_id)
        time.sleep(0.5)
    began = time.monotonic()
    stop = threading.Thread(
        target=outer.run,
        args=("stop", "--time", str(layout.OUTER_STOP_TIMEOUT), name),
        kwargs={"check": False, "timeout": 600},
    )
    stop.start()
    job = fake_gitlab.wait(job_id, timeout=300)
    stop.join(300)
    took = time.monotonic() - began
    assert job["state"] == "success", job.get("trace", "")[-2000:]
    assert "finished after the stop began" in job["trace"]
    assert took >= 10, f"the stop returned after {took:.1f}s: it did not wait for the job"
    state = outer.run("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
    assert state == "exited", state
