"""Obtain the gitlab-runner binary that goes into the image.

By default it is downloaded from GitLab's official release bucket for
``RUNNER_VERSION``/``TARGETARCH`` and checked against the ``release.sha256`` published
beside it. For offline builds a local file is used instead, checked when a sha256 is
given. The test stand-in (``tests/standin``, built as a zipapp) carries
:data:`STANDIN_MARKER`; it is refused unless the caller explicitly allows it, which
only the test suite does.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipglr.errors import RunnerBinaryError
from pipglr.settings import BuildSettings

log = logging.getLogger(__name__)

RELEASE_BUCKET = "https://gitlab-runner-downloads.s3.amazonaws.com"
#: Bytes every test stand-in contains; a release build never accepts such a file.
STANDIN_MARKER = b"PIPGLR-TEST-STANDIN"


@dataclass(frozen=True)
class RunnerSource:
    """Where the binary comes from: a URL (with its checksum list) or a local file."""

    url: str | None = None
    sha256_url: str | None = None
    path: Path | None = None
    sha256: str | None = None

    def describe(self) -> str:
        """Short text for the image label ``io.pipglr.runner.source``."""
        return self.url if self.url else f"file:{self.path.name if self.path else '?'}"


def binary_name(arch: str) -> str:
    """Path of the binary inside a release, as ``release.sha256`` lists it."""
    return f"binaries/gitlab-runner-linux-{arch}"


#: Architecture names of the prebuilt helper images (helpers/container/helperimage).
HELPER_ARCH = {"amd64": "x86_64", "arm64": "arm64"}


#: Helper image flavor: gitlab-runner's default (helpers/container/helperimage).
HELPER_FLAVOR = "alpine"


def helper_archive_name(arch: str) -> str:
    """File name of the prebuilt helper image the runner imports when it has no
    helper image: ``prebuilt-<flavor>-<arch>`` (helperimage/linux_info.go) plus
    ``.tar.xz``, an exported root filesystem that
    executors/docker/internal/prebuilt/prebuilt.go imports and tags with the helper
    image's name."""
    return f"prebuilt-{HELPER_FLAVOR}-{HELPER_ARCH[arch]}.tar.xz"


def helper_release_name(arch: str) -> str:
    """Path of the helper archive inside a release, as ``release.sha256`` lists it."""
    return f"helper-images/{helper_archive_name(arch)}"


def official_helper_source(settings: BuildSettings) -> RunnerSource:
    """The official helper archive beside the binary of the same release."""
    return _release_file(settings, helper_release_name(settings.target_arch))


def _release_file(settings: BuildSettings, name: str) -> RunnerSource:
    """File ``name`` of the settings' release in GitLab's bucket, with its checksums."""
    base = f"{RELEASE_BUCKET}/{settings.runner_release}"
    return RunnerSource(url=f"{base}/{name}", sha256_url=f"{base}/release.sha256")


def choose_helper_source(
    settings: BuildSettings, runner: RunnerSource, local: Path | None = None
) -> RunnerSource | None:
    """The helper archive to bake in: a local file when given; the official one when
    the runner is downloaded too; none for a local runner binary without an archive
    (its first job then pulls the helper image from registry.gitlab.com)."""
    if local is not None:
        return RunnerSource(path=local)
    if runner.url:
        return official_helper_source(settings)
    return None


def official_source(settings: BuildSettings) -> RunnerSource:
    """The official download for the settings' version and architecture."""
    return _release_file(settings, binary_name(settings.target_arch))


def choose_source(
    settings: BuildSettings, local: Path | None = None, sha256: str | None = None
) -> RunnerSource:
    """The local file when one is given, the official download otherwise."""
    if local is None:
        return official_source(settings)
    return RunnerSource(path=local, sha256=sha256.lower() if sha256 else None)


def parse_release_sha256(text: str, arch: str, wanted: str | None = None) -> str:
    """Find the checksum of ``wanted`` (default: the linux ``arch`` binary) in a
    ``release.sha256`` text."""
    wanted = wanted or binary_name(arch)
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[-1].lstrip("*").removeprefix("./") == wanted:
            return fields[0].lower()
    raise RunnerBinaryError(f"release.sha256 lists no {wanted}: is {arch} a released arch?")


