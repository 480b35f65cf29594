"""Dispatch of the in-image commands (see :mod:`pipglr.guest`); one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipglr import layout, runnerconfig
from pipglr.errors import ConfigError, PipglrError, UsageError
from pipglr.guest import health, podmansetup, register

COMMANDS = ("setup-podman", "check-config", "register", "ping")


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch a guest command; print errors as one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    command, rest = (args[0], args[1:]) if args else ("", [])
    try:
        if command == "setup-podman":
            print(f"pipglr: {podmansetup.setup_podman()}", flush=True)
        elif command == "check-config":
            path = Path(rest[0]) if rest else Path(str(layout.CONFIG_PATH))
            names = runnerconfig.check_file(path)
            print(f"pipglr: config.toml has runners: {', '.join(names)}", flush=True)
            if rest[1:]:
                os.execv(rest[1], rest[1:])
        elif command == "register":
            register.register(rest)
        elif command == "ping":
            health.ping()
        else:
            raise UsageError(f"unknown command {command!r}: use {', '.join(COMMANDS)}")
    except ConfigError as exc:
        print(f"pipglr: {exc}", file=sys.stderr, flush=True)
        return layout.CONFIG_ERROR_STATUS
    except PipglrError as exc:
        print(f"pipglr: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0
