"""The pipglr error hierarchy.

Every error carries a one-line message that names the cause and, where there is
one, the command that fixes it; the CLI and the tasks print ``str(error)`` and exit.
Standard library only: this module runs in the image.
"""

from __future__ import annotations


class PipglrError(Exception):
    """Base class: something pipglr cannot do, with a one-line reason and fix."""

    exit_code = 1


class UsageError(PipglrError):
    """The caller asked for something invalid (bad build arg, unknown label...)."""

    exit_code = 2


class IdLayoutError(PipglrError):
    """The user namespace does not hold enough ids for nested containers."""


class ConfigError(PipglrError):
    """The config.toml secret is missing or malformed."""


class RunnerBinaryError(PipglrError):
    """No usable gitlab-runner binary (download failed, checksum mismatch...)."""


class EngineError(PipglrError):
    """podman failed (no engine, build error, API error)."""


class CommandError(EngineError):
    """A podman command failed: the message is one line naming it and its last output
    line; the whole output is attached as an exception note (shown in tracebacks and
    by pytest, not by the CLI)."""

    def __init__(self, command: str, status: int, output: str, where: str = "") -> None:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        place = f" ({where})" if where else ""
        last = lines[-1] if lines else "no output"
        super().__init__(f"`{command}`{place} exited {status}: {last}")
        if output.strip():
            self.add_note(output.rstrip())
