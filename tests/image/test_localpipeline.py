"""pipglr's own ``.gitlab-ci.yml`` run by gitlab-ci-local, jobs in its shell executor.

gitlab-ci-local (npm) reads the file the way GitLab does (``extends``, ``rules``,
``parallel: matrix``, variables; it validates it against GitLab's CI JSON schema) and
runs jobs' scripts as written. ``scripts/prepare-test-host.sh`` installs it. Shown here:

- which jobs a push to a branch, a push to the default branch and a schedule start;
- the ``check`` job as written;
- the weekly ``publish`` job as written, in three pipelines against Debian's
  ``docker-registry`` on 127.0.0.1 (the per-arch candidates pushed there as the
  ``build`` jobs would push them): the first publish, a rebuild with nothing changed
  (skipped: ``latest`` keeps its digest), a rebuild on a new base (published).

Not run here: ``build`` (it downloads gitlab-runner and runs on pipglr runners tagged
per architecture; ``invoke build`` is what every engine test's image comes from) and
``image-test`` (the engine suite itself). Jobs run as root on this host, not in the
jobs' images: gitlab-ci-local's docker mode would need those images from a registry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from pipglr.build import base, provenance
from pipglr.release import registry
from tests.harness import registry as test_registry
from tests.image.infra import labelled_image, remove_images, unavailable

REPO = Path(__file__).resolve().parents[2]
LOG = REPO / "build" / "test-logs" / "pipeline-local.txt"
pytestmark = [pytest.mark.image]
#: Where scripts/prepare-test-host.sh installs gitlab-ci-local.
INSTALLED = Path("/usr/local/lib/pipglr-test-tools/node_modules/.bin/gitlab-ci-local")
PREFIX = f"localhost/pipglr-localci-{os.getpid()}-"
#: One virtualenv for every job the test runs (``scripts/invoke`` takes it from
#: ``PIPGLR_VENV``): each job runs in its own copy of the repository, and creating a
#: venv per copy cost most of a job's time. It is not the developer's ``.venv``:
#: ``scripts/invoke`` installs the project editable, which would point that one at a
#: job's copy.
JOB_VENV = REPO / "build" / "gitlab-ci-local-venv"
#: Predefined variables the runs set on purpose (gitlab-ci-local warns otherwise).
OVERRIDDEN = "CI_COMMIT_BRANCH,CI_DEFAULT_BRANCH,CI_PIPELINE_SOURCE"
FACTS = provenance.Provenance("sha256:" + "b" * 64, "v18.11.4", "c" * 64, "sha256:1", "e" * 40)


@pytest.fixture(scope="module")
def gitlab_ci_local() -> str:
    """The gitlab-ci-local binary: $PIPGLR_GITLAB_CI_LOCAL, PATH, or prepare's copy."""
    found = os.environ.get("PIPGLR_GITLAB_CI_LOCAL") or shutil.which("gitlab-ci-local")
    found = found or (str(INSTALLED) if INSTALLED.exists() else None)
    if found is None:
        unavailable("gitlab-ci-local is not installed (scripts/prepare-test-host.sh does it)")
    if shutil.which("rsync") is None:
        unavailable("rsync is not installed (gitlab-ci-local copies the project with it)")
    return str(found)


def log(text: str) -> None:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as out:
        out.write(text)


def gcl(binary: str, *args: str, variables: Mapping[str, str] | None = None) -> str:
    """Run gitlab-ci-local on this repository; its output, asserted successful."""
    given = {"PIPGLR_VENV": str(JOB_VENV), **(variables or {})}
    pairs = [arg for k, v in given.items() for arg in ("--variable", f"{k}={v}")]
    argv = [binary, "--state-dir", "build/gitlab-ci-local",
            "--force-shell-executor", "--shell-isolation", "--no-color",
            "--ignore-predefined-vars", OVERRIDDEN,
            *pairs, *args]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=900)  # fmt: skip
    shown = " ".join(f"{k}={v}" for k, v in (variables or {}).items())
    log(f"$ gitlab-ci-local {' '.join(args)}  [{shown}]\n{done.stdout}{done.stderr}\n")
    assert done.returncode == 0, f"gitlab-ci-local {' '.join(args)}:\n{done.stderr[-4000:]}"
    return done.stdout


def started_jobs(binary: str, variables: Mapping[str, str]) -> list[str]:
    listing = gcl(binary, "--list-json", variables=variables)
    return [job["name"] for job in json.loads(listing) if job["when"] != "never"]


