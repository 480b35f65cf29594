"""Assemble the image build context from what pipglr computes.

The context directory holds the Containerfile, the install scripts, the guest
modules, the gitlab-runner binary and ``inputs/`` (package list, users, units to
enable, build type) plus ``rootfs/`` (rendered units, subuid/subgid, image facts),
which ``scripts/setup-image.sh`` only installs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pipglr import labels, layout, runnerbin, subids, units
from pipglr.settings import IMAGE_FACTS_PATH, BuildSettings

REPO = Path(__file__).resolve().parent.parent

#: Debian packages of every image: the nested engine, systemd, the guest's python.
PACKAGES = (
    "podman", "crun", "conmon", "passt", "fuse-overlayfs", "uidmap", "netavark",
    "aardvark-dns", "nftables", "systemd", "systemd-sysv", "python3",
    "ca-certificates", "mount", "util-linux", "procps", "libcap2-bin",
)  # fmt: skip
#: Python modules the guest needs in the image (standard library only).
GUEST_MODULES = (
    "__init__.py", "layout.py", "errors.py", "subids.py", "settings.py",
    "runnerconfig.py", "guest.py",
)  # fmt: skip
#: Units that fail in any container and that the image has no use for.
MASKED_UNITS = (
    "systemd-modules-load.service", "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount", "sys-kernel-config.mount", "systemd-remount-fs.service",
    "getty.target", "console-getty.service", "systemd-logind.service",
    "proc-sys-fs-binfmt_misc.automount", "proc-sys-fs-binfmt_misc.mount",
)  # fmt: skip


@dataclass(frozen=True)
class BuildContext:
    """An assembled context and what the build needs to know about it."""

    path: Path
    build_args: dict[str, str]
    labels: dict[str, str]
    runner_sha256: str


def users_file() -> str:
    """``inputs/users``: one ``name uid gid home`` line per account."""
    return "".join(f"{u.name} {u.uid} {u.gid} {u.home}\n" for u in (layout.RUNNER, layout.PODMAN))


def owned_dirs_file() -> str:
    """``inputs/owned-dirs``: ``owner path`` lines to create with that owner."""
    podman = layout.PODMAN.name
    return "".join(
        f"{owner} {path}\n"
        for owner, path in (
            (podman, layout.PODMAN.home / ".config"),
            (podman, layout.PODMAN_CONFIG_DIR),
            (podman, layout.STORAGE_MOUNT.parent.parent),
            (podman, layout.STORAGE_MOUNT.parent),
            (podman, layout.STORAGE_MOUNT),
            (podman, layout.CACHE_MOUNT),
        )
    )


def assemble(
    settings: BuildSettings,
    target: Path,
    runner: runnerbin.RunnerSource,
    allow_standin: bool = False,
) -> BuildContext:
    """Write a complete build context for ``settings`` into ``target`` (emptied first)."""
    if target.exists():
        shutil.rmtree(target)
    rootfs = target / "rootfs"
    inputs = target / "inputs"
    for directory in (rootfs, inputs, target / "pipglr", target / "scripts"):
        directory.mkdir(parents=True)
    shutil.copyfile(REPO / "Containerfile", target / "Containerfile")
    for script in (REPO / "scripts").glob("*.sh"):
        shutil.copy2(script, target / "scripts" / script.name)
    for module in GUEST_MODULES:
        shutil.copyfile(REPO / "pipglr" / module, target / "pipglr" / module)

    units.write_tree(units.UnitContext.from_settings(settings), rootfs)
    subid_text = subids.image_subid_file()
    (rootfs / "etc").mkdir(exist_ok=True)
    (rootfs / "etc/subuid").write_text(subid_text)
    (rootfs / "etc/subgid").write_text(subid_text)
    facts = rootfs / IMAGE_FACTS_PATH.lstrip("/")
    facts.parent.mkdir(parents=True, exist_ok=True)
    facts.write_text(settings.image_facts())

    (inputs / "packages").write_text("\n".join(PACKAGES) + "\n")
    (inputs / "users").write_text(users_file())
    (inputs / "owned-dirs").write_text(owned_dirs_file())
    (inputs / "enable-units").write_text("\n".join(units.ENABLED_UNITS) + "\n")
    (inputs / "mask-units").write_text("\n".join(MASKED_UNITS) + "\n")

    sha = runnerbin.fetch(runner, target / "gitlab-runner", settings, allow_standin)
    image_labels = {
        **settings.oci_labels(),
        **labels.all_labels(settings),
        layout.LABEL_RUNNER_SOURCE: runner.describe(),
        layout.LABEL_RUNNER_SHA256: sha,
    }
    return BuildContext(target, settings.build_args(), image_labels, sha)
