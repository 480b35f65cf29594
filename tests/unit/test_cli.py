"""pipglr.cli: label commands from image label texts."""

from __future__ import annotations

import pytest

from pipglr import cli, labels
from pipglr.errors import UsageError
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
