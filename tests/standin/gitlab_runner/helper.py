"""The helper image: its name, and how the executor finds it (helpers/container/
helperimage/info.go + linux_info.go, executors/docker/docker.go ``getHelperImage``/
``getLocalHelperImage``, executors/docker/internal/prebuilt/prebuilt.go)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from . import VERSION
from .buildlog import BuildLogger
from .dockerapi import DockerClient, DockerError
from .images import PullManager

#: info.go ``GitLabRegistryName``.
REGISTRY_NAME = "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper"
#: prebuilt.go ``imageImport``: ``docker export`` loses ENTRYPOINT; import puts it back.
ENTRYPOINT_CHANGE = 'ENTRYPOINT ["/usr/bin/dumb-init", "/entrypoint"]'
#: linux_info.go ``bashCmd``: the predefined container's command (umask 0000; bash).
CMD = ["gitlab-runner-build"]
EXPORT_SUFFIX = ".tar.xz"
ARCHIVE_SUFFIX = ".docker.tar.zst"


def arch(docker_arch: str) -> str:
    """linux_info.go ``architecture``: ``/info`` Architecture → helper arch."""
    return {"armv6l": "arm", "armv7l": "arm", "aarch64": "arm64", "amd64": "x86_64"}.get(
        docker_arch, docker_arch or "x86_64"
    )


def version_tag(version: str = VERSION) -> str:
    """info.go ``Version``: ``v<major>.<minor>.<patch>`` of the runner, else ``latest``."""
    match = re.match(r"^[0-9]*\.[0-9]*\.[0-9]*", version)
    return f"v{match.group(0)}" if match else "latest"


def tag(docker_arch: str, version: str = VERSION) -> str:
    """linux_info.go ``Create``, alpine flavour (no prefix): ``x86_64-v18.11.4``."""
    return f"{arch(docker_arch)}-{version_tag(version)}"


def prebuilt_base(docker_arch: str, flavor: str = "alpine") -> str:
    """linux_info.go ``Create``: ``prebuilt-<flavour>-<arch>`` (suffix added by prebuilt.go)."""
    return f"prebuilt-{flavor}-{arch(docker_arch)}"


def prebuilt_dirs(executable: str | None = None, cwd: str | None = None) -> list[Path]:
    """prebuilt.go ``init``: ``PrebuiltImagesPaths`` relative to the running binary."""
    runner_dir = Path(executable or sys.argv[0]).resolve().parent
    return [
        runner_dir / "out/helper-images",
        runner_dir / "../helper-images",
        Path(cwd or os.getcwd()) / "out/helper-images",
        runner_dir / "../lib/gitlab-runner/helper-images",
    ]


def prebuilt_candidates(base: str, dirs: list[Path]) -> list[Path]:
    """prebuilt.go ``load``: per directory, the zstd docker archive then the xz export,
    and the same with ``amd64`` for ``x86_64``."""
    names = [base + ARCHIVE_SUFFIX, base + EXPORT_SUFFIX]
    if "x86_64" in base:
        amd64 = base.replace("x86_64", "amd64")
        names += [amd64 + ARCHIVE_SUFFIX, amd64 + EXPORT_SUFFIX]
    return [directory / name for directory in dirs for name in names]


class HelperImage:
    """``getHelperImage``: configured ``helper_image`` through the pull manager, else the
    default name: local image, prebuilt archive, registry (in that order)."""

    def __init__(
        self,
        client: DockerClient,
        logger: BuildLogger,
        pull: PullManager,
        docker_arch: str,
        override: str = "",
        dirs: list[Path] | None = None,
    ) -> None:
        self.client, self.logger, self.pull, self.override = client, logger, pull, override
        self.name = REGISTRY_NAME
        self.tag = tag(docker_arch)
        self.prebuilt = prebuilt_base(docker_arch)
        self.dirs = dirs if dirs is not None else prebuilt_dirs()

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"

    def get(self) -> dict[str, Any]:
        """The helper image's inspect data."""
        if self.override:
            self.logger.println(
                f"Using helper image:  {self.override}  (overridden, default would be  {self} )"
            )
            return self.pull.get_image(self.override, None)
        self.logger.debugln(f"Looking for prebuilt image {self}...")
        found = self.pull.inspect(str(self))
        if found is not None:
            return found
        loaded = self._load_prebuilt()
        if loaded is not None:
            return loaded
        self.logger.println(f"Using helper image:  {self}")
        return self.pull.get_image(str(self), None)

    def _load_prebuilt(self) -> dict[str, Any] | None:
        """``prebuilt.Get``: the first archive that imports/loads, then inspect."""
        errors = []
        for path in prebuilt_candidates(self.prebuilt, self.dirs):
            try:
                if path.name.endswith(ARCHIVE_SUFFIX):
                    self._image_load(path)
                else:
                    self._image_import(path)
            except (OSError, DockerError) as exc:
                errors.append(f"{path.name}: {exc}")
                continue
            try:
                return self.pull.inspect(str(self))
            except DockerError as exc:
                self.logger.debugln("Failed to load prebuilt:", exc)
                return None
        self.logger.debugln("Failed to load prebuilt:", "; ".join(errors))
        return None

    def _image_import(self, path: Path) -> None:
        """``imageImport``: ``POST /images/create?fromSrc=-&repo=NAME&tag=TAG&changes=...``
        with the exported root filesystem as the body."""
        query: dict[str, str | list[str]] = {
            "fromSrc": "-",
            "repo": self.name,
            "tag": self.tag,
            "changes": [ENTRYPOINT_CHANGE],
        }
        with path.open("rb") as body:
            headers = {"Content-Length": str(path.stat().st_size)}
            for _ in self.client.stream(
                "POST", "/images/create", query, data=body, headers=headers
            ):
                pass

    def _image_load(self, path: Path) -> None:
        """``imageLoad``: ``POST /images/load?quiet=1``, then tag the loaded image."""
        loaded = ""
        with path.open("rb") as body:
            headers = {"Content-Length": str(path.stat().st_size)}
            for message in self.client.stream(
                "POST", "/images/load", {"quiet": "1"}, data=body, headers=headers
            ):
                stream = str(message.get("stream", ""))
                for marker in ("Loaded image ID:", "Loaded image:"):
                    if marker in stream:
                        loaded = stream.split(marker, 1)[1].strip()
        if not loaded:
            raise DockerError(0, "could not find image ID for loaded prebuilt image")
        self.client.call("POST", f"/images/{loaded}/tag", {"repo": self.name, "tag": self.tag})
