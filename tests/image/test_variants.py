"""A second build: BUILD_TYPE=dev, NESTED_PRIVILEGED=true (the opt-in for privileged
jobs), run from its run label beside the session's default container
(:func:`tests.image.conftest.privileged_pipglr`)."""

from __future__ import annotations

import re

import pytest

from pipglr import labels, layout
from tests.harness import images
from tests.image.conftest import Pipglr

pytestmark = [pytest.mark.image, pytest.mark.slow]

VARIANT_TAG = images.VARIANT_IMAGE


def test_dev_build_keeps_the_package_manager(privileged_pipglr: Pipglr) -> None:
    """BUILD_TYPE=dev leaves apt-get and dpkg in the image."""
    host = privileged_pipglr.host()
    assert host.exists("apt-get") and host.exists("dpkg")


def test_run_label_of_the_privileged_build_is_privileged(
    pipglr: Pipglr, privileged_pipglr: Pipglr
) -> None:
    """NESTED_PRIVILEGED=true: the image's run label has --privileged and so has the
    container; the default build's label and container have neither (the control)."""
    inspect = privileged_pipglr.outer.run(
        "image", "inspect", "--format", '{{index .Labels "run"}}', VARIANT_TAG
    )
    assert inspect.stdout.strip() == labels.all_labels(images.VARIANT_SETTINGS)["run"]
    assert "--privileged" in inspect.stdout

    def privileged(name: str) -> str:
        return pipglr.outer.run("inspect", "--format", "{{.HostConfig.Privileged}}", name).stdout

    assert privileged(privileged_pipglr.name).strip() == "true"
    default = pipglr.outer.run("image", "inspect", "--format", '{{index .Labels "run"}}',
                               pipglr.image).stdout  # fmt: skip
    assert "--privileged" not in default and privileged(pipglr.name).strip() == "false"


def test_privileged_job_builds_an_image(privileged_pipglr: Pipglr) -> None:
    """With NESTED_PRIVILEGED=true a privileged nested container builds (and runs a RUN
    step of) an image: today's behaviour for what needs privilege, kept."""
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
    result = privileged_pipglr.docker(
        "run", "--rm", "-i", "--privileged", "--entrypoint", "sh", privileged_pipglr.image,
        input=script, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().endswith("built-in-a-job"), result.stdout[-2000:]


def test_prune_service_removes_leftovers_and_keeps_tagged_images(privileged_pipglr: Pipglr) -> None:
    """The prune unit (run by its timer, here with no grace period) removes a stopped
    container and a dangling image, and leaves tagged images to the evictor. Runs last
    here."""
    p = privileged_pipglr
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