def release_sha256(settings: BuildSettings, timeout: float = 30.0) -> str:
    """The sha256 GitLab's ``release.sha256`` lists for the settings' binary: what the
    next build would bake, without downloading the binary."""
    source = official_source(settings)
    assert source.sha256_url
    try:
        with urllib.request.urlopen(source.sha256_url, timeout=timeout) as response:
            listing = response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        raise RunnerBinaryError(
            f"cannot read {source.sha256_url} ({exc}): pass --runner-sha256 HEX or "
            "--runner-binary PATH"
        ) from exc
    return parse_release_sha256(listing, settings.target_arch)


def fetch_helper(source: RunnerSource, target: Path, settings: BuildSettings) -> str:
    """Put the verified helper archive at ``target``; return its sha256."""
    if source.path is not None:
        if not source.path.is_file():
            raise RunnerBinaryError(
                f"no helper image archive at {source.path}: give the "
                f"{helper_archive_name(settings.target_arch)} of the runner's release"
            )
        shutil.copyfile(source.path, target)
        return sha256_of(target)
    assert source.url and source.sha256_url
    try:
        with urllib.request.urlopen(source.sha256_url, timeout=30) as response:
            listing = response.read().decode()
        wanted = helper_release_name(settings.target_arch)
        expected = parse_release_sha256(listing, settings.target_arch, wanted)
        _download(source.url, target)
    except (urllib.error.URLError, OSError) as exc:
        raise RunnerBinaryError(
            f"cannot download the helper image archive {source.url} ({exc}): build "
            "offline with `invoke build --runner-binary PATH --helper-archive PATH`"
        ) from exc
    actual = sha256_of(target)
    if actual != expected:
        target.unlink()
        raise RunnerBinaryError(
            f"helper image archive sha256 mismatch: expected {expected}, got {actual}"
        )
    return actual


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_standin(path: Path) -> bool:
    """Whether ``path`` is a test stand-in rather than a real gitlab-runner."""
    return STANDIN_MARKER in path.read_bytes()


def _download(url: str, target: Path, timeout: float = 60.0) -> None:
    """Stream ``url`` to ``target``, printing progress to stderr."""
    with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        for block in iter(lambda: response.read(1 << 20), b""):
            out.write(block)
            done += len(block)
            if total:
                print(f"\r  {url}: {done * 100 // total}%", end="", file=sys.stderr)
        if total:
            print(file=sys.stderr)


def fetch(
    source: RunnerSource, target: Path, settings: BuildSettings, allow_standin: bool = False
) -> str:
    """Put the verified binary at ``target``; return its sha256.

    Raises:
        RunnerBinaryError: download failed, checksum mismatch, or a stand-in was
            given without ``allow_standin``. The message names both ways to get a
            binary.
    """
    offline_hint = (
        "connect to the internet for the official download, or build offline with "
        "`invoke build --runner-binary PATH [--runner-sha256 HEX]`"
    )
    if source.path is not None:
        if not source.path.is_file():
            raise RunnerBinaryError(f"no gitlab-runner binary at {source.path}: {offline_hint}")
        if is_standin(source.path) and not allow_standin:
            raise RunnerBinaryError(
                f"{source.path} is the test stand-in, not gitlab-runner: release builds "
                "take the official binary (default) or a real local one"
            )
        shutil.copyfile(source.path, target)
    else:
        assert source.url and source.sha256_url
        log.info("downloading %s", source.url)
        try:
            with urllib.request.urlopen(source.sha256_url, timeout=30) as response:
                listing = response.read().decode()
            expected = parse_release_sha256(listing, settings.target_arch)
            _download(source.url, target)
        except (urllib.error.URLError, OSError) as exc:
            raise RunnerBinaryError(
                f"cannot download gitlab-runner {settings.runner_version} for "
                f"{settings.target_arch} ({exc}): {offline_hint}"
            ) from exc
        source = RunnerSource(url=source.url, sha256=expected)
    actual = sha256_of(target)
    if source.sha256 and actual != source.sha256:
        target.unlink()
        raise RunnerBinaryError(
            f"gitlab-runner sha256 mismatch: expected {source.sha256}, got {actual}: "
            "the file is corrupt or not the release you meant"
        )
    target.chmod(0o755)
    return actual
