"""Choosing the executor at registration: ``pipglr register --executor custom
[--default-image IMG]`` through ConfigSecret, the register label's
:mod:`pipglr.guest.register` and ``gitlab-runner register`` (the stand-in), and
``pipglr executor toml``."""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

from pipglr import customsection, layout, runnerconfig
from pipglr.build import labels
from pipglr.errors import UsageError
from pipglr.guest import register
from pipglr.ops import cli, cliparser
from pipglr.ops.operate import Operator
from pipglr.ops.outer import Outer
from pipglr.settings import DEFAULT_JOB_IMAGE, BuildSettings
from tests.standin.gitlab_runner import cli as standin_cli
from tests.standin.gitlab_runner import register as standin_register
from tests.unit.test_standin_executor import StubGitLab

FACTS = BuildSettings(gitlab_url="https://gitlab.example.com/").image_facts()
PRIVILEGED_FACTS = BuildSettings(
    gitlab_url="https://gitlab.example.com/", nested_privileged=True
).image_facts()
IMAGE = "docker.io/library/alpine:3.22"
FAKE = Path(__file__).with_name("fakepodman.py")


def values(args: Sequence[str], flag: str) -> list[str]:
    """Every value of ``flag`` in ``args`` (``--flag VALUE`` form)."""
    return [args[at + 1] for at, arg in enumerate(args[:-1]) if arg == flag]


@pytest.mark.parametrize(
    ("extra", "executor", "image", "rest"),
    [
        ([], "docker", None, []),
        (["--executor", "custom"], "custom", None, []),
        (["--executor=custom", "--default-image", IMAGE], "custom", IMAGE, []),
        (["-n", "--default-image=" + IMAGE], "docker", IMAGE, ["-n"]),
        (["--executor", "custom", "--executor", "docker", "--tag-list=a"], "docker", None,
         ["--tag-list=a"]),
    ],
)  # fmt: skip
def test_pipglr_options_are_taken_out_of_the_label_arguments(
    extra: list[str], executor: str, image: str | None, rest: list[str]
) -> None:
    """Both spellings, the last one wins; everything else stays, in order."""
    assert register.pipglr_options(extra) == (executor, image, rest)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--executor", "shell"], "--executor 'shell'"),
        (["--executor=docker+machine"], "--executor 'docker+machine'"),
        (["--executor"], "--executor needs a value"),
        (["--default-image", "Not An Image"], "--default-image 'Not An Image' is not an image"),
    ],
)
def test_pipglr_options_refuse_what_pipglr_cannot_run(extra: list[str], needle: str) -> None:
    with pytest.raises(UsageError) as info:
        register.pipglr_options(extra)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_custom_registration_passes_the_section_and_no_docker_option(tmp_path: Path) -> None:
    """--executor custom: the section's flags, none of the docker executor's (no
    --docker-*, no feature flag), never --docker-privileged even in a
    NESTED_PRIVILEGED image; the caller's other arguments last."""
    extra = ["--executor", "custom", "--default-image", IMAGE, "--description", "d"]
    args, env = register.register_command(tmp_path, "glrt-x", PRIVILEGED_FACTS, extra)
    assert values(args, "--executor") == ["custom"]
    assert not [a for a in args if a.startswith(("--docker", "--feature-flags"))], args
    assert [a for a in args if a.startswith("--custom-")] == customsection.register_flags(IMAGE)
    assert args[-2:] == ["--description", "d"] and "--default-image" not in args
    assert env["CI_SERVER_TOKEN"] == "glrt-x"


def test_a_docker_registration_is_as_before_with_its_default_image(tmp_path: Path) -> None:
    """Default docker: one --executor docker, the docker defaults; --default-image is
    the docker executor's --docker-image."""
    args, _ = register.register_command(tmp_path, "glrt-x", FACTS)
    assert values(args, "--executor") == ["docker"]
    assert values(args, "--docker-image") == [DEFAULT_JOB_IMAGE]
    assert values(args, "--docker-host") == [layout.DOCKER_HOST]
    assert not [a for a in args if a.startswith("--custom-")]
    args, _ = register.register_command(tmp_path, "glrt-x", FACTS, ["--default-image", IMAGE])
    assert values(args, "--docker-image") == [IMAGE]


def test_a_plain_http_url_is_refused_for_custom_runners_too(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="plain http"):
        register.register_command(
            tmp_path, "glrt-x", FACTS, ["--executor", "custom", "--url", "http://g.lan/"]
        )


def standin_register_label(workdir: Path, extra: Sequence[str], facts: str = FACTS) -> Path:
    """What the register label does, with the stand-in as gitlab-runner: the guest
    builds the argv, ``gitlab-runner register`` writes ``workdir/config.toml``."""
    argv, env = register.register_command(workdir, "glrt-unit-test-token", facts, extra)
    parsed = standin_cli.parser().parse_args([*argv[1:], "--token", env["CI_SERVER_TOKEN"]])
    assert standin_register.register(parsed, StubGitLab()) == 0
    return workdir / layout.CONFIG_SECRET


