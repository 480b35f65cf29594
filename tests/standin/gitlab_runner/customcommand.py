"""One custom-executor program run (executors/custom/command/command.go ``New``, ``Run``,
``waitForCommand``, ``parseBuildFailure``; command/errors.go ``ErrUnknownFailure``;
helpers/process/job_unix.go ``setProcessGroup``; helpers/process/killer.go
``KillAndWait``, ``KillProcessError``; helpers/process/killer_unix.go ``unixKiller``).

The program starts in its own process group with the runner's environment plus
``TMPDIR``, ``BUILD_FAILURE_EXIT_CODE``, ``SYSTEM_FAILURE_EXIT_CODE``,
``BUILD_EXIT_CODE_FILE``, ``JOB_RESPONSE_FILE``, then the caller's variables (later
entries win, as Go's ``exec.Cmd`` dedups ``Env``). When its context ends first, the
group gets SIGTERM, then SIGKILL after the graceful timeout; after the force timeout the
runner gives up. Its exit: 0 is success, ``BUILD_FAILURE_EXIT_CODE`` (1) a build error
(exit code from ``BUILD_EXIT_CODE_FILE`` when the driver wrote one),
``SYSTEM_FAILURE_EXIT_CODE`` (2) the bare exit error, anything else an "unknown
Custom executor executable exit code".
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from .context import Context
from .errors import BuildError, ExecutorFailure

#: command/command.go
BUILD_FAILURE_EXIT_CODE = 1
SYSTEM_FAILURE_EXIT_CODE = 2
Output = Callable[[bytes], None]


class ExitError(ExecutorFailure):
    """Go's ``*exec.ExitError``: "exit status N" or "signal: <name>" (exit code -1)."""

    def __init__(self, returncode: int) -> None:
        self.exit_code = returncode if returncode >= 0 else -1
        if returncode >= 0:
            text = f"exit status {returncode}"
        else:
            name = signal.strsignal(-returncode) or f"signal {-returncode}"
            text = f"signal: {name[:1].lower()}{name[1:]}"
        super().__init__(text)


