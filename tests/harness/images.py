"""The images the engine tests run: one catalog, built once per run.

- :data:`TEST_IMAGE`: pipglr as released (``NESTED_PRIVILEGED`` and ``BUILD_TYPE``
  defaults: unprivileged jobs), with ``GITLAB_URL`` pointing at the fake GitLab;
- :data:`VARIANT_IMAGE`: the dev build with privileged nesting (``NESTED_PRIVILEGED=true``),
  the same GitLab;
- :data:`JOB_IMAGE`: not pipglr but a job image, ``examples/podman-job`` built as a user
  builds it (on the same base), for image builds in unprivileged jobs;
- :data:`CURL_JOB_IMAGE`: a small job image with curl (``tests/harness/curljob``, on the
  same base), pulled through the company-network tests' mirror (:mod:`tests.harness.companynet`).

Both pipglr images carry the gitlab-runner stand-in (or the real binary from
``PIPGLR_RUNNER_BINARY``) and the stand-in helper image as their prebuilt helper
archive, where any gitlab-runner imports it from. When the engine suite runs as
concurrent sets (:mod:`tests.harness.sets`) the coordinator builds them before the
sets start and each set takes them as built (:func:`prebuilt`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pipglr.bench import suite as bench
from pipglr.build import engine, imagebuild
from pipglr.settings import BuildSettings
from tests.harness import gitlab
from tests.standin import build_standin
from tests.standin.helperimage import standin_helper_archive

REPO = Path(__file__).resolve().parents[2]
TEST_IMAGE = os.environ.get("PIPGLR_TEST_IMAGE", "localhost/pipglr:test")
VARIANT_IMAGE = "localhost/pipglr:test-privileged"
#: What each image is built with.
TEST_SETTINGS = BuildSettings(gitlab_url=gitlab.URL, gitlab_allow_http=True)
VARIANT_SETTINGS = BuildSettings(
    build_type="dev", nested_privileged=True, gitlab_url=gitlab.URL, gitlab_allow_http=True
)
CATALOG = {TEST_IMAGE: TEST_SETTINGS, VARIANT_IMAGE: VARIANT_SETTINGS}
#: The job image that builds images (examples/podman-job), and its build context.
JOB_IMAGE = "localhost/pipglr-podman-job:test"
JOB_CONTEXT = REPO / "examples" / "podman-job"
#: The job image with curl (company-network tests), and its build context.
CURL_JOB_IMAGE = "localhost/pipglr-curl-job:test"
CURL_JOB_CONTEXT = REPO / "tests" / "harness" / "curljob"


class Unavailable(RuntimeError):
    """The engine cannot build the images (the caller skips or fails)."""


def build_test_image(settings: BuildSettings, tag: str) -> imagebuild.BuildResult:
    """Build ``tag`` with the stand-in, or the real runner from PIPGLR_RUNNER_BINARY,
    and the stand-in helper image as its prebuilt helper archive."""
    if shutil.which("podman") is None:
        raise Unavailable("podman is not installed")
    real = os.environ.get("PIPGLR_RUNNER_BINARY")
    binary = Path(real) if real else build_standin(REPO / "build" / "standin")
    return imagebuild.build_image(
        settings,
        tag,
        REPO / "build" / tag.rsplit(":", 1)[-1],
        runner_binary=binary,
        runner_sha256=os.environ.get("PIPGLR_RUNNER_SHA256"),
        allow_standin=not real,
        base_mode=os.environ.get("PIPGLR_BASE_MODE", "auto"),
        helper_archive=standin_helper_archive(base_mode=os.environ.get("PIPGLR_BASE_MODE", "auto")),
    )


def prebuilt(tag: str) -> imagebuild.BuildResult:
    """An image the coordinator built: its id and the settings its labels record."""
    found = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if found.returncode != 0:
        raise Unavailable(f"{tag} was to be built before the sets started: {found.stderr}")
    with engine.client() as podman:
        labels = engine.image_labels(podman, tag)
    settings = bench.settings_from_labels(labels)
    return imagebuild.BuildResult(
        tag, found.stdout.strip(), settings, labels.get("io.pipglr.runner.sha256", "")
    )


def job_image_argv(base_image: str) -> list[str]:
    """``podman build`` of :data:`JOB_IMAGE` from ``examples/podman-job`` on
    ``base_image`` (the base the pipglr images are built on: no registry here)."""
    return ["podman", "build", "--build-arg", f"BASE_IMAGE={base_image}",
            "--tag", JOB_IMAGE, str(JOB_CONTEXT)]  # fmt: skip


def curl_job_image_argv(base_image: str) -> list[str]:
    """``podman build`` of :data:`CURL_JOB_IMAGE` (the base + curl and ca-certificates)."""
    return ["podman", "build", "--build-arg", f"BASE_IMAGE={base_image}",
            "--tag", CURL_JOB_IMAGE, str(CURL_JOB_CONTEXT)]  # fmt: skip


def build_job_image(base_image: str) -> str:
    """Build :data:`JOB_IMAGE`, streaming podman's output."""
    subprocess.run(job_image_argv(base_image), check=True)
    return JOB_IMAGE


def catalog_base() -> str:
    """The base image the catalog builds on, made available first (pulled, or
    bootstrapped offline as ``PIPGLR_BASE_MODE`` says)."""
    mode = os.environ.get("PIPGLR_BASE_MODE", "auto")
    with engine.client() as podman:
        return imagebuild.ensure_base(podman, TEST_SETTINGS, mode).base_image
