"""A stage's container as gitlab-runner runs it: the retry when the container is gone
(executors/docker/docker_command.go ``runContainer``) and the end of a stage whose
script cannot be written (executors/docker/internal/exec/exec.go ``Exec``), against
the recording fake Docker API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.standin.gitlab_runner.executor import job_section_attempts
from tests.unit.standin_fakedocker import FakeDocker, serving
from tests.unit.test_standin_executor import BASE, HELPER, creates, payload, run_job, runner_config

WILL_RETRY = "not found or removed. Will retry..."


@pytest.fixture
def docker(tmp_path: Path) -> Iterator[FakeDocker]:
    """A fake engine with the job image and the stand-in's helper image present."""
    engine = FakeDocker(images={BASE: "sha256:" + "b" * 64, HELPER: "sha256:" + "c" * 64})
    with serving(tmp_path / "docker.sock", engine):
        yield engine


def job_with_attempts(attempts: str | None) -> dict[str, Any]:
    """A one-step job, with EXECUTOR_JOB_SECTION_ATTEMPTS when given."""
    variables = [{"key": "GIT_STRATEGY", "value": "none", "public": True}]
    if attempts is not None:
        variables.append({"key": "EXECUTOR_JOB_SECTION_ATTEMPTS", "value": attempts})
    return payload(variables=variables)


def final_update(gitlab: Any) -> dict[str, Any]:
    """The body of the job's last ``PUT``."""
    return dict([c for c in gitlab.calls if c[0] == "PUT"][-1][2])


@pytest.mark.parametrize(
    ("raw", "attempts"),
    [("", 1), ("3", 3), ("+3", 3), ("10", 10), ("0", 1), ("11", 1), ("-2", 1),
     (" 3", 1), ("1_0", 1), ("three", 1)],
)  # fmt: skip
def test_section_attempts_are_read_as_the_build_settings_read_them(raw: str, attempts: int) -> None:
    """strconv.ParseInt's syntax (sign and digits), then [1, 10], else the default 1."""
    assert job_section_attempts(raw) == attempts, f"{raw!r} should give {attempts}"


def test_a_container_removed_before_its_start_is_created_again(
    tmp_path: Path, docker: FakeDocker
) -> None:
    """EXECUTOR_JOB_SECTION_ATTEMPTS=2 and the build container removed at its attach:
    "Container ... not found or removed. Will retry...", "Retrying step_script", a new
    build container, and the job succeeds."""
    docker.vanish["build"] = 1
    text, gitlab = run_job(
        tmp_path, job_with_attempts("2"), runner_config(tmp_path / "docker.sock")
    )
    builds = creates(docker, "build")
    assert len(builds) == 2, f"a second build container for the retry: {len(builds)}"
    assert text.count(WILL_RETRY) == 1 and "Retrying step_script" in text, text[-1500:]
    assert "Execution attempts exceeded" not in text, text[-1500:]
    assert "ran build" in text and final_update(gitlab)["state"] == "success", text[-800:]


def test_a_single_attempt_fails_the_job_when_the_container_is_gone(
    tmp_path: Path, docker: FakeDocker
) -> None:
    """Default attempts (1): the same removal fails the job after upstream's (misleading)
    "Will retry..." line, with no "Retrying" and no "Execution attempts exceeded"."""
    docker.vanish["build"] = 1
    text, gitlab = run_job(
        tmp_path, job_with_attempts(None), runner_config(tmp_path / "docker.sock")
    )
    assert text.count(WILL_RETRY) == 1 and "Retrying" not in text, text[-1500:]
    assert "Execution attempts exceeded" not in text, "only logged with more than one attempt"
    assert "no such container" in text and final_update(gitlab)["state"] == "failed", text[-800:]
    assert len(creates(docker, "build")) == 1, "no second container"


def test_attempts_run_out_while_the_container_keeps_vanishing(
    tmp_path: Path, docker: FakeDocker
) -> None:
    """Two attempts, the build container removed both times: two "Will retry" lines, one
    "Retrying", then "Execution attempts exceeded" and the job fails."""
    docker.vanish["build"] = 2
    text, gitlab = run_job(
        tmp_path, job_with_attempts("2"), runner_config(tmp_path / "docker.sock")
    )
    assert text.count(WILL_RETRY) == 2 and text.count("Retrying step_script") == 1, text[-1500:]
    assert "Execution attempts exceeded" in text, text[-1500:]
    assert final_update(gitlab)["state"] == "failed", final_update(gitlab)


def test_a_refused_script_ends_the_stage_by_stopping_its_container(
    tmp_path: Path, docker: FakeDocker
) -> None:
    """The build container's attach stream refuses the script (stdin shut) but would
    keep running for 10 s: the stdin error ends the stage at once, the container is
    stopped and the stage fails with its exit status (137). The helper stages, whose
    stdin works, ran (positive control)."""
    docker.refuse_stdin.add("build")
    started = time.monotonic()
    text, gitlab = run_job(
        tmp_path, job_with_attempts(None), runner_config(tmp_path / "docker.sock")
    )
    took = time.monotonic() - started
    (build,) = [cid for cid, kind in docker.kinds.items() if kind == "build"]
    assert "ran predefined" in text, f"the helper stages ran: {text[-1500:]}"
    assert f"POST /containers/{build}/stop" in docker.paths(), "the refusing container stopped"
    assert took < 6, f"the stage ended with the stdin error, not after 10 s: {took:.1f}s"
    final = final_update(gitlab)
    assert (final["state"], final.get("exit_code")) == ("failed", 137), final
    assert "ERROR: Job failed: exit code 137" in text, text[-800:]
