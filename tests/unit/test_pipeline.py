""".gitlab-ci.yml: structure, release rules, and every job calling existing invoke tasks.

PyYAML is a test dependency (``pyproject.toml``, extra ``test``), not one of pipglr's.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

import tasks

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / ".gitlab-ci.yml"
#: Top-level keys that are not jobs (GitLab CI's global keywords).
GLOBAL_KEYS = {"stages", "variables", "default", "include", "workflow", "image", "services",
               "cache", "before_script", "after_script"}  # fmt: skip
INVOKE = re.compile(r"scripts/invoke\s+(?P<rest>.*)")


def load_pipeline() -> dict[str, Any]:
    """The pipeline file as data."""
    return dict(yaml.safe_load(PIPELINE.read_text()))


@pytest.fixture(scope="module")
def pipeline() -> dict[str, Any]:
    return load_pipeline()


def jobs(pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Real jobs, with the keys of the templates they extend merged in."""
    result = {}
    for name, body in pipeline.items():
        if name in GLOBAL_KEYS or name.startswith("."):
            continue
        merged: dict[str, Any] = {}
        for parent in body.get("extends", []):
            merged.update(pipeline[parent])
        merged.update(body)
        result[name] = merged
    return result


def invocations(job: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(task, flags) of every `scripts/invoke TASK --flag ...` in a job's scripts."""
    found = []
    for line in [*job.get("before_script", []), *job.get("script", [])]:
        match = INVOKE.search(line)
        if not match:
            continue
        words = shlex.split(re.split(r"\s(\|\||&&|;)\s", match.group("rest"))[0])
        flags = [w.split("=", 1)[0][2:] for w in words[1:] if w.startswith("--")]
        found.append((words[0], flags))
    return found


def test_every_job_runs_existing_invoke_tasks_with_existing_flags(
    pipeline: dict[str, Any],
) -> None:
    """Each job calls at least one invoke task; the task and each flag exist."""
    for name, job in jobs(pipeline).items():
        calls = invocations(job)
        assert calls, f"job {name} calls no invoke task: logic belongs in tasks.py"
        for task_name, flags in calls:
            assert task_name in tasks.ns.task_names, f"job {name}: no task {task_name!r}"
            known = set()
            for argument in tasks.ns[task_name].get_arguments():
                known |= {n.replace("_", "-") for n in argument.names}
                known |= {f"no-{n.replace('_', '-')}" for n in argument.names}
            unknown = [f for f in flags if f not in known]
            assert not unknown, f"job {name}: `invoke {task_name}` has no --{unknown[0]}"


def test_stages_and_release_rules(pipeline: dict[str, Any]) -> None:
    """Every job's stage is declared; check runs on every push; build, image-test and
    publish run on the default branch and on schedules only."""
    all_jobs = jobs(pipeline)
    for name, job in all_jobs.items():
        assert job.get("stage") in pipeline["stages"], f"job {name}: undeclared stage"
    assert "rules" not in all_jobs["check"] and "only" not in all_jobs["check"]
    for name in ("build", "image-test", "publish"):
        conditions = [rule["if"] for rule in all_jobs[name]["rules"]]
        assert '$CI_PIPELINE_SOURCE == "schedule"' in conditions, name
        assert "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in conditions, name


def test_builds_both_arches_and_publishes_the_manifest(pipeline: dict[str, Any]) -> None:
    """amd64 and arm64 are built; publish pushes both as one list under latest, the
    runner version and the date, after rebuild-needed, skipping on its exit 1; then
    the downstream pipelines are triggered."""
    all_jobs = jobs(pipeline)
    assert all_jobs["build"]["parallel"]["matrix"] == [{"ARCH": ["amd64", "arm64"]}]
    script = all_jobs["publish"]["script"]
    order = [task for task, _ in invocations(all_jobs["publish"])]
    assert order == ["rebuild-needed", "publish", "trigger-downstream"], order
    text = "\n".join(script)
    assert "-amd64,docker://$CANDIDATE-arm64" in text
    assert '--tags "latest,{runner_version},{date}"' in text
    assert 'if [ "$status" -eq 1 ]; then' in text and "exit 0" in text


def test_podman_jobs_build_rootless_in_pipglr(pipeline: dict[str, Any]) -> None:
    """Build and publish run podman in a nested job: vfs storage, chroot isolation."""
    for name in ("build", "publish"):
        variables = jobs(pipeline)[name]["variables"]
        assert variables["STORAGE_DRIVER"] == "vfs" and variables["BUILDAH_ISOLATION"] == "chroot"
