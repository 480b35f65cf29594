"""Nested jobs started through the Docker-compatible API, as the docker executor does."""

from __future__ import annotations

import pytest

from pipglr import layout
from tests.image.conftest import Pipglr

pytestmark = [pytest.mark.image]


def test_job_can_use_all_nested_ids(pipglr: Pipglr) -> None:
    """A job container writes a file owned by uid/gid 65535."""
    result = pipglr.docker(
        "run", "--rm", "--entrypoint", "sh", pipglr.image, "-c",
        "touch /f && chown 65535:65535 /f && stat -c %u:%g /f",
    )  # fmt: skip
    assert result.stdout.strip() == "65535:65535", result.stdout + result.stderr


def test_job_cannot_see_the_runner_config(pipglr: Pipglr) -> None:
    """The config.toml secret (the runner token) is not in a job's filesystem."""
    result = pipglr.docker(
        "run", "--rm", "--entrypoint", "sh", pipglr.image, "-c",
        f"test ! -e {layout.CONFIG_PATH} && echo absent",
    )  # fmt: skip
    assert result.stdout.strip() == "absent"


@pytest.mark.security
def test_podman_user_cannot_read_the_runner_config(pipglr: Pipglr) -> None:
    """Even an escaped job (user podman) cannot read the token."""
    result = pipglr.outer.exec(
        pipglr.name, "cat", str(layout.CONFIG_PATH), user=layout.PODMAN.name, check=False
    )
    assert result.returncode != 0 and "Permission denied" in result.stderr, result


@pytest.mark.security
def test_job_runs_under_seccomp(pipglr: Pipglr) -> None:
    """Jobs keep the inner podman's seccomp filter (the outer one is relaxed)."""
    result = pipglr.docker(
        "run", "--rm", "--entrypoint", "grep", pipglr.image, "^Seccomp:", "/proc/self/status"
    )
    assert result.stdout.split() == ["Seccomp:", "2"], result.stdout


@pytest.mark.security
def test_privileged_containers_are_refused(pipglr: Pipglr) -> None:
    """The default outer container is not privileged, so a privileged nested container
    cannot start: the API answers with crun's refusal to mount sysfs (detached, so the
    start's own error comes back rather than the attach's). The privileged build's
    container starts them (test_variants.py::test_privileged_job_builds_an_image)."""
    name = "refused-privileged"
    result = pipglr.docker("run", "--detach", "--privileged", "--name", name,
                           "--entrypoint", "true", pipglr.image, check=False)  # fmt: skip
    pipglr.docker("rm", "--force", name, check=False)
    assert result.returncode != 0, result.stdout
    assert "mount `sysfs` to `sys`: Operation not permitted" in result.stderr, result.stderr
