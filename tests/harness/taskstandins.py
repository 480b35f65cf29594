"""TESTS ONLY: what ``invoke build --standin`` and ``invoke bench`` take from the test
harness (the stand-in's helper image, the fake GitLab job driver), kept out of
``tasks.py`` so its tasks stay thin."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from invoke.exceptions import Exit

from pipglr.bench.suite import JobDriver
from pipglr.build import runnerbin
from pipglr.settings import BuildSettings


def standin_helper(standin: bool, settings: BuildSettings, base_mode: str) -> Path | None:
    """TESTS ONLY: for a --standin build, the stand-in helper image exported as the
    prebuilt archive, as the engine tests bake it (tests/standin/helperimage.py); without
    one the stand-in's first job would pull its helper from a registry and fail."""
    if not standin:
        return None
    import subprocess

    from tests.standin.helperimage import standin_helper_archive

    try:
        return standin_helper_archive(settings, base_mode)
    except subprocess.CalledProcessError as exc:
        raise Exit(f"error: building the stand-in helper image failed: {exc}") from exc


@contextmanager
def job_driver(
    enabled: bool, image: str, binary: Path | None, repo: Path
) -> Iterator[JobDriver | None]:
    """The fake GitLab and a host runner for the job-lifecycle bench (tests/harness)."""
    if not enabled:
        yield None
        return
    if os.geteuid() != 0:
        raise Exit("error: the job-lifecycle bench needs root (test network namespace): "
                   "run as root or pass --no-jobs")  # fmt: skip
    from tests.harness import gitlab
    from tests.harness.jobbench import FakeGitLabJobs
    from tests.standin import build_standin
    from tests.standin.helperimage import HELPER_IMAGE, standin_helper_archive

    standin_helper_archive()  # builds the helper image the host-side runner uses
    runner = (
        binary
        if binary and not runnerbin.is_standin(binary)
        else build_standin(repo / "build" / "standin")
    )
    logs = repo / "results" / "logs"
    with gitlab.serving(logs / "fake-gitlab.log") as client:
        yield FakeGitLabJobs(client, runner, image, HELPER_IMAGE, logs)
