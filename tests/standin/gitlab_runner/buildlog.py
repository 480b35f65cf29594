"""The build logger: lines and streams into the job trace, masked
(common/buildlogger/build_logger.go, common/buildlogger/internal/tee.go,
helpers/build_section.go)."""

from __future__ import annotations

import threading
import time

from . import log
from .scripts import ANSI_BOLD_CYAN, ANSI_BOLD_GREEN, ANSI_BOLD_RED, ANSI_CLEAR, ANSI_RESET
from .scripts import ANSI_YELLOW as ANSI_YELLOW
from .trace import JobTrace

MASK = "[MASKED]"


class BuildLogger:
    """``buildlogger.Logger`` over a :class:`JobTrace`, masking masked variables."""

    def __init__(self, trace: JobTrace, masked: list[str] | None = None) -> None:
        self.trace = trace
        self.masked = [value for value in (masked or []) if len(value) >= 1]
        self._lock = threading.Lock()

    def _mask(self, data: bytes) -> bytes:
        for value in self.masked:
            data = data.replace(value.encode(), MASK.encode())
        return data

    def raw(self, text: str) -> None:
        """``SendRawLog``: unmasked, unprefixed (section markers)."""
        with self._lock:
            self.trace.write(text.encode())

    def write(self, data: bytes) -> None:
        """A stream write (stage output)."""
        with self._lock:
            self.trace.write(self._mask(data))

    def _line(self, prefix: str, *args: object) -> None:
        # tee.go log: args joined by spaces, ANSI reset, newline
        self.write((prefix + " ".join(str(a) for a in args) + ANSI_RESET + "\n").encode())

    def println(self, *args: object) -> None:
        """``Println``: ``ESC[0K`` prefix."""
        self._line(ANSI_CLEAR, *args)

    def infoln(self, *args: object) -> None:
        """``Infoln``: bold green."""
        self._line(ANSI_BOLD_GREEN, *args)

    def warningln(self, *args: object) -> None:
        """``Warningln``: yellow ``WARNING:``."""
        self._line(ANSI_YELLOW + "WARNING: ", *args)
        log.warning(" ".join(str(a) for a in args), job=self.trace.job_id)

    def errorln(self, *args: object) -> None:
        """``Errorln``/``SoftErrorln``: bold red ``ERROR:``."""
        self._line(ANSI_BOLD_RED + "ERROR: ", *args)

    def debugln(self, *args: object) -> None:
        """``Debugln``: the runner's log only."""
        log.debug(" ".join(str(a) for a in args), job=self.trace.job_id)

    def stage_header(self, description: str) -> None:
        """common/build.go ``executeStage``: the bold cyan description line."""
        self.println(f"{ANSI_BOLD_CYAN}{description}{ANSI_RESET}")


class Section:
    """helpers/build_section.go ``BuildSection``: section_start/section_end markers
    (only when the job's ``features.trace_sections`` is set)."""

    def __init__(self, logger: BuildLogger, name: str, enabled: bool) -> None:
        self.logger, self.name, self.enabled = logger, name, enabled

    def __enter__(self) -> Section:
        if self.enabled:
            self.logger.raw(f"section_start:{int(time.time())}:{self.name}\r{ANSI_CLEAR}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.logger.raw(f"section_end:{int(time.time())}:{self.name}\r{ANSI_CLEAR}")
