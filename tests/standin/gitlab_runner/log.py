"""The runner's own log (not the job trace): logrus with gitlab-runner's "runner"
formatter (helpers/log/runner_formatter.go): ``WARNING: ``/``ERROR: ``/``FATAL: ``
prefixes, info without one, ``key=value`` fields appended, written to stderr. Lines of
warning level and above are counted per level for ``gitlab_runner_errors_total``
(helpers/prometheus/log_hook.go ``LogHook``: a hook fires only for a line logrus logs)."""

from __future__ import annotations

import sys
import threading

LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "fatal": 50, "panic": 60}
_PREFIX = {10: "DEBUG: ", 20: "", 30: "WARNING: ", 40: "ERROR: ", 50: "FATAL: ", 60: "PANIC: "}
_state = {"level": LEVELS["info"]}
_lock = threading.Lock()
#: ``LogHook.Levels`` (logrus level names) and how many lines of each were logged.
HOOK_LEVELS = {60: "panic", 50: "fatal", 40: "error", 30: "warning"}
COUNTS = dict.fromkeys(HOOK_LEVELS.values(), 0)


def set_level(name: str) -> None:
    """``--log-level``/``-l`` or ``--debug`` (commands/main? ``log.ConfigureLogging``)."""
    if name.lower() not in LEVELS:
        raise ValueError(f"not a log level: {name}")
    _state["level"] = LEVELS[name.lower()]


def enabled(level: int) -> bool:
    """Whether messages of ``level`` are printed."""
    return level >= _state["level"]


def _emit(level: int, message: str, fields: dict[str, object]) -> None:
    if not enabled(level):
        return
    extra = "".join(f" {key}={value}" for key, value in sorted(fields.items()))
    line = f"{_PREFIX[level]}{message}{'  ' + extra.strip() if extra else ''}\n"
    with _lock:
        if level in HOOK_LEVELS:
            COUNTS[HOOK_LEVELS[level]] += 1
        sys.stderr.write(line)
        sys.stderr.flush()


def debug(message: str, **fields: object) -> None:
    """Debug line."""
    _emit(10, message, fields)


def info(message: str, **fields: object) -> None:
    """Info line."""
    _emit(20, message, fields)


def warning(message: str, **fields: object) -> None:
    """Warning line."""
    _emit(30, message, fields)


def error(message: str, **fields: object) -> None:
    """Error line."""
    _emit(40, message, fields)


def fatal(message: str, **fields: object) -> None:
    """Fatal line (the caller exits 1, like logrus.Fatal)."""
    _emit(50, message, fields)
