"""The helper's log lines: logrus with gitlab-runner's ``RunnerTextFormatter``
(log/runner_formatter.go): on stderr, the level's colour and prefix (``WARNING: ``,
``ERROR: ``, ``FATAL: ``), the message padded to 50 columns less the prefix, a reset,
then `` key=value`` fields sorted by key."""

from __future__ import annotations

import sys
from typing import NoReturn

ANSI_YELLOW = "\033[0;33m"
ANSI_BOLD_RED = "\033[31;1m"
ANSI_RESET = "\033[0;m"
LEVELS = {
    "info": ("", ""),
    "warning": (ANSI_YELLOW, "WARNING: "),
    "error": (ANSI_BOLD_RED, "ERROR: "),
    "fatal": (ANSI_BOLD_RED, "FATAL: "),
}


def line(level: str, message: str, **fields: object) -> str:
    """One formatted entry, without the newline."""
    color, prefix = LEVELS[level]
    text = f"{color}{prefix}{message:<{50 - len(prefix)}}{ANSI_RESET} "
    for key in sorted(fields):
        text += f" {color}{key}{ANSI_RESET}={fields[key]}"
    return text


def info(message: str, **fields: object) -> None:
    """``logrus.Info``."""
    print(line("info", message, **fields), file=sys.stderr, flush=True)


def warning(message: str, **fields: object) -> None:
    """``logrus.Warning``."""
    print(line("warning", message, **fields), file=sys.stderr, flush=True)


def error(message: str, **fields: object) -> None:
    """``logrus.Error``."""
    print(line("error", message, **fields), file=sys.stderr, flush=True)


def fatal(message: str, **fields: object) -> NoReturn:
    """``logrus.Fatal``: the entry, then exit status 1."""
    print(line("fatal", message, **fields), file=sys.stderr, flush=True)
    raise SystemExit(1)
