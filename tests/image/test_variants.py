"""A second build: BUILD_TYPE=dev, NESTED_PRIVILEGED=false, run from its run label."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from pipglr import imagebuild, labels, layout
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab, images
from tests.harness.joblog import JobLog, describe
from tests.image.conftest import (
    Pipglr,
    ensure_image,
    load_job_image,
    second_pipglr,
    session_image,
)

pytestmark = [pytest.mark.image, pytest.mark.slow]

VARIANT = images.VARIANT_SETTINGS
VARIANT_TAG = images.VARIANT_IMAGE
NAME = "pipglr-unprivileged"


@pytest.fixture(scope="session")
def variant_image() -> imagebuild.BuildResult:
    """The dev build without privileged nesting (shares the package layer)."""
    return session_image(VARIANT_TAG)


@pytest.fixture(scope="module")
def unprivileged(pipglr: Pipglr, variant_image: imagebuild.BuildResult) -> Iterator[Pipglr]:
    """The variant running from its own run label, with the session's config secret."""
    ensure_image(pipglr.outer, variant_image)
    # Its own runner, with the session's config.toml otherwise: privileged = true, as
    # if copied from a privileged runner.
    # Its runner's token is its set's own: no runner running beside it uses it.
    token = gitlab.token("second", pipglr.outer.mode)
    config = pipglr.config_text.replace(pipglr.runner_tokens()[0], token)
    with second_pipglr(pipglr, NAME, image=VARIANT_TAG, settings=VARIANT) as second:
        handle = second.start(config)
        load_job_image(pipglr.outer, NAME, VARIANT_TAG)
        yield handle


def test_dev_build_keeps_the_package_manager(unprivileged: Pipglr) -> None:
    """BUILD_TYPE=dev leaves apt-get and dpkg in the image."""
    host = unprivileged.host()
    assert host.exists("apt-get") and host.exists("dpkg")


def test_run_label_of_the_variant_is_not_privileged(unprivileged: Pipglr) -> None:
    """The image's run label has no --privileged; the container is not privileged."""
    inspect = unprivileged.outer.run(
        "image", "inspect", "--format", '{{index .Labels "run"}}', VARIANT_TAG
    )
    assert inspect.stdout.strip() == labels.all_labels(VARIANT)["run"]
    assert "--privileged" not in inspect.stdout
    privileged = unprivileged.outer.run(
        "inspect", "--format", "{{.HostConfig.Privileged}}", NAME
    ).stdout.strip()
    assert privileged == "false"


def test_unprivileged_outer_still_runs_jobs_with_all_ids(unprivileged: Pipglr) -> None:
    """Without --privileged outside, a nested job still chowns to 65535."""
    result = unprivileged.docker(
        "run", "--rm", "--entrypoint", "sh", VARIANT_TAG, "-c",
        "touch /f && chown 65535:65535 /f && stat -c %u:%g /f",
    )  # fmt: skip
    assert result.stdout.strip() == "65535:65535", result.stderr


@pytest.mark.security
def test_privileged_jobs_are_refused(unprivileged: Pipglr) -> None:
    """With NESTED_PRIVILEGED=false a privileged nested container cannot start: the
    API answers with crun's refusal to mount sysfs (detached, so the start's own
    error comes back rather than the attach's)."""
    result = unprivileged.docker(
        "run", "--detach", "--privileged", "--entrypoint", "true", VARIANT_TAG, check=False
    )
    assert result.returncode != 0, result.stdout
    assert "mount `sysfs` to `sys`: Operation not permitted" in result.stderr, result.stderr


@pytest.mark.security
def test_a_privileged_job_is_refused_at_container_start(
    unprivileged: Pipglr, fake_gitlab: Client
) -> None:
    """config.toml asks for privileged jobs, the image was built with
    NESTED_PRIVILEGED=false: the job fails when its first container starts, with the
    kernel's refusal to mount a read-write sysfs outside a privileged outer container
    (crun's message) — not some other error — and its script never runs. (Positive
    control: the same job passes on the privileged image, test_jobpath.py.)"""
    assert "privileged = true" in unprivileged.config_text
    job_id = fake_gitlab.add_job({"image": VARIANT_TAG, "runner": unprivileged.runner_tokens()[0],
                                  "variables": {}, "name": "wants-privileged",
                                  "script": ["echo the-script-ran"]})  # fmt: skip
    job = fake_gitlab.wait(job_id, timeout=240)
    log = JobLog.of(job)
    assert job["state"] == "failed", describe(job)
    assert log.contains("mount `sysfs` to `sys`: Operation not permitted"), describe(job)
    assert not log.contains("the-script-ran"), describe(job)


def test_prune_service_removes_leftovers_and_keeps_tagged_images(unprivileged: Pipglr) -> None:
    """The prune unit (run by its timer, here with no grace period) removes a stopped
    container and a dangling image, and leaves tagged images to the evictor. Runs last
    here."""
    p = unprivileged
    tagged = p.docker("images", "--quiet").stdout.split()
    assert tagged, "expected the loaded job image"

    def nested(*args: str) -> str:
        return p.podman(*args).stdout.strip()

    script = ("mkdir -p /tmp/prune && cd /tmp/prune && head -c 1000 /dev/urandom > blob && "
              "printf 'FROM scratch\\nCOPY blob /blob\\n' > Containerfile")  # fmt: skip
    p.outer.exec(p.name, "sh", "-c", script, user=layout.PODMAN.name)
    first = nested("build", "-q", "-t", "localhost/prune-me", "/tmp/prune")
    p.outer.exec(p.name, "sh", "-c", script, user=layout.PODMAN.name)
    nested("build", "-q", "-t", "localhost/prune-me", "/tmp/prune")  # `first` is dangling now
    nested("create", "--name", "prune-stopped", "localhost/prune-me", "/x")
    dropin = f"/run/systemd/system/{layout.PRUNE_SERVICE_UNIT}.d"
    p.outer.exec(p.name, "sh", "-c", f"mkdir -p {dropin} && printf "
                 f"'[Service]\\nEnvironment=PIPGLR_EVICT_MIN_AGE=0\\n' > {dropin}/test.conf && "
                 "systemctl daemon-reload")  # fmt: skip
    p.outer.exec(p.name, "systemctl", "start", layout.PRUNE_SERVICE_UNIT)
    result = p.outer.exec(p.name, "systemctl", "show", "--property", "Result",
                          layout.PRUNE_SERVICE_UNIT)  # fmt: skip
    assert result.stdout.strip() == "Result=success"
    said = p.outer.exec(p.name, "journalctl", "-u", layout.PRUNE_SERVICE_UNIT, "-o", "cat",
                        "--no-pager").stdout  # fmt: skip
    assert re.search(r"pruned [1-9]\d* stopped container\(s\) .* [1-9]\d* dangling", said), said
    images = nested("images", "--all", "--quiet", "--no-trunc")
    assert first not in images, "the dangling image stays"
    assert "prune-stopped" not in nested("ps", "--all", "--format", "{{.Names}}")
    assert set(tagged) <= set(p.docker("images", "--quiet").stdout.split()), "tagged images went"
