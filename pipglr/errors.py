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
