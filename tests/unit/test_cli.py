"""pipglr.cli: label commands from image label texts."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from pipglr import cli, labels
from pipglr.errors import UsageError
from pipglr.operate import Operator
from pipglr.settings import BuildSettings


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