def test_gitlab_runner_register_writes_the_section_the_check_accepts(tmp_path: Path) -> None:
    """Through the stand-in's register (commands/register.go flags): executor =
    "custom", [runners.custom] equal to the section, no [runners.docker]; the config
    check accepts it and a docker runner registered next to it."""
    (tmp_path / layout.CONFIG_SECRET).touch()
    path = standin_register_label(tmp_path, ["--executor", "custom", "--default-image", IMAGE])
    standin_register_label(tmp_path, [])
    runners = tomllib.loads(path.read_text())["runners"]
    custom, docker = runners
    assert custom["executor"] == "custom" and "docker" not in custom
    assert custom["custom"] == customsection.section(IMAGE)
    assert "feature_flags" not in custom
    assert docker["executor"] == "docker" and "custom" not in docker
    assert len(runnerconfig.check(runnerconfig.parse(path.read_text()))) == 2


@pytest.fixture
def operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Operator:
    """An Operator on the fake podman whose register label runs the guest register
    with the stand-in; the label arguments it got are kept in ``operator.seen``."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "labels.json").write_text(json.dumps(labels.all_labels(BuildSettings())))
    monkeypatch.setenv("FAKE_PODMAN_STATE", str(state))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    op = Operator(Outer("rootful", (sys.executable, str(FAKE))), "localhost/pipglr:test")
    original = op.run_label
    seen: list[list[str]] = []

    def run_label(name: str, extra: Sequence[str] = (), cwd: Path | None = None) -> str:
        if name != "register":
            return original(name, extra, cwd)
        assert cwd is not None
        seen.append(list(extra))
        standin_register_label(cwd, extra)
        return ""

    monkeypatch.setattr(op, "run_label", run_label)
    monkeypatch.setattr(op, "seen", seen, raising=False)
    return op


def test_pipglr_register_custom_stores_a_checked_custom_runner(operator: Operator) -> None:
    """`pipglr register --executor custom --default-image IMG`: the label gets both
    options, the secret holds the custom runner with the section."""
    count, _ = operator.register("glrt-x", executor="custom", default_image=IMAGE)
    assert count == 1
    assert operator.seen == [["--executor", "custom", "--default-image", IMAGE]]  # type: ignore[attr-defined]
    runner = tomllib.loads(operator.read_config())["runners"][0]
    assert runner["executor"] == "custom" and runner["custom"] == customsection.section(IMAGE)


def test_pipglr_register_docker_passes_no_new_option(operator: Operator) -> None:
    """The default keeps the label's arguments as they were (an older image's label
    takes them unchanged)."""
    operator.register("glrt-x", description="d")
    assert operator.seen == [["--description", "d"]]  # type: ignore[attr-defined]
    assert tomllib.loads(operator.read_config())["runners"][0]["executor"] == "docker"


def test_a_bad_default_image_is_refused_before_anything(operator: Operator) -> None:
    with pytest.raises(UsageError, match="is not an image reference"):
        operator.register("glrt-x", executor="custom", default_image="Upper:1")
    assert operator.seen == []  # type: ignore[attr-defined]


def test_cli_register_options() -> None:
    args = cliparser.parser().parse_args(
        ["register", "--executor", "custom", "--default-image", IMAGE]
    )
    assert (args.executor, args.default_image) == ("custom", IMAGE)
    defaults = cliparser.parser().parse_args(["register"])
    assert (defaults.executor, defaults.default_image) == ("docker", None)
    with pytest.raises(SystemExit):
        cliparser.parser().parse_args(["register", "--executor", "shell"])


def test_pipglr_executor_toml_prints_the_section(capsys: pytest.CaptureFixture[str]) -> None:
    """Printed as is (no podman asked), the same text as the section module renders."""
    assert cli.main(["--podman", "/nonexistent/podman", "executor", "toml"]) == 0
    assert capsys.readouterr().out == customsection.render()
    assert cli.main(["--podman", "/nonexistent/podman", "executor", "toml",
                     "--default-image", IMAGE]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert tomllib.loads(out)["runners"]["custom"] == customsection.section(IMAGE)


def test_cli_refuses_a_bad_default_image_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the token is read (nothing waits on stdin)."""

    def no_token(path: str | None) -> str:
        raise AssertionError("the token was read")

    monkeypatch.setattr(cli, "_read_token", no_token)
    for argv in (["executor", "toml", "--default-image", "a b"],
                 ["register", "--executor", "custom", "--default-image", "a b"]):  # fmt: skip
        assert cli.main(["--podman", "/nonexistent/podman", *argv]) == UsageError.exit_code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("pipglr: --default-image 'a b'"), err
