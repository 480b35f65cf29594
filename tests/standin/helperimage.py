"""Build the stand-in helper image offline and export it the way gitlab-runner ships
its prebuilt helper images.

A gitlab-runner release (v18.11.4) ships ``helper-images/prebuilt-alpine-<arch>.tar.xz``
beside the binaries and in the Linux packages
(``/usr/lib/gitlab-runner/helper-images/``). Linux archives are **exported root
filesystems** (``ci/prebuilt_helper_image``: ``docker export`` of a container created from
the helper image, xz-compressed), which the docker executor **imports**
(``POST /images/create?fromSrc=-``, re-applying ``ENTRYPOINT ["/usr/bin/dumb-init",
"/entrypoint"]``) and tags ``registry.gitlab.com/gitlab-org/gitlab-runner/
gitlab-runner-helper:<arch>-v<version>`` (executors/docker/internal/prebuilt/prebuilt.go).
Only Windows archives are ``docker save`` archives (``.docker.tar.zst``, loaded).

:func:`standin_helper_archive` does both for an image build with the stand-in: the
engine tests' image and ``invoke build --standin`` bake the same archive.
"""

from __future__ import annotations

import lzma
import platform
import secrets
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pipglr.build import engine, imagebuild, runnerbin
from pipglr.settings import BuildSettings
from tests.standin.gitlab_runner import helper

HELPER_DIR = Path(__file__).resolve().parent / "helper"
REPO = Path(__file__).resolve().parents[2]
#: The stand-in helper image as built on this machine (the host-side runners use it).
HELPER_IMAGE = "localhost/pipglr-test-helper:latest"


def helper_arch() -> str:
    """This machine's helper image architecture (``x86_64``, ``arm64``)."""
    return helper.arch(platform.machine())


def default_helper_image(arch: str | None = None) -> str:
    """The helper image name:tag the stand-in looks for first (the registry name with
    the stand-in's version tag, ``x86_64-v0.0.0``, which no real release uses)."""
    return f"{helper.REGISTRY_NAME}:{helper.tag(arch or helper_arch())}"


def prebuilt_file_name(arch: str | None = None) -> str:
    """``prebuilt-alpine-<arch>.tar.xz``: the name the runner looks for."""
    return helper.prebuilt_base(arch or helper_arch()) + helper.EXPORT_SUFFIX


def build_helper_image(podman_cmd: Sequence[str], base: str, tag: str) -> None:
    """``podman build`` tests/standin/helper/Containerfile from ``base`` as ``tag``
    (installs bash, git, dumb-init, zip/unzip with apt from the Debian mirror)."""
    subprocess.run(
        [*podman_cmd, "build", "--build-arg", f"BASE_IMAGE={base}", "--tag", tag,
         "--file", str(HELPER_DIR / "Containerfile"), str(HELPER_DIR)],
        check=True,
    )  # fmt: skip


def prebuilt_archive(podman_cmd: Sequence[str], tag: str, target: Path) -> Path:
    """Export ``tag``'s root filesystem as an xz tarball, like ``ci/prebuilt_helper_image``.

    ``target`` is the archive path, or a directory (then the file is
    ``<target>/prebuilt-alpine-<arch>.tar.xz``); returns the archive path.
    """
    archive = target / prebuilt_file_name() if target.is_dir() else target
    archive.parent.mkdir(parents=True, exist_ok=True)
    name = f"standin-helper-export-{secrets.token_hex(4)}"
    subprocess.run([*podman_cmd, "create", "--name", name, tag, "true"], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        with subprocess.Popen([*podman_cmd, "export", name], stdout=subprocess.PIPE) as export:
            assert export.stdout is not None
            compressor = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=0)
            with archive.open("wb") as out:
                while chunk := export.stdout.read(1 << 20):
                    out.write(compressor.compress(chunk))
                out.write(compressor.flush())
        if export.returncode != 0:
            archive.unlink(missing_ok=True)
            raise subprocess.CalledProcessError(export.returncode, [*podman_cmd, "export", name])
    finally:
        subprocess.run([*podman_cmd, "rm", "--force", name], check=False,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    return archive


def standin_helper_archive(
    settings: BuildSettings | None = None, base_mode: str = "auto", podman: str = "podman"
) -> Path:
    """Build the stand-in helper image (:data:`HELPER_IMAGE`) and export it under
    ``build/helper/`` as the prebuilt archive a build bakes in (``helper_archive``);
    returns the archive's path.

    The helper is built on pipglr's default base whatever base the image build uses:
    GitLab's helper image has nothing to do with pipglr's base either. The export is
    kept beside the helper image's id and made again only when that id changes, so
    every build of a test run (the catalog's images, the chain test's) bakes the same
    bytes and the build's conversion (:func:`pipglr.build.helperarchive.convert`, cached by
    the archive's digest) runs once."""
    with engine.client() as client:
        used = imagebuild.ensure_base(client, BuildSettings(), base_mode)
    build_helper_image((podman,), used.base_image, HELPER_IMAGE)
    arch = (settings or BuildSettings()).target_arch
    target = REPO / "build" / "helper" / runnerbin.helper_archive_name(arch)
    image_id = subprocess.run(
        [podman, "image", "inspect", "--format", "{{.Id}}", HELPER_IMAGE],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    stamp = target.with_name(target.name + ".image-id")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == image_id:
        return target
    archive = prebuilt_archive((podman,), HELPER_IMAGE, target)
    stamp.write_text(image_id + "\n")
    return archive
