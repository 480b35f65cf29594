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


def test_privileged_job_builds_an_image(pipglr: Pipglr) -> None:
    """With NESTED_PRIVILEGED=true a privileged job builds (and runs a RUN step of) an image."""
    assert pipglr.settings.nested_privileged
    script = """set -e
mkdir -p /tmp/base /tmp/ctx
for f in /bin/sh /usr/bin/cat $(ldd /bin/sh /usr/bin/cat | grep -o '/[^ :]*'); do
    cp --parents -L "$f" /tmp/base/
done
tar -C /tmp/base -c . | podman --storage-driver vfs import - localhost/job-base >/dev/null
printf 'FROM localhost/job-base\\nRUN echo built-in-a-job > /proof\\n' > /tmp/ctx/Containerfile
podman --storage-driver vfs build --isolation chroot -t localhost/built-in-job /tmp/ctx
podman --storage-driver vfs run --rm --network none --cgroups disabled \\
    localhost/built-in-job cat /proof
"""
    result = pipglr.docker(
        "run", "--rm", "-i", "--privileged", "--entrypoint", "sh", pipglr.image,
        input=script, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().endswith("built-in-a-job"), result.stdout[-2000:]
