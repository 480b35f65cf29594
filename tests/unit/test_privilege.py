"""Privileged runners: which ask, the outer options `up` and `quadlet` choose, what
`status`, `doctor` and the runner's boot say (pipglr.ops.privilege, pipglr.guest.privileged)."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipglr import layout
from pipglr.build import labels
from pipglr.errors import EngineError, UsageError
from pipglr.guest import cli as guest_cli
from pipglr.guest import privileged
from pipglr.ops import cli, doctor, privilege
from pipglr.ops.operate import Operator
from pipglr.ops.outer import Outer
from pipglr.settings import BuildSettings
from tests.unit.samples import GOOD_CONFIG

FAKE = Path(__file__).with_name("fakepodman.py")
IMAGE = "localhost/pipglr:test"
PODMAN = f"{sys.executable} {FAKE}"
DEBIAN = 'image = "debian"\n'
#: Runner "one" privileged, as `register` wrote it under NESTED_PRIVILEGED=true.
PRIVILEGED = GOOD_CONFIG.replace(DEBIAN, DEBIAN + "    privileged = true\n")


def second(name: str = "dind", extra: str = "") -> str:
    """A second docker runner; ``extra``: more [runners.docker] lines."""
    return f"""
[[runners]]
  name = "{name}"
  url = "https://gitlab.example.com/"
  token = "glrt-def"
  executor = "docker"
  [runners.docker]
    host = "{layout.DOCKER_HOST}"
    image = "docker:27"
{extra}"""


#: Runner "one" plain, runner "dind" with privileged services only.
SERVICES = GOOD_CONFIG + second(extra="    services_privileged = true\n")
BOTH = "    privileged = true\n    services_privileged = true\n"


def asking(text: str) -> list[privileged.PrivilegedRunner]:
    return privileged.privileged_runners(tomllib.loads(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD_CONFIG, []),
        (GOOD_CONFIG.replace(DEBIAN, DEBIAN + "    privileged = false\n"), []),
        (PRIVILEGED, [(0, "one", ("privileged",))]),
        (SERVICES, [(1, "dind", ("services_privileged",))]),
        (PRIVILEGED + second("", BOTH),
         [(0, "one", ("privileged",)), (1, "#2", ("privileged", "services_privileged"))]),
        ("concurrent = 1\n", []),
        ('[[runners]]\nname = "shell"\nexecutor = "shell"\n', []),
    ],
    ids=["plain", "false", "privileged", "services", "both-unnamed", "no-runners", "no-docker"],
)  # fmt: skip
def test_privileged_runners_are_read_from_runners_docker(
    text: str, expected: list[tuple[int, str, tuple[str, ...]]]
) -> None:
    """`privileged = true` and `services_privileged = true` both ask for privilege; the
    runner is named by its name (or #N) and index, for `pipglr config set`."""
    assert [(r.index, r.name, r.keys) for r in asking(text)] == expected


def test_descriptions_name_the_runner_and_the_key_to_change() -> None:
    runners = asking(PRIVILEGED + second(extra="    services_privileged = true\n"))
    assert privileged.describe(runners) == (
        "runner 'one' (runners.0.docker.privileged = true) and "
        "runner 'dind' (runners.1.docker.services_privileged = true)"
    )
    assert privileged.asking(runners).endswith("= true) ask for privileged jobs")
    assert privileged.asking(runners[:1]).endswith("= true) asks for privileged jobs")
    assert privileged.drop_command(runners) == (
        "pipglr config set runners.0.docker.privileged=false "
        "runners.1.docker.services_privileged=false"
    )


def test_a_runner_name_cannot_break_the_line() -> None:
    """Names come from registration descriptions: shown quoted, never a new line."""
    text = PRIVILEGED.replace('name = "one"', 'name = "a\\nb"')
    line = privileged.advice(asking(text), False)
    assert "'a\\nb'" in line and "\n" not in line


@pytest.mark.parametrize(
    ("text", "is_privileged", "reason"),
    [
        (GOOD_CONFIG, False, "no runner asks for privileged jobs"),
        (PRIVILEGED, True,
         "runner 'one' (runners.0.docker.privileged = true) asks for privileged jobs"),
        (SERVICES, True,
         "runner 'dind' (runners.1.docker.services_privileged = true) asks for privileged jobs"),
    ],
)  # fmt: skip
def test_choice_follows_the_runners(text: str, is_privileged: bool, reason: str) -> None:
    """Privileged options only when a runner asks; otherwise the nesting options."""
    choice = privilege.choose(text)
    assert (choice.privileged, choice.reason) == (is_privileged, reason)
    expected = labels.PRIVILEGED_NESTING_OPTIONS if is_privileged else labels.NESTING_OPTIONS
    assert choice.options == expected
    kind = "privileged" if is_privileged else "unprivileged"
    assert choice.summary() == f"{kind} outer container ({' '.join(expected)}): {reason}"


@pytest.mark.parametrize("built_privileged", [True, False])
@pytest.mark.parametrize("text", [GOOD_CONFIG, PRIVILEGED])
def test_fit_swaps_the_labels_nesting_options_whatever_the_build(
    built_privileged: bool, text: str
) -> None:
    """Either build's run label becomes the same command: the label with the chosen
    options in place of its own, nothing else changed."""
    label = labels.argv("run", IMAGE, BuildSettings(nested_privileged=built_privileged))[1:]
    choice = privilege.choose(text)
    fitted = privilege.fit(label, choice)
    wanted = labels.argv("run", IMAGE, BuildSettings(nested_privileged=choice.privileged))[1:]
    assert fitted == wanted
    assert ("--privileged" in fitted) is choice.privileged
    assert privilege.fit(label, None) == label


def test_fit_refuses_a_label_without_known_options() -> None:
    with pytest.raises(UsageError, match=r"neither of pipglr's nesting option sets.*runlabel run"):
        privilege.fit(["run", "--name", "pipglr", IMAGE], privilege.choose(GOOD_CONFIG))


@pytest.mark.parametrize(
    ("text", "outer", "needles"),
    [
        (GOOD_CONFIG, False, []),
        (PRIVILEGED, True, []),
        (PRIVILEGED, False, ["runner 'one'", "is not privileged", privileged.REFUSAL,
                             "the other runners work", "`pipglr down && pipglr up`",
                             "NESTED_PRIVILEGED=true",
                             "`pipglr config set runners.0.docker.privileged=false`"]),
        (GOOD_CONFIG, True, ["this container is privileged", "nesting options only"]),
    ],
    ids=["fits-plain", "fits-privileged", "privileged-runner-plain-outer", "needless"],
)  # fmt: skip
def test_advice_when_the_outer_container_does_not_fit(
    text: str, outer: bool, needles: list[str]
) -> None:
    line = privileged.advice(asking(text), outer)
    assert all(n in line for n in needles), line
    assert bool(line) is bool(needles) and "\n" not in line


def test_boot_line_reads_the_outer_mode_from_sys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A read-only /sys is an unprivileged outer container: the privileged runner is
    named, with how that was found; a read-write /sys fits."""
    config = tomllib.loads(PRIVILEGED)
    monkeypatch.setattr(privileged, "sys_read_only", lambda path=Path("/sys"): True)
    assert "not privileged (/sys is read-only)" in privileged.boot_line(config)
    monkeypatch.setattr(privileged, "sys_read_only", lambda path=Path("/sys"): False)
    assert privileged.boot_line(config) == ""
    monkeypatch.undo()
    assert privileged.boot_line(config, tmp_path / "no-sys") == ""  # cannot tell: silent


@pytest.mark.parametrize(("flags", "read_only"), [(os.ST_RDONLY | os.ST_NOSUID, True),
                                                  (os.ST_NOSUID, False)])  # fmt: skip
def test_sys_read_only_is_the_mount_flag(
    monkeypatch: pytest.MonkeyPatch, flags: int, read_only: bool
) -> None:
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_flag=flags))
    assert privileged.sys_read_only(Path("/sys")) is read_only


def test_prepare_runner_warns_once_and_still_starts_the_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """At boot: one warning line in the runner's journal, and the runner starts anyway
    (the other runners work)."""
    secret = tmp_path / "config.toml"
    secret.write_text(PRIVILEGED)
    (tmp_path / "state").mkdir()
    started: list[list[str]] = []
    monkeypatch.setattr(guest_cli.os, "execv", lambda path, argv: started.append(argv))
    monkeypatch.setattr(privileged, "sys_read_only", lambda path=Path("/sys"): True)
    state = str(tmp_path / "state" / "config.toml")
    assert guest_cli.main(["prepare-runner", str(secret), state, "/bin/runner", "run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert started == [["/bin/runner", "run"]]
    assert lines[0] == "pipglr: config.toml has runners: one"
    assert lines[1].startswith("pipglr: warning: runner 'one' (runners.0.docker.privileged")
    assert len(lines) == 2
    secret.write_text(GOOD_CONFIG)
    assert guest_cli.main(["prepare-runner", str(secret), state, "/bin/runner", "run"]) == 0
    assert capsys.readouterr().out == "pipglr: config.toml has runners: one\n"


def test_doctor_names_privileged_runners_with_their_cost() -> None:
    """Allowed, so a warning (never blocking), with the cost and the way to drop it."""
    plain = privilege.finding(GOOD_CONFIG)
    assert (plain.check, plain.status) == ("privileged runners", doctor.OK)
    found = privilege.finding(PRIVILEGED)
    assert found.status == doctor.WARN and not found.blocks
    assert found.detail == (
        "runner 'one' (runners.0.docker.privileged = true): privileged jobs run with "
        + privileged.COST
    )
    assert "pipglr config set runners.0.docker.privileged=false" in found.fix
    assert "pipglr down && pipglr up" in found.fix


# -- on the fake podman ----------------------------------------------------------------
@pytest.fixture
def operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Operator:
    """An Operator whose podman keeps secrets in tmp_path; the image built with the
    default NESTED_PRIVILEGED."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "labels.json").write_text(json.dumps(labels.all_labels(BuildSettings())))
    monkeypatch.setenv("FAKE_PODMAN_STATE", str(state))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    return Operator(Outer("rootless", (sys.executable, str(FAKE))), IMAGE)


def use_labels(tmp_path: Path, built_privileged: bool) -> None:
    """The fake podman's image: built with NESTED_PRIVILEGED=``built_privileged``."""
    settings = BuildSettings(nested_privileged=built_privileged)
    (tmp_path / "state" / "labels.json").write_text(json.dumps(labels.all_labels(settings)))


def started_argv(tmp_path: Path) -> list[str]:
    calls = (tmp_path / "state" / "calls.log").read_text().splitlines()
    return next(c for c in calls if c.startswith("run --detach")).split()


@pytest.mark.parametrize("built_privileged", [True, False])
@pytest.mark.parametrize("text", [GOOD_CONFIG, PRIVILEGED])
def test_up_starts_the_outer_container_the_runners_need(
    operator: Operator, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    built_privileged: bool, text: str,
) -> None:  # fmt: skip
    """Whatever the image's build arg, `up` runs the label with the options
    config.toml needs, and says which and why before it starts."""
    use_labels(tmp_path, built_privileged)
    operator.replace_config(text)
    assert cli.main(["--podman", PODMAN, "--image", IMAGE, "up", "--cpus", "2"]) == 0
    choice = privilege.choose(text)
    expected = labels.argv("run", IMAGE, BuildSettings(nested_privileged=choice.privileged))
    assert started_argv(tmp_path) == [*expected[1:-1], "--cpus", "2", IMAGE]
    out = capsys.readouterr().out.splitlines()
    assert out == [f"pipglr: {choice.summary()}",
                   "pipglr: started (0123456789ab); follow with `pipglr logs -f`"]  # fmt: skip


def test_status_names_the_outer_mode_and_the_privileged_runners(
    operator: Operator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Started by `up` for a privileged runner: status says so, and nothing more."""
    operator.replace_config(PRIVILEGED)
    use_labels(tmp_path, False)
    assert cli.main(["--podman", PODMAN, "--image", IMAGE, "up"]) == 0
    report = operator.status()
    assert report["outer"] == "privileged"
    assert report["privileged"] == ["runner 'one' (runners.0.docker.privileged = true)"]
    assert "warning" not in report
    capsys.readouterr()
    assert cli.main(["--podman", PODMAN, "--image", IMAGE, "status"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "         outer: privileged" in shown
    assert "    privileged: runner 'one' (runners.0.docker.privileged = true)" in shown


def test_status_says_when_the_outer_container_is_needlessly_privileged(
    operator: Operator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run label of a NESTED_PRIVILEGED=true build on a config.toml no runner of
    which asks for privilege: status names the way to drop it."""
    operator.replace_config(GOOD_CONFIG)
    use_labels(tmp_path, True)
    operator.up()
    report = operator.status()
    assert report["privileged"] == [] and "no runner asks" in str(report["warning"])
    assert cli.main(["--podman", PODMAN, "--image", IMAGE, "status"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "    privileged: none" in shown
    assert any(line.startswith("       warning: this container is privileged") for line in shown)


def test_status_warns_of_a_privileged_runner_in_an_unprivileged_container(
    operator: Operator, tmp_path: Path
) -> None:
    """The upgrade case: an image built with NESTED_PRIVILEGED=false started as its
    label says (a runlabel user) on a config.toml whose runner is privileged."""
    use_labels(tmp_path, False)
    operator.replace_config(PRIVILEGED)
    operator.up()
    report = operator.status()
    assert report["outer"] == "unprivileged"
    assert "runner 'one'" in str(report["warning"])
    assert "`pipglr down && pipglr up`" in str(report["warning"])


def test_quadlet_unit_follows_the_runners_and_says_why(
    operator: Operator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "units"
    base = ["--podman", PODMAN, "--image", IMAGE, "quadlet", "--dir", str(directory)]
    assert cli.main(base) == 0  # no secret yet: the label's options, and that said
    assert "no config.toml secret yet" in capsys.readouterr().out
    for text in (PRIVILEGED, GOOD_CONFIG):
        operator.replace_config(text)
        assert cli.main(base) == 0
        choice = privilege.choose(text)
        unit = (directory / "pipglr.container").read_text().splitlines()
        assert ("PodmanArgs=--privileged" in unit) is choice.privileged
        assert ("AddCapability=NET_ADMIN" in unit) is not choice.privileged
        again = "run `pipglr quadlet` again when config.toml changes privilege"
        assert unit[1] == f"# {choice.summary()}; {again}"
        assert f"pipglr: {choice.summary()}" in capsys.readouterr().out


def test_doctor_reads_the_secret_when_there_is_one(operator: Operator) -> None:
    assert privilege.findings(operator) == []
    operator.replace_config(PRIVILEGED)
    [found] = privilege.findings(operator)
    assert found.status == doctor.WARN and "runner 'one'" in found.detail


def test_doctor_without_a_readable_secret_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """No image to read the secret with: a warning naming the cause, not a crash."""
    op = Operator(Outer("rootless", ("podman",)), IMAGE)
    monkeypatch.setattr(Operator, "secrets", lambda self: [layout.CONFIG_SECRET])

    def no_image(self: Operator) -> str:
        raise EngineError(f"no image {IMAGE}: build it (invoke build) or pull it")

    monkeypatch.setattr(Operator, "read_config", no_image)
    [found] = privilege.findings(op)
    assert found.status == doctor.WARN
    assert found.detail == f"not checked: no image {IMAGE}: build it (invoke build) or pull it"
