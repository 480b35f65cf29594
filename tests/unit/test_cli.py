"""pipglr.ops.cli: label commands from image label texts."""

from __future__ import annotations

import getpass
import io
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
