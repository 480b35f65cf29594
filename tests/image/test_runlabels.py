"""Every runlabel through `podman container runlabel`, from a clean directory."""

from __future__ import annotations

import json
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipglr import layout
from pipglr.build import imagebuild, labels
from pipglr.ops import cli
from pipglr.ops.outer import Outer
from tests.image.conftest import TEST_TOKEN, Pipglr, make_workdir

pytestmark = [pytest.mark.image]


@pytest.fixture
def workdir(pipglr: Pipglr) -> Iterator[Path]:
    """A clean directory to run labels from."""
    path = make_workdir(f"labels-{pipglr.outer.mode}-")
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def runlabel(
    outer: Outer, name: str, image: str, cwd: Path, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """``podman container runlabel NAME IMAGE`` in ``cwd``."""
    return outer.run("container", "runlabel", name, image, cwd=cwd, check=check)


def test_image_carries_every_label_from_pipglr(pipglr: Pipglr) -> None:
    """The labels in the image are exactly what pipglr.build.labels generates."""
    inspect = pipglr.outer.run("image", "inspect", "--format", "{{json .Labels}}", pipglr.image)
    image_labels = json.loads(inspect.stdout)
    for name, text in labels.all_labels(pipglr.settings).items():
        assert image_labels.get(name) == text, name


def test_register_without_config_file_says_what_to_do(pipglr: Pipglr, workdir: Path) -> None:
    """No ./config.toml: one line saying to touch it; nothing is created."""
    result = runlabel(pipglr.outer, "register", pipglr.image, workdir)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("pipglr:")]
    assert len(lines) == 1 and "touch ./config.toml" in lines[0], result.stderr
    assert list(workdir.iterdir()) == []


def test_register_without_secret_names_the_secret(pipglr: Pipglr, workdir: Path) -> None:
    """No REGISTRATION_TOKEN secret: podman's one-line error names it."""
    pipglr.outer.touch(workdir / "config.toml")
    pipglr.outer.run("secret", "rm", layout.TOKEN_SECRET, check=False)
    try:
        result = runlabel(pipglr.outer, "register", pipglr.image, workdir)
    finally:
        pipglr.outer.run("secret", "create", layout.TOKEN_SECRET, "-", input=TEST_TOKEN)
    assert result.returncode != 0
    assert layout.TOKEN_SECRET in result.stderr, result.stderr
    assert (workdir / "config.toml").read_text() == ""


@pytest.mark.parametrize(
    ("token", "stored"),
    [("glrt-pipglr-auth-token", "glrt-pipglr-auth-token"), (TEST_TOKEN, "glrt-")],
    ids=["authentication-token", "legacy-registration-token"],
)
def test_register_twice_adds_two_runners(
    pipglr: Pipglr, workdir: Path, token: str, stored: str
) -> None:
    """register works with glrt- and legacy tokens, and a repeat appends a runner."""
    pipglr.outer.touch(workdir / "config.toml")
    pipglr.outer.run("secret", "rm", layout.TOKEN_SECRET, check=False)
    pipglr.outer.run("secret", "create", layout.TOKEN_SECRET, "-", input=token)
    try:
        for _ in range(2):
            runlabel(pipglr.outer, "register", pipglr.image, workdir, check=True)
    finally:
        pipglr.outer.run("secret", "rm", layout.TOKEN_SECRET, check=False)
        pipglr.outer.run("secret", "create", layout.TOKEN_SECRET, "-", input=TEST_TOKEN)
    config = tomllib.loads((workdir / "config.toml").read_text())
    runners = config["runners"]
    assert len(runners) == 2
    assert len({r["token"] for r in runners}) == (1 if stored == token else 2), runners
    for runner in runners:
        assert runner["token"].startswith(stored) and runner["token"] != TEST_TOKEN
        assert runner["executor"] == "docker"
        assert runner["docker"]["host"] == layout.DOCKER_HOST
        assert runner["docker"]["privileged"] is pipglr.settings.nested_privileged
        assert runner["url"] == pipglr.settings.gitlab_url


@pytest.mark.parametrize(
    ("label", "volume", "mount"),
    [("setupstorage", layout.STORAGE_VOLUME, layout.STORAGE_MOUNT),
     ("setupcache", layout.CACHE_VOLUME, layout.CACHE_MOUNT)],
)  # fmt: skip
def test_setup_labels_are_idempotent(
    pipglr: Pipglr, workdir: Path, label: str, volume: str, mount: Path
) -> None:
    """Re-running a setup label succeeds and leaves the volume owned by podman."""
    runlabel(pipglr.outer, label, pipglr.image, workdir, check=True)
    owner = pipglr.outer.exec(pipglr.name, "stat", "-c", "%u:%g", str(mount)).stdout.strip()
    assert owner == f"{layout.PODMAN.uid}:{layout.PODMAN.gid}"
    assert pipglr.outer.run("volume", "exists", volume, check=False).returncode == 0


def test_setupstorage_keeps_nested_images(pipglr: Pipglr, workdir: Path) -> None:
    """setupstorage does not chown recursively: loaded job images still run."""
    runlabel(pipglr.outer, "setupstorage", pipglr.image, workdir, check=True)
    result = pipglr.docker("run", "--rm", "--entrypoint", "true", pipglr.image, check=False)
    assert result.returncode == 0, result.stderr


def test_dumpconfig_round_trips_the_secret(pipglr: Pipglr, workdir: Path) -> None:
    """dumpconfig prints exactly the config.toml the secret was created from."""
    result = runlabel(pipglr.outer, "dumpconfig", pipglr.image, workdir, check=True)
    assert result.stdout == (pipglr.workdir / "config.toml").read_text()


def test_run_label_mounts_the_secret_for_runner_only(pipglr: Pipglr) -> None:
    """The running container has config.toml as runner's 0400 file."""
    secret = pipglr.host().file(str(layout.CONFIG_PATH))
    assert (secret.user, secret.mode) == (layout.RUNNER.name, 0o400)


def test_pipglr_cli_prints_labels_read_from_the_image(
    built_image: imagebuild.BuildResult, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pipglr labels` reads the labels back from the built image via podman-py."""
    assert cli.main(["--image", built_image.tag, "labels"]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = [
        f"{name}: {shlex.join(labels.argv(name, built_image.tag, built_image.settings))}"
        for name in labels.LABELS
    ]
    assert out == expected
