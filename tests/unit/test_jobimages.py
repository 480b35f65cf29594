"""pipglr images: maintained job images from the host (pipglr.ops.jobimages, imagedefs,
imagecmds), on the fake podman (its exec runs the definition scripts for real)."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

from pipglr import layout
from pipglr.errors import ConfigError, EngineError, UsageError
from pipglr.ops import cli, imagecmds, imagedefs
from pipglr.ops.operate import Operator
from pipglr.ops.outer import Outer

FAKE = Path(__file__).with_name("fakepodman.py")
ENV = f"XDG_RUNTIME_DIR={layout.PODMAN_RUNTIME_DIR}"
IN_PIPGLR = ["exec", "-i", "--user", "podman", "--env", ENV, "pipglr"]
NESTED = ["podman", f"--url={layout.DOCKER_HOST}"]


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake podman's state, pipglr running."""
    where = tmp_path / "state"
    where.mkdir()
    (where / "running").touch()
    (where / "privileged").write_text("False")
    monkeypatch.setenv("FAKE_PODMAN_STATE", str(where))
    return where


@pytest.fixture
def op(state: Path) -> Operator:
    return Operator(Outer("rootless", (sys.executable, str(FAKE))), "localhost/pipglr:test")


def define(root: Path, name: str, containerfile: str = "FROM docker.io/library/debian\n",
           **files: str) -> Path:  # fmt: skip
    """A definition directory ``root/name`` with its Containerfile and other files."""
    path = root / name
    path.mkdir(parents=True)
    (path / "Containerfile").write_text(containerfile)
    for file, text in files.items():
        (path / file).write_text(text)
    return path


def execs(state: Path) -> list[list[str]]:
    book = state / "exec.jsonl"
    return [json.loads(line) for line in book.read_text().splitlines()] if book.exists() else []


def nested(state: Path, images: dict[str, object] | None = None, **more: object) -> None:
    (state / "nested.json").write_text(json.dumps({"images": images or {}, **more}))


# --- checking a directory of definitions on the host ---


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"build": "invoke build --tag {image}\n"}, "tools/build: not for a maintained image"),
        ({"image": "docker.io/me/tools\n"}, "always localhost/NAME"),
        ({"sources": "../shared\n"}, "only the definition's directory is copied"),
    ],
)
def test_chain_files_that_do_not_fit_are_refused(
    tmp_path: Path, files: dict[str, str], match: str
) -> None:
    define(tmp_path / "defs", "tools", **files)
    with pytest.raises(ConfigError, match=match):
        imagedefs.definition_dirs(tmp_path / "defs")


def test_every_subdirectory_is_an_image_hidden_ones_aside(tmp_path: Path) -> None:
    define(tmp_path / "defs", "tools")
    (tmp_path / "defs" / ".git").mkdir()
    (tmp_path / "defs" / "README").write_text("notes")
    assert [p.name for p in imagedefs.definition_dirs(tmp_path / "defs")] == ["tools"]
    (tmp_path / "defs" / "notes").mkdir()
    with pytest.raises(ConfigError, match="notes has no Containerfile.*add notes/Containerfile"):
        imagedefs.definition_dirs(tmp_path / "defs")


@pytest.mark.parametrize("name", ["Tools", "-tools", "tools-", "a..b", "x" * 129, "a b"])
def test_names_that_are_no_image_name_are_refused(tmp_path: Path, name: str) -> None:
    define(tmp_path / "defs", name)
    with pytest.raises(UsageError, match="is no image name"):
        imagedefs.definition_dirs(tmp_path / "defs")


@pytest.mark.parametrize("name", ["tools", "build-tools", "a.b", "a__b", "a--b", "py3_12"])
def test_image_name_components_are_accepted(name: str) -> None:
    assert imagedefs.check_name(name) == name


