"""The build logger: lines and streams into the job trace, masked and timestamped
(common/buildlogger/build_logger.go ``New``/``Stream``/``wrap``/``SendRawLog``/``Close``,
common/buildlogger/internal/tee.go, common/build.go ``getNewLogger``,
helpers/build_section.go).

Every writer the logger hands out is its own filter chain over the trace; a write goes
through, in this order (``wrap``): a lock, the masked phrases (:mod:`.masking`), the
sensitive URL parameters (:mod:`.urlsanitizer`), the prefixed tokens (:mod:`.tokenmask`)
and, with FF_TIMESTAMPS, the line headers (:mod:`.timestamper`). The runner's own lines
and the section markers go through the executor-level chain (stream 0, stdout).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from . import log
from .masking import MASK as MASK_BYTES
from .masking import NopCloser, Sink, Writable, phrase_masker, unique
from .scripts import ANSI_BOLD_CYAN, ANSI_BOLD_GREEN, ANSI_BOLD_RED, ANSI_CLEAR, ANSI_RESET
from .scripts import ANSI_YELLOW as ANSI_YELLOW
from .timestamper import STDERR as STDERR
from .timestamper import STDOUT as STDOUT
from .timestamper import Clock, Timestamper, utc_now
from .tokenmask import default_token_prefixes, token_sanitizer
from .urlsanitizer import URLSanitizer

if TYPE_CHECKING:
    from .buildinfo import BuildInfo

MASK = MASK_BYTES.decode()
#: build_logger.go stream numbers.
STREAM_EXECUTOR_LEVEL = 0
STREAM_WORK_LEVEL = 1
STREAM_STARTING_SERVICE_LEVEL = 15


@dataclass(frozen=True)
class LogOptions:
    """``buildlogger.Options`` (Go zero values as defaults)."""

    mask_phrases: list[str] = field(default_factory=list)
    mask_token_prefixes: list[str] = field(default_factory=list)
    timestamping: bool = False
    mask_all_default_tokens: bool = False

    @classmethod
    def for_build(cls, info: BuildInfo) -> LogOptions:
        """``getNewLogger``: all variables' masked values, the payload's
        ``features.token_mask_prefixes``, FF_TIMESTAMPS and FF_MASK_ALL_DEFAULT_TOKENS."""
        return cls(
            mask_phrases=info.all_variables().masked(),
            mask_token_prefixes=list(info.job.token_mask_prefixes),
            timestamping=info.flag("FF_TIMESTAMPS"),
            mask_all_default_tokens=info.flag("FF_MASK_ALL_DEFAULT_TOKENS"),
        )


class LogStream:
    """One wrapped writer (``internal.NewSync`` over the filters): writes and close are
    serialised; a context manager closes it."""

    def __init__(self, chain: Sink) -> None:
        self._chain = chain
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Into the filters."""
        with self._lock:
            self._chain.write(data)

    def close(self) -> None:
        """Flush what the filters hold back (a partial line gets its newline)."""
        with self._lock:
            self._chain.close()

    def __enter__(self) -> LogStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BuildLogger:
    """``buildlogger.Logger`` over a job trace (anything with ``write(bytes)``)."""

    def __init__(
        self, trace: Writable, options: LogOptions | None = None, clock: Clock = utc_now
    ) -> None:
        options = options or LogOptions()
        self.trace, self.clock = trace, clock
        self.job_id = int(getattr(trace, "job_id", 0))
        self.phrases = unique(options.mask_phrases)
        self.prefixes = unique(
            [
                *options.mask_token_prefixes,
                *default_token_prefixes(options.mask_all_default_tokens),
            ]
        )
        self.timestamping = options.timestamping
        self._base = NopCloser(trace)
        self._executor = self.stream(STREAM_EXECUTOR_LEVEL, STDOUT)
        self._closed = False

    @classmethod
    def for_build(cls, info: BuildInfo, trace: Writable) -> BuildLogger:
        """``Build.getNewLogger``."""
        return cls(trace, LogOptions.for_build(info))

    def _wrap(self, stream_id: int, kind: str) -> Sink:
        """``wrap``: built from the trace up, so data flows phrases → URL → tokens →
        timestamps → trace."""
        writer: Sink = self._base
        if self.timestamping:
            writer = Timestamper(writer, stream_id, kind, self.clock)
        writer = token_sanitizer(writer, self.prefixes)
        writer = URLSanitizer(writer)
        return phrase_masker(writer, self.phrases)

    def stream(self, stream_id: int, kind: str) -> LogStream:
        """``Stream``: a new writer with its own filter state (``kind``: ``O``/``E``)."""
        return LogStream(self._wrap(stream_id, kind))

    def raw(self, text: str) -> None:
        """``SendRawLog``: through the executor-level writer, as is (section markers)."""
        self._executor.write(text.encode())

    def close(self) -> None:
        """``Close``: flush the executor-level writer (once; later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        self._executor.close()

    # --- internal/tee.go -----------------------------------------------------------------
    def _line(self, prefix: str, *args: object) -> None:
        # args joined by spaces, ANSI reset, newline
        self.raw(prefix + " ".join(str(a) for a in args) + ANSI_RESET + "\n")

    def println(self, *args: object) -> None:
        """``Println``: ``ESC[0K`` prefix."""
        self._line(ANSI_CLEAR, *args)

    def infoln(self, *args: object) -> None:
        """``Infoln``: bold green."""
        self._line(ANSI_BOLD_GREEN, *args)

    def warningln(self, *args: object) -> None:
        """``Warningln``: yellow ``WARNING:``."""
        self._line(ANSI_YELLOW + "WARNING: ", *args)
        log.warning(" ".join(str(a) for a in args), job=self.job_id)

    def errorln(self, *args: object) -> None:
        """``Errorln``/``SoftErrorln``: bold red ``ERROR:``."""
        self._line(ANSI_BOLD_RED + "ERROR: ", *args)

    def debugln(self, *args: object) -> None:
        """``Debugln``: the runner's log only."""
        log.debug(" ".join(str(a) for a in args), job=self.job_id)

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
