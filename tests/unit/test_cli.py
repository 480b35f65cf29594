"""pipglr.ops.cli: label commands from image label texts."""

from __future__ import annotations

import getpass
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from pipglr import layout
from pipglr.build import labels
from pipglr.errors import UsageError
from pipglr.ops import cli, netops
from pipglr.ops.operate import Operator
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
    assert f'Environment="{consent}"' in (tmp_path / "pipglr.container").read_text()


@pytest.fixture
def network_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[object, ...]]]:
    """NetworkOps methods replaced by recorders: what each command line asks for."""
    calls: list[tuple[str, tuple[object, ...]]] = []
    for method in ("mirror_add", "mirror_remove", "ca_add", "ca_remove", "proxy_set",
                   "proxy_clear", "login", "logout"):  # fmt: skip

        def record(self: netops.NetworkOps, *args: object, name: str = method) -> str:
            calls.append((name, args))
            return f"{name} done; {netops.RESTART}"

        monkeypatch.setattr(netops.NetworkOps, method, record)
    for method in ("mirror_list", "ca_list", "proxy_show", "login_list"):
        monkeypatch.setattr(netops.NetworkOps, method, lambda self, *a: [])
    return calls


@pytest.mark.parametrize(
    ("argv", "call"),
    [
        (["mirror", "add", "docker.io", "m:5000"], ("mirror_add", ("docker.io", "m:5000", False))),
        (["mirror", "add", "docker.io", "m", "--insecure"],
         ("mirror_add", ("docker.io", "m", True))),
        (["mirror", "remove", "docker.io"], ("mirror_remove", ("docker.io",))),
        (["ca", "add", "corp.pem"], ("ca_add", ("corp.pem", None))),
        (["ca", "add", "corp.pem", "--name", "corp"], ("ca_add", ("corp.pem", "corp"))),
        (["ca", "remove", "corp"], ("ca_remove", ("corp",))),
        (["proxy", "set", "http://p:3128"], ("proxy_set", ("http://p:3128", None, None, None))),
        (["proxy", "set", "--https", "https://p", "--no-proxy", "a,b"],
         ("proxy_set", (None, None, "https://p", "a,b"))),
        (["proxy", "clear"], ("proxy_clear", ())),
        (["registry", "logout", "r.example.com"], ("logout", ("r.example.com",))),
    ],
)  # fmt: skip
def test_network_commands_parse_and_print_one_line(
    network_calls: list[tuple[str, tuple[object, ...]]], capsys: pytest.CaptureFixture[str],
    argv: list[str], call: tuple[str, tuple[object, ...]],
) -> None:  # fmt: skip
    assert cli.main(argv) == 0
    assert network_calls == [call]
    out = capsys.readouterr().out
    assert out == f"pipglr: {call[0]} done; restart pipglr to apply: pipglr down && pipglr up\n"


@pytest.mark.parametrize("command", ["mirror", "ca", "registry"])
def test_empty_listings_say_how_to_add(
    network_calls: list[tuple[str, tuple[object, ...]]], capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:  # fmt: skip
    assert cli.main([command, "list"]) == 0
    assert capsys.readouterr().out == f"pipglr: none stored: see `pipglr {command} --help`\n"
    assert cli.main(["proxy", "show"]) == 0 and network_calls == []


@pytest.mark.parametrize(
    ("stdin", "password"), [("s3cret\n", "s3cret"), ("s3cret", "s3cret"), (" a b \n\n", " a b \n")]
)
def test_registry_login_reads_the_password_from_stdin(
    network_calls: list[tuple[str, tuple[object, ...]]], monkeypatch: pytest.MonkeyPatch,
    stdin: str, password: str,
) -> None:  # fmt: skip
    """Piped: exactly one trailing newline dropped; the password is no argument."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert cli.main(["registry", "login", "R.example.com", "--username", "ci"]) == 0
    assert network_calls == [("login", ("r.example.com", "ci", password))]


def test_registry_login_on_a_terminal_asks_without_echo(
    network_calls: list[tuple[str, tuple[object, ...]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    tty = io.StringIO("never read\n")
    monkeypatch.setattr(tty, "isatty", lambda: True)
    monkeypatch.setattr(sys, "stdin", tty)
    monkeypatch.setattr(getpass, "getpass", lambda prompt: "typed")
    assert cli.main(["registry", "login", "r.example.com", "-u", "ci"]) == 0
    assert network_calls == [("login", ("r.example.com", "ci", "typed"))]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["mirror", "add", "docker.io", "https://m.example.com"], "is not host[:port]"),
        (["proxy", "set", "proxy.example.com:3128"], "no http:// or https:// scheme"),
        (["ca", "add", "/nonexistent/corp.pem"], "/nonexistent/corp.pem: cannot read it"),
        (["registry", "login", "https://r", "-u", "ci"], "is not host[:port]"),
    ],
)
def test_bad_network_input_is_one_line_exit_2_before_podman(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    argv: list[str], needle: str,
) -> None:  # fmt: skip
    """Refused before any podman (here: one that cannot run) is asked anything."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert cli.main(["--podman", "/nonexistent/podman", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pipglr: ") and needle in err and err.count("\n") == 1


def test_quadlet_mounts_the_stored_network_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    label = ["podman", "run", "--name", "pipglr", *labels.NESTING_OPTIONS, "IMG"]
    monkeypatch.setattr(Operator, "label_args", lambda self, name, extra=(): label[1:])
    monkeypatch.setattr(Operator, "secrets",
                        lambda self: [layout.CONFIG_SECRET, layout.NETWORK_SECRET])  # fmt: skip
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["--image", "IMG", "quadlet", "--dir", str(tmp_path)]) == 0
    lines = (tmp_path / "pipglr.container").read_text().splitlines()
    assert f"Secret={layout.NETWORK_SECRET},mode=0400" in lines
    assert not any(layout.REGISTRY_AUTH_SECRET in line for line in lines)
    assert f"the unit mounts {layout.NETWORK_SECRET};" in capsys.readouterr().out


