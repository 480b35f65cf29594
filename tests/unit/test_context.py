"""pipglr.build.context: the assembled build context."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from pipglr import layout, subids
from pipglr.build import context, labels, runnerbin
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


def test_trust_store_and_login_links(tmp_path: Path) -> None:
    """Debian's bundle moves aside; the trust store and the runner's docker config
    become links (setup-image.sh moves before it links); netsettings is in the image."""
    binary = tmp_path / "runner"
    binary.write_bytes(b"\x7fELF runner")
    settings = BuildSettings()
    root = context.assemble(
        settings, tmp_path / "ctx", runnerbin.choose_source(settings, binary)
    ).path
    assert (root / "inputs/trust-store").read_text() == (
        "/usr/share/pipglr/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n"
    )
    links = (root / "inputs/symlinks").read_text().splitlines()
    assert "root /etc/ssl/certs/ca-certificates.crt /run/pipglr-net/ca-certificates.crt" in links
    assert "runner /home/runner/.docker/config.json /run/secrets/pipglr-registry-auth" in links
    assert "runner /home/runner/.docker" in (root / "inputs/owned-dirs").read_text().splitlines()
    assert (root / "pipglr/netsettings.py").is_file() and (root / "pipglr/netboot.py").is_file()
    assert (root / "pipglr/guest/netconfig.py").is_file()
    script = (root / "scripts/setup-image.sh").read_text()
    move = script.index('mv "$trust_store" "$system_bundle"')
    assert script.index('< "$inputs/owned-dirs"') < move < script.index('< "$inputs/symlinks"')
    assert move < script.index("prod)"), "before the package manager goes"


def test_setup_image_moves_and_links_the_trust_store(tmp_path: Path) -> None:
    """The script's trust-store and symlink steps, run on a scratch tree."""
    script = (context.REPO / "scripts/setup-image.sh").read_text()
    start = script.index("read -r system_bundle trust_store")
    end = script.index('done < "$inputs/symlinks"') + len('done < "$inputs/symlinks"')
    steps = script[start:end].replace('chown -h "$owner:$owner" "$link"', ":")
    inputs, fs = tmp_path / "inputs", tmp_path / "fs"
    inputs.mkdir()
    (fs / "etc/ssl/certs").mkdir(parents=True)
    (fs / "etc/ssl/certs/ca-certificates.crt").write_text("ROOTS\n")
    (inputs / "trust-store").write_text(
        f"{fs}/usr/share/pipglr/ca.crt {fs}/etc/ssl/certs/ca-certificates.crt\n"
    )
    (inputs / "symlinks").write_text(
        f"root {fs}/etc/ssl/certs/ca-certificates.crt {fs}/run/b.crt\n"
    )
    env = {"inputs": str(inputs), "PATH": "/usr/bin:/bin"}
    subprocess.run(["sh", "-euc", steps, "sh"], env=env, check=True)
    assert (fs / "usr/share/pipglr/ca.crt").read_text() == "ROOTS\n"
    link = fs / "etc/ssl/certs/ca-certificates.crt"
    assert link.is_symlink() and os.readlink(link) == f"{fs}/run/b.crt"
