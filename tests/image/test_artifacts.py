"""Job artifacts between the jobs of one pipeline, end to end.

The fake GitLab hands out four jobs of one pipeline (``produce``, ``crash``, ``consume``,
``bystander``) to the runner service of the running pipglr container. ``produce``
declares ``artifacts: paths`` (with an ``exclude``), ``crash`` fails with
``artifacts: when: on_failure``; the runner's upload stage runs the helper's
``artifacts-uploader`` in the helper container, which posts the zip to GitLab.
``consume`` lists both in ``dependencies``: GitLab holds it back until they are done,
then its payload names them and its download stage fetches and extracts their archives
into its build directory. ``bystander`` has no dependencies. Every job uses
``GIT_STRATEGY=empty`` (a wiped build directory), so a file can only come from an
artifact, never from an earlier job's leftovers. In GitLab ``crash`` would need
``allow_failure: true`` for ``consume`` to run; the fake does not model that.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakegitlab.ctl import Client
from tests.harness.joblog import JobLog
from tests.image.conftest import Pipglr, queue

pytestmark = [pytest.mark.image, pytest.mark.slow]

#: One pipeline per outer mode (the fake GitLab serves the whole session).
PIPELINES = {"rootful": (60, 6001), "rootless": (61, 6101)}
REPORT = "artifact from produce"


def describe(record: dict[str, Any]) -> str:
    """Enough of a job record for an assertion message."""
    return f"job {record['id']} {record['name']} {record['state']}: {JobLog.of(record).tail()}"


@pytest.fixture(scope="module")
def pipeline(pipglr: Pipglr, fake_gitlab: Client) -> dict[str, dict[str, Any]]:
    """The four jobs, queued at once, by name, once all are final."""
    project_id, pipeline_id = PIPELINES[pipglr.outer.mode]

    def job(name: str, script: list[str], **spec: Any) -> int:
        return queue(
            fake_gitlab, pipglr, name=name, project_id=project_id, pipeline_id=pipeline_id,
            git_strategy="empty", script=script, **spec,
        )  # fmt: skip

    ids = {
        "produce": job(
            "produce",
            ["mkdir -p out", f'echo "{REPORT} $CI_PIPELINE_ID" > out/report.txt',
             "echo noise > out/debug.log"],
            artifacts={"paths": ["out/"], "exclude": ["out/*.log"]},
        ),
        "crash": job(
            "crash", ["mkdir -p crash", "echo core > crash/dump.txt", "exit 2"],
            artifacts={"paths": ["crash/"], "when": "on_failure"},
        ),
        "consume": job(
            "consume",
            ["cat out/report.txt", "cat crash/dump.txt",
             "test ! -e out/debug.log && echo excluded file absent"],
            dependencies=["produce", "crash"],
        ),
        "bystander": job(
            "bystander",
            ["test ! -e out/report.txt && test ! -e crash && echo no artifacts here"],
        ),
    }  # fmt: skip
    return {name: fake_gitlab.wait(job_id, timeout=300) for name, job_id in ids.items()}


def test_dependency_artifacts_reach_the_dependent_job(
    pipeline: dict[str, dict[str, Any]], pipglr: Pipglr
) -> None:
    """consume downloads produce's archive: out/report.txt with produce's content is in
    its build directory; the file produce's artifact excluded is not."""
    consume, produce = pipeline["consume"], pipeline["produce"]
    log = JobLog.of(consume)
    assert consume["state"] == "success", describe(consume)
    assert log.contains(f"Downloading artifacts for produce ({produce['id']})..."), describe(
        consume
    )
    pipeline_id = PIPELINES[pipglr.outer.mode][1]
    assert log.has_line(f"{REPORT} {pipeline_id}"), describe(consume)
    assert log.has_line("excluded file absent"), describe(consume)


def test_a_job_without_the_dependency_gets_no_artifacts(
    pipeline: dict[str, dict[str, Any]], pipglr: Pipglr
) -> None:
    """bystander, same pipeline and project, no dependencies: no download stage and no
    files; positive control: consume, in the same run, has produce's file."""
    consume, bystander = JobLog.of(pipeline["consume"]), JobLog.of(pipeline["bystander"])
    pipeline_id = PIPELINES[pipglr.outer.mode][1]
    assert consume.has_line(f"{REPORT} {pipeline_id}"), describe(pipeline["consume"])
    assert pipeline["bystander"]["state"] == "success", describe(pipeline["bystander"])
    assert bystander.has_line("no artifacts here"), describe(pipeline["bystander"])
    assert not bystander.contains("Downloading artifacts"), describe(pipeline["bystander"])


def test_gitlab_stored_the_paths_minus_the_excluded(
    pipeline: dict[str, dict[str, Any]], fake_gitlab: Client
) -> None:
    """produce's upload stage sent one zip: out/ and out/report.txt, no out/debug.log."""
    produce = pipeline["produce"]
    assert produce["state"] == "success", describe(produce)
    assert JobLog.of(produce).contains("to coordinator... 201 Created"), describe(produce)
    stored = fake_gitlab.artifacts(produce["id"])
    assert [(s["artifact_type"], s["filename"]) for s in stored] == [
        ("archive", "artifacts.zip")
    ], stored
    names = [entry["name"] for entry in stored[0]["entries"]]
    assert names == ["out/", "out/report.txt"], f"expected out/ minus *.log: {names}"


def test_on_failure_artifacts_are_uploaded_after_a_failed_script(
    pipeline: dict[str, dict[str, Any]], fake_gitlab: Client
) -> None:
    """crash exits 2: its upload_artifacts_on_failure stage sends crash/, which consume
    then reads; produce (when unset = on_success) succeeded and uploaded too."""
    crash = pipeline["crash"]
    assert (crash["state"], crash["exit_code"]) == ("failed", 2), describe(crash)
    assert JobLog.of(crash).contains("Uploading artifacts for failed job"), describe(crash)
    names = [entry["name"] for entry in fake_gitlab.artifacts(crash["id"])[0]["entries"]]
    assert "crash/dump.txt" in names, names
    assert JobLog.of(pipeline["consume"]).has_line("core"), describe(pipeline["consume"])
