"""Build arguments of the image: validation, build-arg values and OCI labels.

:class:`BuildSettings` is the one place the build args are named, defaulted and
checked. The tasks fill it from flags/config, the unit renderer and the label
generator read it, and :meth:`BuildSettings.image_facts` is written into the image
(``/etc/pipglr/image.json``) for the guest side. Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipglr import __version__, layout
from pipglr.errors import UsageError
from pipglr.guest import lru

BUILD_TYPES = ("prod", "dev")
ARCHES = ("amd64", "arm64")
DEFAULT_BASE_IMAGE = "docker.io/library/debian:trixie-slim"
#: Job image written by ``register`` unless the caller passes ``--docker-image``.
DEFAULT_JOB_IMAGE = "docker.io/library/debian:trixie-slim"
#: Where ``image_facts`` is installed in the image.
IMAGE_FACTS_PATH = "/etc/pipglr/image.json"

_VERSION_RE = re.compile(r"v?\d+\.\d+\.\d+")
#: What a systemd OnCalendar expression is made of (systemd.time(7)); nothing that
#: could end a unit-file line or be read as a %-specifier.
_CALENDAR_RE = re.compile(r"[A-Za-z0-9*:,./~+-]+( [A-Za-z0-9*:,./~+-]+)*")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(name: str, value: str | bool) -> bool:
    """Parse a boolean build arg (``true``/``false`` and friends)."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"{name}={value!r} is not a boolean: use true or false")


@dataclass(frozen=True)
class BuildSettings:
    """The image's build args, validated on construction."""

    base_image: str = DEFAULT_BASE_IMAGE
    build_type: str = "prod"
    prune_interval: str = "daily"
    runner_version: str = "latest"
    target_arch: str = "amd64"
    gitlab_url: str = "https://gitlab.com/"
    nested_privileged: bool = False
    gitlab_allow_http: bool = False
    storage_threshold: str = "25%"

    def __post_init__(self) -> None:
        if self.build_type not in BUILD_TYPES:
            raise UsageError(
                f"BUILD_TYPE={self.build_type!r} is unknown: use one of {', '.join(BUILD_TYPES)}"
            )
        if self.target_arch not in ARCHES:
            raise UsageError(
                f"TARGETARCH={self.target_arch!r} is unsupported: use one of {', '.join(ARCHES)}"
            )
        if self.runner_version != "latest" and not _VERSION_RE.fullmatch(self.runner_version):
            raise UsageError(
                f"RUNNER_VERSION={self.runner_version!r} is not a version: "
                "use latest or a release such as v17.5.0"
            )
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.gitlab_url):
            raise UsageError(
                f"GITLAB_URL={self.gitlab_url!r} is not an http(s) URL: "
                "use e.g. https://gitlab.example.com/"
            )
        if self.gitlab_url.startswith("http://") and not self.gitlab_allow_http:
            raise UsageError(insecure_url_message("GITLAB_URL", self.gitlab_url))
        if not _CALENDAR_RE.fullmatch(self.prune_interval):
            raise UsageError(
                f"PRUNE_INTERVAL={self.prune_interval!r} is not a systemd OnCalendar "
                "expression: use e.g. daily, weekly or '*-*-* 03:00:00'"
            )
        lru.parse_threshold("STORAGE_THRESHOLD", self.storage_threshold)
        if not self.base_image.strip() or any(c.isspace() for c in self.base_image):
            raise UsageError(f"BASE_IMAGE={self.base_image!r} is not an image reference")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BuildSettings:
        """Build settings from build-arg style keys (``BUILD_TYPE``...) or field names.

        Keys with value ``None`` are ignored, so unset flags fall back to defaults.
        """
        by_arg = {arg: f.name for f, arg in zip(dataclasses.fields(cls), _ARG_NAMES, strict=True)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            name = by_arg.get(key.upper(), key.lower())
            if name not in by_arg.values():
                raise UsageError(f"unknown build arg {key!r}: use one of {', '.join(_ARG_NAMES)}")
            kwargs[name] = parse_bool(key, value) if name in _BOOL_FIELDS else str(value)
        return cls(**kwargs)

    @property
    def runner_release(self) -> str:
        """The path component of GitLab's release bucket: ``latest`` or ``vX.Y.Z``."""
        if self.runner_version == "latest" or self.runner_version.startswith("v"):
            return self.runner_version
        return f"v{self.runner_version}"

    def build_args(self) -> dict[str, str]:
        """The ``--build-arg`` values, keyed by their Containerfile names."""
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]
        return {
            arg: (str(v).lower() if isinstance(v, bool) else str(v))
            for arg, v in zip(_ARG_NAMES, values, strict=True)
        }

    def oci_labels(self) -> dict[str, str]:
        """Image labels describing this build (besides the runlabels)."""
        labels = {
            "org.opencontainers.image.title": "pipglr",
            "org.opencontainers.image.description": (
                "Rootless podman-in-podman GitLab Runner: systemd runs gitlab-runner as "
                f"user {layout.RUNNER.name} against a rootless podman API service run "
                f"by user {layout.PODMAN.name}"
            ),
            "org.opencontainers.image.version": __version__,
            "org.opencontainers.image.base.name": self.base_image,
            "org.opencontainers.image.licenses": "Apache-2.0",
            layout.LABEL_RUNNER_VERSION: self.runner_version,
        }
        for arg, value in self.build_args().items():
            labels[layout.LABEL_BUILD_ARG_PREFIX + arg.lower()] = value
        return labels

    def image_facts(self) -> str:
        """JSON installed in the image for the guest side (``register`` reads it)."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"


_ARG_NAMES = (
    "BASE_IMAGE",
    "BUILD_TYPE",
    "PRUNE_INTERVAL",
    "RUNNER_VERSION",
    "TARGETARCH",
    "GITLAB_URL",
    "NESTED_PRIVILEGED",
    "GITLAB_ALLOW_HTTP",
    "STORAGE_THRESHOLD",
)
_BOOL_FIELDS = frozenset(
    f.name for f in dataclasses.fields(BuildSettings) if f.type in (bool, "bool")
)


def insecure_url_message(what: str, url: str) -> str:
    """Why a plain-http GitLab URL is refused, and the way out."""
    return (
        f"{what}={url!r} is plain http: runner tokens would cross the network in clear; "
        "use https://, or build with GITLAB_ALLOW_HTTP=true for a GitLab on a trusted network"
    )


def load_image_facts(text: str) -> BuildSettings:
    """Read back what :meth:`BuildSettings.image_facts` wrote."""
    return BuildSettings(**json.loads(text))