def test_empty_or_missing_directory_says_what_it_needs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        imagedefs.definition_dirs(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no NAME/Containerfile"):
        imagedefs.definition_dirs(tmp_path / "empty")


def test_depends_and_cycles_are_checked_with_the_installed_ones(tmp_path: Path) -> None:
    installed = tmp_path / "work" / "installed"
    define(installed, "base")
    define(installed, "app", "FROM localhost/base\n")
    new = define(tmp_path / "defs", "tools", depends="base\n")
    chain = imagedefs.check_together([new], installed)
    assert chain.order == ("base", "app", "tools")
    assert imagedefs.dependents(chain, "base") == ["app", "tools"]
    unknown = define(tmp_path / "defs2", "lint", depends="nowhere\n")
    with pytest.raises(ConfigError, match="lint/depends names 'nowhere'.*pipglr holds"):
        imagedefs.check_together([unknown], installed)
    # A new base built on app closes a cycle with the installed app.
    cycle = define(tmp_path / "defs3", "base", "FROM localhost/app\n")
    with pytest.raises(ConfigError, match="dependency cycle: app -> base -> app"):
        imagedefs.check_together([cycle], installed)


def test_pack_and_unpack_keep_the_files_and_refuse_odd_paths(tmp_path: Path) -> None:
    path = define(tmp_path / "defs", "tools", depends="base\n")
    (path / "etc").mkdir()
    (path / "etc" / "conf").write_text("x")
    imagedefs.unpack(imagedefs.pack([path]), tmp_path / "out")
    assert (tmp_path / "out" / "tools" / "etc" / "conf").read_text() == "x"
    assert (tmp_path / "out" / "tools" / "depends").read_text() == "base\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("../escape")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ConfigError, match="odd path"):
        imagedefs.unpack(buffer.getvalue(), tmp_path / "out2")
    assert not (tmp_path / "escape").exists()


# --- add ---


def test_add_copies_definitions_into_pipglr_as_user_podman(
    op: Operator, state: Path, tmp_path: Path
) -> None:
    defs = tmp_path / "defs"
    define(defs, "tools", depends="base\n")
    define(defs, "base")
    (defs / "base" / "files").mkdir()
    (defs / "base" / "files" / "a.sh").write_text("echo a\n")
    assert op.images_add(defs) == ["base", "tools"]
    copied = state / "maintained"
    assert (copied / "base" / "files" / "a.sh").read_text() == "echo a\n"
    assert (copied / "tools" / "depends").read_text() == "base\n"
    assert sorted(p.name for p in copied.iterdir()) == ["base", "tools"]  # no staging left
    calls = execs(state)
    assert calls[-1][: len(IN_PIPGLR) + 2] == [*IN_PIPGLR, "sh", "-c"]
    assert calls[-1][-3:] == [str(layout.MAINTAINED_DIR), "base", "tools"]


def test_add_replaces_a_definition_whole(op: Operator, state: Path, tmp_path: Path) -> None:
    first = define(tmp_path / "one", "tools")
    (first / "old.txt").write_text("old")
    op.images_add(tmp_path / "one")
    define(tmp_path / "two", "tools", "FROM docker.io/library/alpine\n")
    op.images_add(tmp_path / "two")
    kept = state / "maintained" / "tools"
    assert sorted(p.name for p in kept.iterdir()) == ["Containerfile"]
    assert "alpine" in (kept / "Containerfile").read_text()


def test_add_may_depend_on_an_installed_definition(
    op: Operator, state: Path, tmp_path: Path
) -> None:
    define(tmp_path / "one", "base")
    op.images_add(tmp_path / "one")
    define(tmp_path / "two", "tools", depends="base\n")
    assert op.images_add(tmp_path / "two") == ["tools"]
    define(tmp_path / "three", "lint", depends="missing\n")
    with pytest.raises(ConfigError, match="lint/depends names 'missing'"):
        op.images_add(tmp_path / "three")
    assert not (state / "maintained" / "lint").exists()


def test_add_refuses_before_asking_podman(op: Operator, state: Path, tmp_path: Path) -> None:
    define(tmp_path / "defs", "tools", build="make\n")
    with pytest.raises(ConfigError):
        op.images_add(tmp_path / "defs")
    assert not (state / "calls.log").exists()


def test_add_needs_pipglr_running(op: Operator, state: Path, tmp_path: Path) -> None:
    (state / "running").unlink()
    define(tmp_path / "defs", "tools")
    with pytest.raises(EngineError, match="pipglr is not running.*pipglr up"):
        op.images_add(tmp_path / "defs")
    assert not (state / "maintained").exists()


# --- list, build ---


def test_list_and_build_run_the_guest_verbs(
    op: Operator, state: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    assert json.loads(op.images_list(True)) == [{"name": "tools"}]
    assert op.images_list(False) == "NAME  IMAGE  STATE"
    assert op.images_build() == 0
    monkeypatch.setenv("FAKE_BUILD_STATUS", "3")
    assert op.images_build(["tools", "base"], pull=True) == 3
    assert capfd.readouterr().out.splitlines() == [
        "building what is due",
        "building --pull tools base",
    ]
    guest = [*IN_PIPGLR, str(layout.PYTHON), "-m", "pipglr.guest"]
    assert [c[len(guest) :] for c in execs(state)] == [
        ["images-list", "--json"], ["images-list"], ["images-build"],
        ["images-build", "--pull", "tools", "base"],
    ]  # fmt: skip
    assert all(c[: len(guest)] == guest for c in execs(state))
    with pytest.raises(UsageError, match="no image name"):
        op.images_build(["Tools"])


# --- shell ---


def test_shell_command_lines() -> None:
    run = imagecmds.shell_args("tools", commit=False)
    assert run == [
        "exec", "-it", "--user", "podman", "--env", ENV, "pipglr", *NESTED,
        "run", "-it", "--rm", "--name", "pipglr-shell-tools", "--pull=never",
        "--entrypoint", "/bin/sh", "localhost/tools",
    ]  # fmt: skip
    assert "--rm" not in imagecmds.shell_args("tools", commit=True)
    assert imagecmds.commit_command("tools", None, ["bash", "-l"]) == [
        *NESTED, "commit",
        "--change", f"LABEL {layout.MAINTAINED_LABEL}=tools",
        "--change", "ENTRYPOINT []",
        "--change", 'CMD ["bash", "-l"]',
        "pipglr-shell-tools", "localhost/tools",
    ]  # fmt: skip


def test_shell_with_commit_commits_then_removes(
    op: Operator, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested(state, {"localhost/tools": {"Entrypoint": ["/init"], "Cmd": None}})
    monkeypatch.setenv("FAKE_SHELL_STATUS", "1")  # the shell's last command failed
    assert op.images_shell("tools", commit=True) == 1
    verbs = [c[len(IN_PIPGLR) + 2 :] for c in execs(state)]
    assert verbs[-4][:2] == ["run", "-it"] and "--rm" not in verbs[-4]
    assert execs(state)[-4][1] == "-it"
    assert verbs[-2] == [
        "commit", "--change", f"LABEL {layout.MAINTAINED_LABEL}=tools",
        "--change", 'ENTRYPOINT ["/init"]', "--change", "CMD []",
        "pipglr-shell-tools", "localhost/tools",
    ]  # fmt: skip
    assert verbs[-1] == ["rm", "-f", "--ignore", "pipglr-shell-tools"]
    book = json.loads((state / "nested.json").read_text())
    assert book["containers"] == [] and book["images"]["localhost/tools"]["committed"]


def test_shell_without_commit_commits_nothing(op: Operator, state: Path) -> None:
    nested(state, {"localhost/tools": {"Entrypoint": None, "Cmd": ["sh"]}})
    assert op.images_shell("tools", commit=False) == 0
    verbs = [c[len(IN_PIPGLR) + 2 :][0] for c in execs(state)]
    assert verbs == ["image", "container", "run"]
    image = json.loads((state / "nested.json").read_text())["images"]["localhost/tools"]
    assert "committed" not in image


def test_shell_refuses_a_missing_image_or_an_open_shell(op: Operator, state: Path) -> None:
    nested(state)
    with pytest.raises(UsageError, match="no image localhost/tools.*pipglr images build tools"):
        op.images_shell("tools", commit=False)
    nested(state, {"localhost/tools": {"Entrypoint": None, "Cmd": None}},
           containers=["pipglr-shell-tools"])  # fmt: skip
    with pytest.raises(UsageError, match="pipglr-shell-tools exists.*rm -f pipglr-shell-tools"):
        op.images_shell("tools", commit=True)
    assert not any("run" in c for c in execs(state))


# --- remove ---


def test_remove_deletes_the_definition_and_the_image(
    op: Operator, state: Path, tmp_path: Path
) -> None:
    define(tmp_path / "defs", "tools")
    define(tmp_path / "defs", "lint")
    op.images_add(tmp_path / "defs")
    nested(state, {"localhost/tools": {}, "localhost/lint": {}}, in_use=["localhost/lint"])
    assert op.images_remove("tools") == ["removed the definition tools", "removed localhost/tools"]
    said = op.images_remove("lint")
    assert said[0] == "removed the definition lint"
    assert said[1].startswith("localhost/lint is still in use (Error: image used by")
    assert "untagged" in said[1]
    assert json.loads((state / "nested.json").read_text())["images"] == {}
    assert sorted(p.name for p in (state / "maintained").iterdir()) == []


def test_remove_refuses_unknown_names_and_parents(
    op: Operator, state: Path, tmp_path: Path
) -> None:
    define(tmp_path / "defs", "base")
    define(tmp_path / "defs", "app", "FROM localhost/base:latest\n")
    define(tmp_path / "defs", "tools", depends="base\n")
    op.images_add(tmp_path / "defs")
    nested(state)
    with pytest.raises(UsageError, match="app, tools are built on base: remove or change"):
        op.images_remove("base")
    with pytest.raises(UsageError, match="no maintained image lint: `pipglr images list`"):
        op.images_remove("lint")
    assert op.images_remove("tools") == ["removed the definition tools",
                                         "localhost/tools was never built"]  # fmt: skip
    assert (state / "maintained" / "base" / "Containerfile").exists()


# --- the command line ---


def test_cli_add_says_how_to_build(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    define(tmp_path / "defs", "tools")
    monkeypatch.setenv("PIPGLR_PODMAN", f"{sys.executable} {FAKE}")
    assert cli.main(["images", "add", str(tmp_path / "defs")]) == 0
    assert capsys.readouterr().out == (
        "pipglr: added tools (as localhost/NAME); `pipglr images build` builds them\n"
    )
    assert cli.main(["images", "remove", "Bad"]) == 2
    assert "is no image name" in capsys.readouterr().err


def test_a_failing_script_is_one_line_naming_it(op: Operator, state: Path, tmp_path: Path) -> None:
    define(tmp_path / "defs", "tools")
    (state / "maintained").write_text("a file where the directory goes")
    with pytest.raises(EngineError) as raised:
        op.images_add(tmp_path / "defs")
    message = str(raised.value)
    assert message.startswith(
        "`# pipglr images: copy out the definitions` (in pipglr as user podman) exited 1: "
    )
    assert "\n" not in message and "File exists" in message


def test_the_shell_needs_a_terminal(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIPGLR_PODMAN", f"{sys.executable} {FAKE}")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert cli.main(["images", "shell", "tools"]) == 2
    assert "interactive: run it in a terminal" in capsys.readouterr().err
    assert not (state / "exec.jsonl").exists()