class UnknownFailure(ExecutorFailure):
    """``ErrUnknownFailure``."""

    def __init__(self, inner: Exception, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(
            f"unknown Custom executor executable exit code {exit_code}; "
            f"executable execution terminated with: {inner}"
        )


class KillProcessError(ExecutorFailure):
    """``KillProcessError``."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"failed to kill process PID={pid}, likely process is dormant")


@dataclass
class Command:
    """``command``: what ``New`` gets (``cmdOpts`` and ``Options``)."""

    executable: str
    args: list[str]
    cwd: str
    stdout: Output
    stderr: Output
    job_response_file: str
    build_exit_code_file: str
    graceful_kill: float
    force_kill: float
    #: the executor's variables (job_env, then CUSTOM_ENV_*), after the defaults
    env: list[tuple[str, str]] = field(default_factory=list)
    #: ``ProcessLoggerAdapter.Warn``: kill failures into the job trace
    warn: Callable[[str], None] = lambda _message: None

    def environment(self) -> dict[str, str]:
        """``New``: ``os.Environ()``, the default variables, then ``cmdOpts.Env``."""
        env = dict(os.environ)
        env.update(
            {
                "TMPDIR": self.cwd,
                "BUILD_FAILURE_EXIT_CODE": str(BUILD_FAILURE_EXIT_CODE),
                "SYSTEM_FAILURE_EXIT_CODE": str(SYSTEM_FAILURE_EXIT_CODE),
                "BUILD_EXIT_CODE_FILE": self.build_exit_code_file,
                "JOB_RESPONSE_FILE": self.job_response_file,
            }
        )
        env.update(self.env)
        return env

    def run(self, ctx: Context) -> None:
        """``Run``: start, then the exit or (context done) ``KillAndWait``."""
        try:
            proc = subprocess.Popen(
                [self.executable, *self.args],
                cwd=self.cwd,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                process_group=0,  # setProcessGroup: Setpgid
            )
        except OSError as exc:
            raise ExecutorFailure(f"failed to start command: {exc}") from exc
        finished = threading.Event()
        wake = threading.Event()
        outcome: list[BaseException | None] = []

        def wait() -> None:
            """``waitForCommand`` (Go's Wait also waits for the output copies)."""
            assert proc.stdout is not None and proc.stderr is not None
            copies = [
                threading.Thread(target=_copy, args=(proc.stdout, self.stdout), daemon=True),
                threading.Thread(target=_copy, args=(proc.stderr, self.stderr), daemon=True),
            ]
            for copy in copies:
                copy.start()
            returncode = proc.wait()
            for copy in copies:
                copy.join()
            outcome.append(self._exit_error(returncode))
            finished.set()
            wake.set()

        threading.Thread(target=wait, daemon=True).start()
        ctx.on_done(wake.set)
        wake.wait()
        if not finished.is_set():
            self._kill_and_wait(proc.pid, finished)
        error = outcome[0] if outcome else None
        if error is not None:
            raise error

    def _kill_and_wait(self, pid: int, finished: threading.Event) -> None:
        """``KillAndWait``: SIGTERM to the group, SIGKILL after the graceful timeout;
        after the force timeout, ``KillProcessError``."""
        if not self._signal(pid, signal.SIGTERM, "Failed to terminate process:"):
            self._signal(pid, signal.SIGKILL, "Failed to force-kill:")
        if finished.wait(self.graceful_kill):
            return
        self._signal(pid, signal.SIGKILL, "Failed to force-kill:")
        if not finished.wait(self.force_kill):
            raise KillProcessError(pid)

    def _signal(self, pid: int, signum: signal.Signals, failure: str) -> bool:
        """``unixKiller``: ``syscall.Kill(-pid, sig)``."""
        try:
            os.killpg(pid, signum)
        except OSError as exc:
            self.warn(f"{failure} {exc}")
            return False
        return True

    def _exit_error(self, returncode: int) -> Exception | None:
        """``waitForCommand``'s mapping of the exit."""
        if returncode == 0:
            return None
        error = ExitError(returncode)
        if error.exit_code == BUILD_FAILURE_EXIT_CODE:
            return self._build_failure(error)
        if error.exit_code != SYSTEM_FAILURE_EXIT_CODE:
            return UnknownFailure(error, error.exit_code)
        return error

    def _build_failure(self, error: ExitError) -> Exception:
        """``parseBuildFailure``: the first line of ``BUILD_EXIT_CODE_FILE`` as the exit
        code ("exit status <it>"); no file: exit code 1; not a number: unknown failure
        with the system failure code."""
        try:
            with open(self.build_exit_code_file, "rb") as handle:
                first = handle.read().decode(errors="replace").split("\n", 1)[0]
        except OSError:
            return BuildError(str(error), exit_code=BUILD_FAILURE_EXIT_CODE)
        first = first.removesuffix("\r")  # bufio.ScanLines drops a trailing \r
        try:
            code = _atoi(first)
        except ValueError:
            return UnknownFailure(error, SYSTEM_FAILURE_EXIT_CODE)
        return BuildError(f"exit status {first}", exit_code=code)


def _atoi(text: str) -> int:
    """``strconv.Atoi``: optional sign and ASCII digits only."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(text)
    return int(text)


def _copy(pipe: IO[bytes], out: Output) -> None:
    """The output copy ``exec.Cmd`` runs for a non-file writer."""
    with pipe:
        while chunk := pipe.read1(65536):  # type: ignore[attr-defined]
            out(chunk)


class LineLog:
    """logrus ``Entry.WriterLevel``: one log entry per line written."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.pending = b""

    def write(self, data: bytes) -> None:
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            self.emit(line.decode(errors="replace"))

    def close(self) -> None:
        if self.pending:
            self.emit(self.pending.decode(errors="replace"))
            self.pending = b""
