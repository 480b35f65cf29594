"""tasks.py: flags reach the library; help exists for every task and flag."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config
from invoke.context import MockContext
from invoke.exceptions import Exit

import tasks
from pipglr.build import imagebuild, runnerbin
from pipglr.settings import BuildSettings


def _context() -> MockContext:
    config = Config(overrides={"pipglr": tasks.ns.configuration()["pipglr"]})
    return MockContext(config=config)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the image build with a recorder."""
    calls: dict[str, Any] = {}

    def fake_build(settings: BuildSettings, tag: str, workdir: Path, **kw: Any) -> Any:
        calls.update(settings=settings, tag=tag, **kw)
        return imagebuild.BuildResult(tag, "f" * 64, settings, "0" * 64)

    monkeypatch.setattr(imagebuild, "build_image", fake_build)
    return calls


def test_plain_build_uses_the_official_binary(captured: dict[str, Any]) -> None:
    """`invoke build` without flags: no local binary, stand-in not allowed."""
    tasks.build(_context())
    assert captured["runner_binary"] is None and captured["allow_standin"] is False
    assert captured["tag"] == "localhost/pipglr:latest"
    assert captured["settings"] == BuildSettings()


def test_standin_flag_is_the_only_way_to_the_standin(
    captured: dict[str, Any], helper_builds: list[tuple[Any, ...]]
) -> None:
    """Only --standin selects the stand-in runner (built as a zipapp) and allows it."""
    tasks.build(_context(), standin=True)
    assert runnerbin.is_standin(captured["runner_binary"]), captured["runner_binary"]
    assert captured["allow_standin"] is True


@pytest.fixture
def helper_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[Any, ...]]:
    """Replace the stand-in helper image build with a recorder (returns an archive)."""
    from tests.standin import helperimage

    calls: list[tuple[Any, ...]] = []

    def fake_archive(settings: BuildSettings, base_mode: str = "auto") -> Path:
        calls.append((settings, base_mode))
        return tmp_path / "prebuilt-alpine-x86_64.tar.xz"

    monkeypatch.setattr(helperimage, "standin_helper_archive", fake_archive)
    return calls


def test_standin_build_bakes_the_standin_helper_archive(
    captured: dict[str, Any], helper_builds: list[tuple[Any, ...]], tmp_path: Path
) -> None:
    """--standin builds the stand-in helper image on the build's base and bakes its
    archive (as the engine tests do); a plain build bakes none of it."""
    tasks.build(_context(), standin=True, base="offline", build_type="dev")
    assert captured["helper_archive"] == tmp_path / "prebuilt-alpine-x86_64.tar.xz", captured
    assert helper_builds == [(BuildSettings(build_type="dev"), "offline")], helper_builds
    tasks.build(_context())
    assert captured["helper_archive"] is None, "no stand-in helper without --standin"
    assert len(helper_builds) == 1, "the plain build did not build the stand-in helper"


def test_helper_archive_flag_wins_over_the_standin_helper(
    captured: dict[str, Any], helper_builds: list[tuple[Any, ...]]
) -> None:
    """--standin with --helper-archive bakes the given archive and builds no helper."""
    tasks.build(_context(), standin=True, helper_archive="/srv/prebuilt.tar.xz")
    assert captured["helper_archive"] == Path("/srv/prebuilt.tar.xz"), captured
    assert helper_builds == [], "the given archive is used as it is"


def test_flags_become_build_settings(captured: dict[str, Any]) -> None:
    """Build-arg flags reach BuildSettings."""
    tasks.build(_context(), build_type="dev", nested_privileged="false", arch="arm64")
    settings = captured["settings"]
    assert (settings.build_type, settings.nested_privileged, settings.target_arch) == (
        "dev", False, "arm64",
    )  # fmt: skip


def test_bad_flag_is_an_exit_not_a_traceback(captured: dict[str, Any]) -> None:
    """An invalid build arg ends the task with a one-line message."""
    with pytest.raises(Exit) as info:
        tasks.build(_context(), build_type="debug")
    assert "BUILD_TYPE" in str(info.value.message)
    assert captured == {}


