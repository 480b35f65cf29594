"""A second build: BUILD_TYPE=dev, NESTED_PRIVILEGED=false, run from its run label."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipglr import imagebuild, labels, layout
from pipglr.settings import BuildSettings
from tests.image.conftest import (
    Pipglr,
    build_test_image,
    dump_logs,
    ensure_image,
    load_job_image,
    wait_ready,
)

pytestmark = [pytest.mark.image, pytest.mark.slow]

VARIANT = BuildSettings(build_type="dev", nested_privileged=False)
VARIANT_TAG = "localhost/pipglr:test-unprivileged"
NAME = "pipglr-unprivileged"


@pytest.fixture(scope="session")
def variant_image() -> imagebuild.BuildResult:
    """The dev build without privileged nesting (shares the package layer)."""
    return build_test_image(VARIANT, VARIANT_TAG)


@pytest.fixture(scope="module")
def unprivileged(pipglr: Pipglr, variant_image: imagebuild.BuildResult) -> Iterator[Pipglr]:
    """The variant running from its own run label, with the session's config secret."""
    outer = pipglr.outer
    ensure_image(outer, variant_image)
    outer.run("rm", "--force", "--ignore", NAME)
    outer.run(*labels.second_instance(VARIANT, VARIANT_TAG, NAME, layout.CONFIG_SECRET)[1:])
    handle = Pipglr(outer, VARIANT_TAG, pipglr.workdir, NAME, VARIANT)
    try:
        wait_ready(outer, NAME)
        load_job_image(outer, NAME, VARIANT_TAG)
        yield handle
    finally:
        dump_logs(outer, NAME)
        outer.run("rm", "--force", "--ignore", NAME, check=False)
        outer.run("volume", "rm", "--force", f"{NAME}-{layout.STORAGE_VOLUME}",
                  f"{NAME}-{layout.CACHE_VOLUME}", check=False)  # fmt: skip


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


def test_privileged_jobs_are_refused(unprivileged: Pipglr) -> None:
    """With NESTED_PRIVILEGED=false a privileged nested container cannot start."""
    result = unprivileged.docker(
        "run", "--rm", "--privileged", "--entrypoint", "true", VARIANT_TAG, check=False
    )
    assert result.returncode != 0, result.stdout


def test_prune_service_empties_the_nested_storage(unprivileged: Pipglr) -> None:
    """The prune unit (run by its timer) removes unused nested images. Runs last here."""
    before = unprivileged.docker("images", "--quiet").stdout.split()
    assert before, "expected the loaded job image"
    unprivileged.outer.exec(unprivileged.name, "systemctl", "start", layout.PRUNE_SERVICE_UNIT)
    result = unprivileged.outer.exec(
        unprivileged.name, "systemctl", "show", "--property", "Result", layout.PRUNE_SERVICE_UNIT
    )
    assert result.stdout.strip() == "Result=success"
    assert unprivileged.docker("images", "--quiet").stdout.split() == []
