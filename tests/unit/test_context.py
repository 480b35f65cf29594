"""pipglr.context: the assembled build context."""

from __future__ import annotations

import json
from pathlib import Path

from pipglr import context, labels, layout, runnerbin, subids
from pipglr.settings import BuildSettings


def test_context_holds_everything_the_containerfile_copies(tmp_path: Path) -> None:
    """Containerfile, scripts, guest modules, rootfs, inputs and the binary are there."""
    binary = tmp_path / "runner"
    binary.write_bytes(b"\x7fELF runner")
    settings = BuildSettings(prune_interval="weekly", nested_privileged=False)
    built = context.assemble(settings, tmp_path / "ctx", runnerbin.choose_source(settings, binary))
    root = built.path
    for relative in (
        "Containerfile",
        "scripts/install-packages.sh",
        "scripts/setup-image.sh",
        "gitlab-runner",
        "pipglr/guest/podmansetup.py",
        "pipglr/guest/__main__.py",
        "inputs/packages",
        "inputs/users",
    ):
        assert (root / relative).is_file(), relative  # fmt: skip
    assert (root / "rootfs/etc/subuid").read_text() == subids.image_subid_file()
    facts = json.loads((root / "rootfs/etc/pipglr/image.json").read_text())
    assert facts["prune_interval"] == "weekly" and facts["nested_privileged"] is False
    unit = root / "rootfs/etc/systemd/system" / layout.PRUNE_TIMER_UNIT
    assert "OnCalendar=weekly" in unit.read_text()
    assert (root / "inputs/users").read_text() == (
        "runner 1000 1000 /home/runner\npodman 1001 1001 /home/podman\n"
    )


def test_labels_include_runlabels_oci_and_runner_checksum(tmp_path: Path) -> None:
    """Image labels: every runlabel, the OCI set and the binary's sha256/source."""
    binary = tmp_path / "runner"
    binary.write_bytes(b"\x7fELF runner")
    settings = BuildSettings()
    built = context.assemble(settings, tmp_path / "ctx", runnerbin.choose_source(settings, binary))
    for name, text in labels.all_labels(settings).items():
        assert built.labels[name] == text
    assert built.labels[layout.LABEL_RUNNER_SHA256] == runnerbin.sha256_of(binary)
    assert built.labels[layout.LABEL_RUNNER_SOURCE] == "file:runner"
    assert built.build_args == settings.build_args()


def test_packages_cover_the_nested_engine() -> None:
    """The package list has what rootless nesting needs."""
    for package in (
        "podman",
        "crun",
        "passt",
        "fuse-overlayfs",
        "uidmap",
        "nftables",
        "systemd",
        "python3",
        "libcap2-bin",
    ):
        assert package in context.PACKAGES  # fmt: skip