def test_every_task_has_help() -> None:
    """Each task has a docstring line and help for each of its flags."""
    for name in tasks.ns.task_names:
        task = tasks.ns[name]
        assert task.__doc__ and task.__doc__.strip().splitlines()[0].endswith(".")
        flags = [a for a in task.get_arguments()]
        for flag in flags:
            assert flag.help, f"{name} --{flag.name} has no help"


def test_render_writes_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`invoke render --out DIR` writes every unit below DIR."""
    tasks.render(_context(), out=str(tmp_path))
    assert (tmp_path / "etc/systemd/system/pipglr-runner.service").is_file()
    assert "pipglr-runner.service" in capsys.readouterr().out


def test_runlabels_prints_each_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`invoke runlabels --image X` prints every label with X substituted."""
    tasks.runlabels(_context(), image="example/pipglr:1")
    out = capsys.readouterr().out
    for name in ("register", "setupstorage", "setupcache", "run", "dumpconfig"):
        assert f"{name}: podman run" in out
    assert "$IMAGE" not in out and "example/pipglr:1" in out


def _help_text(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    """What `invoke --help NAME` prints, through invoke's own parser and formatter."""
    from invoke.program import Program

    Program(namespace=tasks.ns, version="test").run(["invoke", "--help", name], exit=False)
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(tasks.ns.task_names))
def test_help_names_every_flag(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`invoke --help NAME` shows each flag by its own name, with its help text:
    no `--=STRING` (an auto short flag taken from a dash), no flag without help."""
    text = _help_text(name, capsys).partition("\nOptions:\n")[2]
    for argument in tasks.ns[name].get_arguments():
        flag = argument.name.replace("_", "-")
        spec = re.compile(rf"(^\s+|, )--(\[no-\])?{re.escape(flag)}(=|\s|$)")
        lines = [line for line in text.splitlines() if spec.search(line)]
        assert lines, f"`invoke --help {name}` does not list {flag}:\n{text}"
        assert argument.help and argument.help.split()[0] in lines[0], (
            f"{flag} is listed without its help: {lines[0]!r}"
        )
    assert "--=" not in text and "-- " not in text, f"a flag with an empty name:\n{text}"


def test_help_survives_repeated_parsing(capsys: pytest.CaptureFixture[str]) -> None:
    """invoke pops help texts while parsing; pipglr's tasks keep them for the next run."""
    first = _help_text("build", capsys)
    second = _help_text("build", capsys)
    assert "expected sha256 of --runner-binary" in second and first == second


def test_dashed_short_flag_is_what_the_guard_catches() -> None:
    """Without auto_shortflags=False, build's --runner-sha256 would get the short flag
    `-` (r, u, n, e... are taken), printed `--=STRING`: the reason build opts out."""
    from invoke.tasks import Task

    probe = Task(tasks.build.body, help=dict(tasks.BUILD_HELP))
    names = {a.name: a.names for a in probe.get_arguments()}
    assert "-" in names["runner_sha256"], names["runner_sha256"]


def _commands(c: MockContext) -> list[str]:
    return [call.args[0] for call in c.run.call_args_list]


def test_test_task_builds_the_images_while_the_checks_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As root: the image build starts first, lint/types/unit run meanwhile, then the
    sets run without building again."""
    from invoke import Result

    from tests.harness import sets

    events: list[str] = []
    monkeypatch.setattr(tasks.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sets, "start_build", lambda: events.append("build") or ("p", Path("l")))
    monkeypatch.setattr(sets, "finish_build", lambda *a: events.append("built") or 0)
    c = MockContext(run=Result(), repeat=True)
    tasks.test(c)
    ran = _commands(c)
    assert events == ["build", "built"]
    assert [r.split(" -m ")[1].split()[0] for r in ran] == ["ruff", "ruff", "mypy", "pytest",
                                                            "tests.harness.sets"]  # fmt: skip
    assert "tests.harness.sets --no-build" in ran[-1]


def test_test_task_unit_only_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """--unit-only: no image build, no engine sets."""
    from invoke import Result

    from tests.harness import sets

    monkeypatch.setattr(sets, "start_build", lambda: pytest.fail("built images for unit tests"))
    c = MockContext(run=Result(), repeat=True)
    tasks.test(c, unit_only=True)
    assert not any("tests.harness.sets" in r for r in _commands(c))
