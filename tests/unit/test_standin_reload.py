"""``gitlab-runner run`` reloads a changed config.toml (commands/multi.go
``updateConfig``/``checkConfig``/``reloadConfig``): a stub coordinator records which
runner token asks for jobs."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.standin.gitlab_runner import config, reload
from tests.standin.gitlab_runner.multi import RunCommand
from tests.unit.test_standin_executor import StubGitLab


def write(path: Path, token: str, concurrent: int = 1, text: str | None = None) -> None:
    """A config with one runner of ``token`` (or raw ``text``), newer than before, put in
    place in one step (a reload check between the write and the time stamp would see
    two changes)."""
    previous = path.stat().st_mtime_ns if path.exists() else 0
    staged = path.with_name(f".{path.name}.new")
    if text is None:
        runner = {"name": "r", "url": "http://127.0.0.1:1/", "token": token, "executor": "docker"}
        document = {"concurrent": concurrent, "check_interval": 1, "runners": [runner]}
        config.save(staged, document)
        config.SAVED_AT.pop(staged, None)  # written by "the operator", not by the runner
    else:
        staged.write_text(text)
    later = max(time.time_ns(), previous + 1_000_000)
    os.utime(staged, ns=(later, later))
    os.replace(staged, path)
    config.SAVED_AT.pop(path, None)


def asked(stub: StubGitLab) -> list[str]:
    """The tokens of the job requests so far, in order."""
    return [str(c[2]["token"]) for c in list(stub.calls) if c[1] == "jobs/request"]


def until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``check`` until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_with(path: Path, stub: StubGitLab, during: Callable[[RunCommand], Any]) -> int:
    """Run the multi-runner in this thread while ``during`` acts, then SIGQUIT."""
    command = RunCommand(path, stub)

    def act() -> None:
        try:
            during(command)
        finally:
            command._on_signal(signal.SIGQUIT, None)

    threading.Thread(target=act, daemon=True).start()
    return command.run()


def test_a_changed_config_is_loaded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newer file replaces the runners (the new token asks for jobs, the old one no
    longer) and starts the workers of a larger ``concurrent``; "Configuration loaded"
    once at start and once for the change, not for an unchanged file."""
    monkeypatch.setattr(reload, "RELOAD_CONFIG_INTERVAL", 0.05)
    path, stub = tmp_path / "config.toml", StubGitLab()
    write(path, "glrt-first")
    seen: dict[str, Any] = {}

    def change(command: RunCommand) -> None:
        seen["first"] = until(lambda: "glrt-first" in asked(stub))
        time.sleep(0.3)  # several reload checks of an unchanged file
        write(path, "glrt-second", concurrent=2)
        seen["second"] = until(lambda: "glrt-second" in asked(stub))
        seen["workers"] = [t.name for t in threading.enumerate() if t.name.startswith("worker-")]

    assert run_with(path, stub, change) == 0
    tokens = asked(stub)
    assert seen["first"] and seen["second"], tokens
    assert "glrt-first" not in tokens[tokens.index("glrt-second") :], "old runner gone"
    assert sorted(seen["workers"]) == ["worker-0", "worker-1"], seen["workers"]
    assert capsys.readouterr().err.count("Configuration loaded") == 2


def test_a_broken_config_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """checkConfig: a file that does not load is logged once ("Failed to load config")
    and the runner keeps polling with the configuration it had."""
    monkeypatch.setattr(reload, "RELOAD_CONFIG_INTERVAL", 0.05)
    path, stub = tmp_path / "config.toml", StubGitLab()
    write(path, "glrt-first")
    seen: dict[str, bool] = {}

    def break_it(command: RunCommand) -> None:
        until(lambda: "glrt-first" in asked(stub))
        write(path, "", text="concurrent = [not toml\n")
        before = len(asked(stub))
        seen["still"] = until(lambda: len(asked(stub)) > before + 1)

    assert run_with(path, stub, break_it) == 0
    assert seen["still"] and set(asked(stub)) == {"glrt-first"}, asked(stub)
    assert capsys.readouterr().err.count("ERROR: Failed to load config") == 1


def test_the_runners_own_save_is_not_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SaveConfig sets ModTime to now: a file the runner wrote itself (token rotation)
    is not loaded again, while the same write by someone else is."""
    monkeypatch.setattr(reload, "RELOAD_CONFIG_INTERVAL", 0.05)
    path, stub = tmp_path / "config.toml", StubGitLab()
    write(path, "glrt-first")
    counts: list[int] = []

    def save_twice(command: RunCommand) -> None:
        until(lambda: "glrt-first" in asked(stub))
        config.save(path, command.config.raw)  # the runner's own write
        time.sleep(0.3)
        counts.append(len(asked(stub)))
        write(path, "glrt-first")  # the operator's
        until(lambda: len(asked(stub)) > counts[0] + 1)

    assert run_with(path, stub, save_twice) == 0
    assert capsys.readouterr().err.count("Configuration loaded") == 2, "start + operator"
