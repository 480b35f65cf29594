"""Turn GitLab's prebuilt helper export into the archive podman can load.

gitlab-runner looks next to its binary for ``prebuilt-<flavor>-<arch>.docker.tar.zst``
(``docker save`` format, loaded with ``POST /images/load`` and tagged) before
``prebuilt-<flavor>-<arch>.tar.xz`` (an exported root filesystem, imported with
``POST /images/create?fromSrc=-``) — executors/docker/internal/prebuilt/prebuilt.go.
GitLab publishes the ``.tar.xz``; the nested podman (5.4) refuses that xz-compressed
import ("layer ... does not match config's DiffID", measured), so a real first job
would fall back to pulling from registry.gitlab.com. The build therefore imports the
verified export once with the host's podman (with the ENTRYPOINT the runner would
add on import), saves it as a docker archive and compresses it with zstd; only that
file goes into the image. Conversions are cached by the export's sha256.

The archive's own image name (:data:`CONVERT_REPO`) contains ``gitlab-runner-helper``,
so the evictor's default keep-list (pipglr/guest/lru.py) protects the image from the
moment the runner loads it: between the load and the runner's tag the image has only
that name, and a storage over its cap lost it there once (CI: the first job on a
small storage then fell back to pulling the helper from registry.gitlab.com).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from pipglr.errors import RunnerBinaryError

#: What prebuilt.go's imageImport sets on the imported export (lost by docker export).
ENTRYPOINT = '["/usr/bin/dumb-init", "/entrypoint"]'
EXPORT_SUFFIX = ".tar.xz"
ARCHIVE_SUFFIX = ".docker.tar.zst"
#: The name the archive's image is saved under (kept by the evictor's default keep-list).
CONVERT_REPO = "localhost/gitlab-runner-helper-prebuilt"


def archive_name(export_name: str) -> str:
    """``prebuilt-alpine-x86_64.tar.xz`` → ``prebuilt-alpine-x86_64.docker.tar.zst``."""
    return export_name.removesuffix(EXPORT_SUFFIX) + ARCHIVE_SUFFIX


def _run(argv: list[str], **kw: object) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RunnerBinaryError(
            f"converting the helper image failed: `{shlex.join(argv)}`: "
            f"{(result.stderr or '').strip()[-300:]}"
        )


def convert(export: Path, sha256: str, target: Path, cache: Path) -> Path:
    """Write the docker archive of ``export`` to ``target`` (cached by ``sha256``)."""
    # The cache key names the image name too: archives saved under another name differ.
    cached = cache / f"{sha256}-{CONVERT_REPO.rsplit('/', 1)[-1]}{ARCHIVE_SUFFIX}"
    if not cached.is_file():
        for tool in ("xz", "zstd"):
            if shutil.which(tool) is None:
                raise RunnerBinaryError(
                    f"{tool} is needed to convert the helper image: `sudo scripts/install-deps.sh`"
                )
        cache.mkdir(parents=True, exist_ok=True)
        tag = f"{CONVERT_REPO}:{sha256[:12]}"
        print(f"converting {export.name} to {cached.name} (once)", file=sys.stderr, flush=True)
        # Decompressed on the way in: podman's import of an xz stream records a layer
        # digest that later loads reject ("Digest did not match", measured on 4.3).
        with subprocess.Popen(["xz", "-dc", str(export)], stdout=subprocess.PIPE) as unxz:
            _run(["podman", "import", "--change", f"ENTRYPOINT {ENTRYPOINT}", "-", tag],
                 stdin=unxz.stdout)  # fmt: skip
        if unxz.returncode != 0:
            raise RunnerBinaryError(f"{export} is not a valid xz archive (xz exited "
                                    f"{unxz.returncode})")  # fmt: skip
        try:
            partial = cached.with_suffix(".partial")
            with subprocess.Popen(["podman", "save", "--format", "docker-archive", tag],
                                  stdout=subprocess.PIPE) as save:  # fmt: skip
                _run(["zstd", "-q", "-T0", "-10", "-f", "-o", str(partial)], stdin=save.stdout)
            if save.returncode != 0:
                raise RunnerBinaryError(f"`podman save {tag}` failed ({save.returncode})")
            partial.rename(cached)
        finally:
            subprocess.run(["podman", "rmi", "--force", tag], capture_output=True, check=False)
    shutil.copyfile(cached, target)
    return target