def test_rules_start_the_release_jobs_only_on_the_default_branch_and_schedules(
    gitlab_ci_local: str,
) -> None:
    """A push to a branch runs `check` alone; the default branch and a schedule run
    the whole pipeline (both arches of `build`)."""
    LOG.unlink(missing_ok=True)
    everything = ["check", "build: [amd64]", "build: [arm64]", "image-test", "publish"]
    branch = {"CI_COMMIT_BRANCH": "feature", "CI_DEFAULT_BRANCH": "main"}
    assert started_jobs(gitlab_ci_local, {**branch, "CI_PIPELINE_SOURCE": "push"}) == ["check"]
    assert started_jobs(gitlab_ci_local, {**branch, "CI_PIPELINE_SOURCE": "schedule"}) == (
        everything
    )
    default = {"CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main"}
    assert started_jobs(gitlab_ci_local, {**default, "CI_PIPELINE_SOURCE": "push"}) == everything


def test_check_job_runs_as_written(gitlab_ci_local: str) -> None:
    """The `check` job: lint, types and unit tests through `scripts/invoke`."""
    output = gcl(gitlab_ci_local, "check")
    # "N passed in", or "N passed, M skipped in": the harness's own checks in tests/unit
    # skip while the engine suite serves their namespace (as it does around this test).
    assert "PASS  check" in output and re.search(r" \d+ passed(, \d+ skipped)? in ", output)


@pytest.fixture(scope="module")
def ci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry on 127.0.0.1 that podman and skopeo may use over HTTP (a
    registries.conf.d entry, as an operator writes for a private registry)."""
    if not test_registry.available():
        unavailable(test_registry.MISSING)
    if subprocess.run(["podman", "image", "exists", base.DEFAULT_TAG]).returncode != 0:
        unavailable(f"no {base.DEFAULT_TAG}: run `invoke base` first")
    with test_registry.serve(tmp_path_factory.mktemp("ci-registry")) as host:
        entry = Path(f"/etc/containers/registries.conf.d/pipglr-localci-{os.getpid()}.conf")
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(test_registry.insecure_entry(host))
        try:
            yield host
        finally:
            entry.unlink()
            subprocess.run(["podman", "logout", host], capture_output=True, check=False)
            remove_images(PREFIX, f"{host}/")


def push_candidates(repository: str, pipeline: int, facts: provenance.Provenance,
                    tmp_path: Path) -> None:  # fmt: skip
    """What the `build` jobs leave for `publish`: ``ci-N-amd64`` and ``ci-N-arm64``
    carrying the build's provenance labels (both amd64 here: no arm64 base offline)."""
    for arch in ("amd64", "arm64"):
        name = labelled_image(tmp_path, f"{PREFIX}{pipeline}-{arch}", facts)
        registry.publish([name], f"docker://{repository}", [f"ci-{pipeline}-{arch}"], False)


def latest_digests(repository: str) -> frozenset[str]:
    """The digests the registry serves ``latest`` under (none before a publish)."""
    info = registry.inspect(f"docker://{repository}:latest", tls_verify=False)
    return frozenset() if info is None else info.digests


def test_weekly_publish_job_publishes_only_what_changed(
    gitlab_ci_local: str, ci_registry: str, tmp_path: Path
) -> None:
    """Three scheduled pipelines' `publish` job, as written: nothing published yet ->
    publish; same facts -> skipped, `latest` unchanged; new base digest -> publish."""
    repository = f"{ci_registry}/pipglr-localci-{os.getpid()}"
    common = {"CI_PIPELINE_SOURCE": "schedule", "CI_REGISTRY": ci_registry,
              "CI_REGISTRY_IMAGE": repository, "CI_REGISTRY_USER": "ci",
              "CI_REGISTRY_PASSWORD": "unused-by-this-registry"}  # fmt: skip
    rebased = provenance.Provenance(**{**FACTS.__dict__, "base_digest": "sha256:" + "d" * 64})
    outputs: list[str] = []
    digests: list[frozenset[str]] = []
    for pipeline, facts in ((1, FACTS), (2, FACTS), (3, rebased)):
        push_candidates(repository, pipeline, facts, tmp_path)
        candidate = f"{repository}:ci-{pipeline}"
        outputs.append(gcl(gitlab_ci_local, "publish",
                           variables={**common, "CANDIDATE": candidate}))  # fmt: skip
        digests.append(latest_digests(repository))
        assert "PASS  publish" in outputs[-1]

    first, unchanged, changed = outputs
    assert "rebuild needed: publish" in first and f"pushed docker://{repository}:latest@" in first
    assert f"pushed docker://{repository}:v18.11.4@" in first
    assert "no downstream projects in ci/downstream.toml" in first
    assert "nothing changed since the last publish" in unchanged and "pushed " not in unchanged
    assert "base image digest unchanged" in unchanged
    assert "base image digest changed" in changed and "rebuild needed: publish" in changed
    assert digests[0] and digests[1] == digests[0], "skipped: latest kept"
    assert digests[2] and not digests[2] & digests[0], "published: latest moved"
