"""``artifacts:`` and ``dependencies:`` of a job spec, and how GitLab renders them.

A spec may carry ``artifacts`` (``paths``, ``exclude``, ``untracked``, ``when``,
``expire_in``, ``name``: the keys of GitLab ``lib/gitlab/ci/config/entry/artifacts.rb``
that reach the runner) and ``dependencies`` (names of earlier jobs of the same
pipeline, ``lib/gitlab/ci/config/entry/job.rb``). The job payload renders them as
GitLab does:

- ``artifacts``: ``Ci::BuildRunnerPresenter#artifacts``/``create_archive``
  (app/presenters/ci/build_runner_presenter.rb: one ``archive``/``zip`` entry when
  ``untracked`` or ``paths`` is given, ``exclude`` dropped unless present) through
  ``lib/api/entities/ci/job_request/artifacts.rb`` (``untracked`` and ``exclude`` not
  exposed when nil; unset keys are ``null``, as GitLab keeps no default for them).
- ``dependencies``: ``lib/api/entities/ci/job_request/dependency.rb`` — ``id``,
  ``name``, ``token`` (the *running* job's token: the dependency job's own token
  stopped being exposed with ``ci_expose_running_job_token_for_artifacts``) and
  ``artifacts_file`` ``{filename, size}`` (``Entities::Ci::JobArtifactFile``) only
  when the dependency has an archive (``available_artifacts?``).

Simplified: the fake has no stage order, so a job without ``dependencies:`` gets none
(GitLab gives it every job of the earlier stages); ``needs:``, ``artifacts:reports``,
``expose_as`` and ``public``/``access`` are not modelled. Pure functions only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .payloads import WHENS, SpecError
from .records import FINAL_STATES

#: The keys of ``artifacts:`` a spec may use.
ARTIFACT_KEYS = ("name", "untracked", "paths", "exclude", "when", "expire_in")


class JobLike(Protocol):
    """What the dependency rules read of a job record."""

    id: int
    spec: dict[str, Any]
    state: str


def _optional_strings(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SpecError(f"{what} must be a list of strings, not {value!r}")
    return list(value)


def _optional(value: Any, kind: type, what: str) -> Any:
    if value is not None and not isinstance(value, kind):
        raise SpecError(f"{what} must be a {kind.__name__}, not {value!r}")
    return value


def normalize_artifacts(value: Any) -> dict[str, Any] | None:
    """``artifacts:`` checked like ``Entry::Artifacts`` validates it; unset keys None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SpecError(f"artifacts must be a dict, not {value!r}")
    unknown = set(value) - set(ARTIFACT_KEYS)
    if unknown:
        raise SpecError(f"artifacts: unknown keys {sorted(unknown)}; known: {list(ARTIFACT_KEYS)}")
    when = _optional(value.get("when"), str, "artifacts when")
    if when is not None and when not in WHENS:
        raise SpecError(f"artifacts when must be one of {WHENS}, not {when!r}")
    return {
        "name": _optional(value.get("name"), str, "artifacts name"),
        "untracked": _optional(value.get("untracked"), bool, "artifacts untracked"),
        "paths": _optional_strings(value.get("paths"), "artifacts paths"),
        "exclude": _optional_strings(value.get("exclude"), "artifacts exclude"),
        "when": when,
        "expire_in": _optional(value.get("expire_in"), str, "artifacts expire_in"),
    }


def normalize_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The ``artifacts`` and ``dependencies`` part of a normalized spec."""
    return {
        "artifacts": normalize_artifacts(spec.get("artifacts")),
        "dependencies": _optional_strings(spec.get("dependencies"), "dependencies"),
    }


def payload_artifacts(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The payload's ``artifacts`` list (``BuildRunnerPresenter#create_archive``).

    Ruby's ``untracked || paths`` is true for an empty ``paths`` list too.
    """
    artifacts = spec.get("artifacts")
    if not artifacts or not (artifacts["untracked"] or artifacts["paths"] is not None):
        return []
    entry: dict[str, Any] = {"name": artifacts["name"]}
    if artifacts["untracked"] is not None:
        entry["untracked"] = artifacts["untracked"]
    entry["paths"] = artifacts["paths"]
    if artifacts["exclude"]:
        entry["exclude"] = artifacts["exclude"]
    entry |= {
        "when": artifacts["when"],
        "expire_in": artifacts["expire_in"],
        "artifact_type": "archive",
        "artifact_format": "zip",
    }
    return [entry]


def _pipeline(spec: Mapping[str, Any], job_id: int) -> int:
    """A job's pipeline: ``pipeline_id``, or its own id (a pipeline of one job)."""
    return int(spec["pipeline_id"] or job_id)


def check_dependencies(spec: Mapping[str, Any], earlier: Iterable[JobLike]) -> None:
    """Refuse ``dependencies`` GitLab would refuse when creating the pipeline
    (``Entry::Job`` "undefined dependency"): each name must be an earlier job of the
    same pipeline (which needs an explicit ``pipeline_id``) and project."""
    names = spec.get("dependencies") or []
    if not names:
        return
    if spec.get("pipeline_id") is None:
        raise SpecError("dependencies need a pipeline_id shared with the jobs they name")
    known = {
        job.spec["name"]
        for job in earlier
        if job.spec.get("pipeline_id") == spec["pipeline_id"]
        and job.spec["project_id"] == spec["project_id"]
    }
    missing = [name for name in names if name not in known]
    if missing:
        raise SpecError(
            f"undefined dependencies {missing}: no earlier job of pipeline "
            f"{spec['pipeline_id']} (project {spec['project_id']}) has that name"
        )


def dependency_jobs(job: JobLike, jobs: Iterable[JobLike]) -> list[JobLike]:
    """The jobs ``job`` depends on (``Ci::Build#all_dependencies``), oldest first: per
    name the latest job of its pipeline and project (``processables.latest``: a retry,
    which gets a higher id, replaces the job it retries)."""
    names = job.spec.get("dependencies") or []
    pipeline = _pipeline(job.spec, job.id)
    chosen: dict[str, JobLike] = {}
    for other in sorted(jobs, key=lambda candidate: candidate.id):
        if (
            other.id != job.id
            and other.spec["name"] in names
            and _pipeline(other.spec, other.id) == pipeline
            and other.spec["project_id"] == job.spec["project_id"]
        ):
            chosen[other.spec["name"]] = other
    return sorted(chosen.values(), key=lambda candidate: candidate.id)


def waits_for_dependencies(job: JobLike, jobs: Iterable[JobLike]) -> bool:
    """Whether a dependency has not finished yet: GitLab creates a job's build only
    once the earlier stages are done, so the fake holds it back until then."""
    return any(other.state not in FINAL_STATES for other in dependency_jobs(job, jobs))


def payload_dependency(
    job: JobLike, running_token: str, archive: tuple[str, int] | None
) -> dict[str, Any]:
    """One ``dependencies`` entry (``Entities::Ci::JobRequest::Dependency``);
    ``archive`` is the dependency's ``(filename, size)`` when it has one."""
    entry: dict[str, Any] = {"id": job.id, "name": job.spec["name"], "token": running_token}
    if archive is not None:
        entry["artifacts_file"] = {"filename": archive[0], "size": archive[1]}
    return entry
