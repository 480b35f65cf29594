"""pipglr.cli: label commands from image label texts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from pipglr import cli, labels, layout
from pipglr.errors import UsageError
from pipglr.operate import Operator
from pipglr.settings import BuildSettings
from tests.unit.samples import GOOD_CONFIG


def test_command_argv_substitutes_image_and_appends_args() -> None:
    """A label text becomes argv for the image, extra arguments last."""
    texts = labels.all_labels(BuildSettings())
    argv = cli.command_argv(texts, "img:1", "register", ["--description", "x"])
    assert argv == labels.argv("register", "img:1") + ["--description", "x"]


def test_unknown_label_lists_the_known_ones() -> None:
    """An unknown name is a usage error naming the valid labels."""
    with pytest.raises(UsageError, match="dumpconfig"):
        cli.command_argv(labels.all_labels(BuildSettings()), "img", "start")


def test_errors_are_one_line_with_exit_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failing lookup prints `pipglr: ...` and returns the error's exit code."""

    def missing(image: str, url: str | None = None) -> dict[str, str]:
        raise UsageError(f"{image} has no register label")

    monkeypatch.setattr(cli, "image_runlabels", missing)
    assert cli.main(["--image", "x", "labels"]) == 2
    assert capsys.readouterr().err == "pipglr: x has no register label\n"


@pytest.fixture(autouse=True)
def config_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The config.toml secret `up` and `quadlet` read, without asking any podman."""
    monkeypatch.setattr(Operator, "secrets", lambda self: [layout.CONFIG_SECRET])
    monkeypatch.setattr(Operator, "read_config", lambda self: GOOD_CONFIG)


def recorder(calls: list[str]) -> Callable[..., str]:
    """A stand-in for Operator.up that only records the call."""

    def up(*args: object, **kwargs: object) -> str:
        calls.append("up")
        return "cid"

    return up


@pytest.mark.parametrize(
    "command",
    [["up"], ["up", "--env", "A=1"], ["quadlet", "--dir", "/nonexistent"], ["runlabel", "run"]],
)
def test_root_must_accept_sharing_host_ids_to_start_pipglr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """Run by root with the host's podman, starting pipglr is refused with one line
    naming the cause and both ways out, before podman is asked anything."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    called: list[str] = []
    monkeypatch.setattr(Operator, "up", recorder(called))
    assert cli.main(["--podman", "podman", *command]) == 2
    err = capsys.readouterr().err
    assert err == f"pipglr: {cli.HOST_IDS_REFUSAL}\n" and called == []
    assert "unprivileged user" in err and "--allow-host-ids" in err


def test_allow_host_ids_lets_root_start_pipglr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --allow-host-ids root's `up` goes on to the operator; an unprivileged user
    (or root driving another user's podman) needs no flag."""
    called: list[str] = []
    monkeypatch.setattr(Operator, "up", recorder(called))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert cli.main(["--podman", "podman", "up", "--allow-host-ids"]) == 0
    assert cli.main(["--podman", "runuser -u someone -- podman", "up"]) == 0
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["--podman", "podman", "up"]) == 0
    assert called == ["up", "up", "up"] and "pipglr: started" in capsys.readouterr().out


def test_allow_host_ids_reaches_the_image_as_its_consent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The image's own guard (pipglr/guest/hostids.py) reads PIPGLR_ALLOW_HOST_IDS:
    --allow-host-ids passes it to `up`, `quadlet` and `runlabel run` (before the
    image), and nothing passes it without the flag."""
    consent = layout.HOST_IDS_CONSENT
    envs: list[list[str]] = []

    def up(self: Operator, *args: object) -> str:
        envs.append(list(args[4]))  # type: ignore[call-overload]
        return "cid"

    monkeypatch.setattr(Operator, "up", up)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert cli.main(["--podman", "podman", "up", "--env", "A=1", "--allow-host-ids"]) == 0
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["--podman", "podman", "up", "--env", "A=1"]) == 0
    assert envs == [["A=1", consent], ["A=1"]]

    label = ["podman", "run", "--name", "pipglr", *labels.NESTING_OPTIONS, "IMG"]
    monkeypatch.setattr(Operator, "label_args", lambda self, name, extra=(): label[1:])
    ran: list[list[str]] = []

    def run(argv: list[str], **kwargs: object) -> CompletedProcess[str]:
        ran.append(argv)
        return CompletedProcess(argv, 0)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    base = ["--podman", "podman", "--image", "IMG"]
    assert cli.main([*base, "runlabel", "run", "--allow-host-ids", "x"]) == 0
    assert ran == [[*label[:-1], "--env", consent, "IMG", "x"]]
    assert cli.main([*base, "quadlet", "--dir", str(tmp_path), "--allow-host-ids"]) == 0
    assert f"Environment={consent}" in (tmp_path / "pipglr.container").read_text()