#: A stand-in editor: records the path it was given and the modes of the file and its
#: directory, then does what FAKE_EDIT says (append a line, or exit with a status).
FAKE_EDITOR = """
import json, os, stat, sys
path = sys.argv[1]
mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
with open(os.environ["FAKE_EDIT_RECORD"], "w") as out:
    json.dump({"path": path, "file": mode(path), "dir": mode(os.path.dirname(path))}, out)
action = os.environ["FAKE_EDIT"]
if action.startswith("exit"):
    sys.exit(int(action.split()[1]))
with open(path, "a") as edited:
    edited.write(action)
"""


@pytest.fixture
def editor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], tuple[int, dict[str, object], list[str]]]:
    """Run `pipglr config edit` with the stand-in editor doing ``action``; return the
    exit status, what the editor saw, and the texts that reached replace_config."""
    script = tmp_path / "editor.py"
    script.write_text(FAKE_EDITOR)
    record = tmp_path / "record.json"
    monkeypatch.setenv("VISUAL", f"{sys.executable} {script}")
    monkeypatch.setenv("FAKE_EDIT_RECORD", str(record))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    replaced: list[str] = []
    monkeypatch.setattr(Operator, "replace_config", lambda self, text: replaced.append(text))
    monkeypatch.setattr(cli, "_restart_hint", lambda op: "")

    def run(action: str) -> tuple[int, dict[str, object], list[str]]:
        monkeypatch.setenv("FAKE_EDIT", action)
        status = cli.main(["--podman", "podman", "config", "edit"])
        return status, json.loads(record.read_text()), replaced

    return run


def _rejected(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "data" / "pipglr" / "backups").glob("config.toml-rejected.*"))


def test_config_edit_copy_is_private_and_removed_after_a_good_edit(
    editor: Callable[[str], tuple[int, dict[str, object], list[str]]],
) -> None:
    """Failed before issue 21 (a 0600 file in the shared /tmp, mode 1777): the copy is
    0600 in a 0700 directory of its own, gone once the edit is taken. The edit reaching
    the secret is the control."""
    status, seen, replaced = editor("\nlisten_address = ':9252'\n")
    assert status == 0 and replaced == [GOOD_CONFIG + "\nlisten_address = ':9252'\n"]
    assert (seen["file"], seen["dir"]) == (0o600, 0o700)
    assert not Path(str(seen["path"])).parent.exists()


def test_config_edit_refused_leaves_nothing_in_tmp(
    editor: Callable[[str], tuple[int, dict[str, object], list[str]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Failed before issue 21: a refused edit stayed in /tmp with every token. Now the
    copy is removed and the edit kept 0600 where the backups are."""
    status, seen, replaced = editor("\n[[runners]\n")
    assert status == 2 and replaced == []
    assert not Path(str(seen["path"])).parent.exists()
    [kept] = _rejected(tmp_path)
    assert kept.stat().st_mode & 0o777 == 0o600 and "glrt-abc" in kept.read_text()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"(your edit is kept in {kept})" in err


def test_config_edit_editor_failing_changes_nothing(
    editor: Callable[[str], tuple[int, dict[str, object], list[str]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Failed before issue 21 (an editor exiting 1 was ignored: "no change", status 0):
    the failure is reported, nothing is replaced, the copy is gone."""
    status, seen, replaced = editor("exit 1")
    assert status == 2 and replaced == [] and _rejected(tmp_path) == []
    assert not Path(str(seen["path"])).parent.exists()
    assert "exited with status 1: config.toml is unchanged" in capsys.readouterr().err


def test_config_edit_missing_editor_or_exception_removes_the_copy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An editor that does not exist is one line (was a traceback); an exception while
    the editor runs (here: Ctrl-C) still removes the copy."""
    monkeypatch.setenv("VISUAL", "/nonexistent/editor --wait")
    assert cli.main(["--podman", "podman", "config", "edit"]) == 2
    assert "'/nonexistent/editor --wait' could not start" in capsys.readouterr().err
    seen: list[Path] = []

    def interrupted(argv: list[str], **kwargs: object) -> None:
        seen.append(Path(argv[-1]))
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.main(["--podman", "podman", "config", "edit"])
    assert seen and not seen[0].parent.exists()


@pytest.mark.parametrize(
    ("argv", "mode"),
    [
        (["config", "show", "--show-secrets"], 0o600),
        (["config", "get", "runners.0.token"], 0o600),
        (["runlabel", "dumpconfig"], 0o600),
        (["config", "show"], 0o644),
        (["config", "get", "concurrent"], 0o644),
    ],
)
def test_tokens_printed_into_a_file_make_it_private(
    argv: list[str], mode: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed before issue 21: `pipglr config show --show-secrets > config.toml` left the
    file as the umask made it (0644). Redacted or token-free output is the control."""
    monkeypatch.setattr(Operator, "label_args", lambda self, name: ["run", "IMG"])
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: CompletedProcess(argv, 0))
    target = tmp_path / "config.toml"
    target.touch()
    target.chmod(0o644)
    with target.open("w") as out:
        monkeypatch.setattr(sys, "stdout", out)
        assert cli.main(["--podman", "podman", *argv]) == 0
    assert target.stat().st_mode & 0o777 == mode
