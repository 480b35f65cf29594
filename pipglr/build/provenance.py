"""What an image was built from, recorded in its labels, and whether to publish again.

:class:`Provenance` holds the five facts that decide whether a scheduled rebuild
publishes: the base image's digest, the gitlab-runner version and binary sha256,
the digest of the installed package list, and the repository commit. They are image
labels (:data:`LABELS`, the one place their names are written), so the decision needs
only the published image's metadata (``skopeo inspect`` or ``podman image inspect``)
and never its layers.

The package list digest is known only after the build has installed the packages.
The build records it honestly in two steps instead of guessing it beforehand:
``scripts/install-packages.sh`` writes ``dpkg-query -W`` output to
:data:`PACKAGE_LIST_PATH` in the same layer that installs the packages (before a prod
build removes dpkg), and after the build :func:`pipglr.build.imagebuild.build_image` reads
that file back out of the image and builds a one-instruction image ``FROM`` it that
only adds the label (a config change, no new filesystem layer). Resolving versions
from the Debian mirror index before the build was the alternative; it would describe
what apt *should* install, not what the image holds, and would need a second resolver
beside apt.

``runner_version`` is the ``RUNNER_VERSION`` build arg, so ``latest`` when nothing was
pinned; the runner's identity is its sha256, which changes when ``latest`` moves.
Standard library only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipglr import layout

#: Where the build writes ``dpkg-query -W`` output (``package=version`` lines, sorted).
PACKAGE_LIST_PATH = "/usr/share/pipglr/packages.list"
#: The label holding the package list digest (added by the build's second step).
LABEL_PACKAGES_DIGEST = "io.pipglr.packages.digest"

#: Each fact's label: OCI's standard keys where one exists, pipglr's own otherwise.
LABELS = {
    "base_digest": "org.opencontainers.image.base.digest",
    "runner_version": layout.LABEL_RUNNER_VERSION,
    "runner_sha256": layout.LABEL_RUNNER_SHA256,
    "packages_digest": LABEL_PACKAGES_DIGEST,
    "commit": "org.opencontainers.image.revision",
}
#: How each fact is named in the reasons printed by ``invoke rebuild-needed``.
TITLES = {
    "base_digest": "base image digest",
    "runner_version": "gitlab-runner version",
    "runner_sha256": "gitlab-runner sha256",
    "packages_digest": "installed package list digest",
    "commit": "repository commit",
}


@dataclass(frozen=True)
class Provenance:
    """The facts an image was built from; ``None`` where one is not known."""

    base_digest: str | None = None
    runner_version: str | None = None
    runner_sha256: str | None = None
    packages_digest: str | None = None
    commit: str | None = None

    def to_labels(self) -> dict[str, str]:
        """The labels of the known facts."""
        return {
            LABELS[name]: value
            for name, value in dataclasses.asdict(self).items()
            if value is not None
        }

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> Provenance | None:
        """Read the facts back from image labels; ``None`` when none is recorded."""
        values = {name: (labels or {}).get(label) or None for name, label in LABELS.items()}
        if not any(values.values()):
            return None
        return cls(**values)


@dataclass(frozen=True)
class Decision:
    """Whether to publish, and one line per fact saying why."""

    needed: bool
    reasons: tuple[str, ...]


def decide(previous: Provenance | None, current: Provenance) -> Decision:
    """Compare the published image's facts with the current ones.

    A fact that changed (or that the published image does not record) makes a rebuild
    needed; a fact unknown now is reported and not compared.
    """
    if previous is None:
        return Decision(True, ("no published image with provenance labels: publish",))
    changed: list[str] = []
    same: list[str] = []
    for name, title in TITLES.items():
        old, new = getattr(previous, name), getattr(current, name)
        if new is None:
            same.append(f"{title}: not known now, not compared")
        elif old is None:
            changed.append(f"{title}: not recorded in the published image (now {new})")
        elif old != new:
            changed.append(f"{title} changed: {old} -> {new}")
        else:
            same.append(f"{title} unchanged: {new}")
    return Decision(bool(changed), tuple(changed + same))


def package_list_digest(text: str) -> str:
    """``sha256:HEX`` of a package list, independent of line order and blank lines."""
    lines = sorted(line.strip() for line in text.splitlines() if line.strip())
    return "sha256:" + hashlib.sha256("".join(f"{ln}\n" for ln in lines).encode()).hexdigest()


def git_commit(repo: Path) -> str | None:
    """The checked-out commit, with ``-dirty`` when tracked files changed; ``None``
    outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if dirty else head
