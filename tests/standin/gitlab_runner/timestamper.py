"""Per-line headers in the job trace
(common/buildlogger/internal/timestamper/timestamper.go).

Every line the trace gets starts with ``<time> <stream><type><flag>``:
``2026-12-03T08:10:07.123456Z 01O text`` — UTC, six fractional digits (truncated), the
stream number in two hex digits, ``O``/``E``, and ``' '`` for a new line or ``'+'`` for
one that continues the last (after a carriage-return flush or a buffer overflow).

Per write: each ``\\n``-terminated line is written at once (a buffered partial line
first); what follows up to the last ``\\r`` is flushed as its own line with a ``\\n``
added; the rest is buffered (its header taken now) until a later write or
:meth:`Timestamper.close` ends it. A partial line that would outgrow 8 KiB (header
included) is written out with a ``\\n``, and the next line continues it (``'+'``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from .masking import Sink

STDOUT = "O"
STDERR = "E"
FULL_LINE = " "
PARTIAL_LINE = "+"
#: ``bufSize``.
BUFFER_SIZE = 8 * 1024

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    """``now``: ``time.Now().UTC()``."""
    return datetime.datetime.now(datetime.UTC)


def header(when: datetime.datetime, stream: int, kind: str, flag: str) -> bytes:
    """``writeHeader``: RFC 3339 seconds, ``.`` + microseconds, ``Z ``, stream, type, flag."""
    utc = when.astimezone(datetime.UTC)
    stamp = f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}Z "
    return f"{stamp}{stream & 0xFF:02x}{kind}{flag}".encode()


class Timestamper:
    """``timestamper.Logger`` with ``timestamp`` on (the build logger only adds it
    then)."""

    def __init__(self, next_writer: Sink, stream: int, kind: str, clock: Clock = utc_now) -> None:
        self.next, self.stream, self.kind, self.clock = next_writer, stream, kind, clock
        self.flag = FULL_LINE
        self.buffer = bytearray()

    def _header(self) -> bytes:
        """The header for a line starting now; the flag is back to ``' '`` after it."""
        line_header = header(self.clock(), self.stream, self.kind, self.flag)
        self.flag = FULL_LINE
        return line_header

    def write(self, data: bytes) -> None:
        """``Write``: lines, then carriage returns, then the partial rest."""
        done = self._lines(data)
        done += self._carriage_returns(data[done:])
        self._buffer(data[done:])

    def _flush_buffer(self) -> None:
        self.next.write(bytes(self.buffer))
        self.buffer.clear()

    def _lines(self, data: bytes) -> int:
        """``writeLines``: every complete line, the buffered partial one first."""
        end = data.find(b"\n")
        if end < 0:
            return 0
        done = 0
        if self.buffer:
            self._flush_buffer()
            self.next.write(data[: end + 1])
            done = end + 1
        while (end := data.find(b"\n", done)) >= 0:
            self.next.write(self._header())
            self.next.write(data[done : end + 1])
            done = end + 1
        return done

    def _carriage_returns(self, data: bytes) -> int:
        """``writeCarriageReturns``: up to the last ``\\r`` as a line of its own; the
        next line continues it."""
        end = data.rfind(b"\r")
        if end < 0:
            return 0
        if self.buffer:
            self._flush_buffer()
        else:
            self.next.write(self._header())
        self.flag = PARTIAL_LINE
        self.next.write(data[: end + 1])
        self.next.write(b"\n")
        return end + 1

    def _buffer(self, data: bytes) -> None:
        """``buffer``: hold a partial line; past :data:`BUFFER_SIZE` write it out."""
        if not data:
            return
        if len(data) + len(self.buffer) > BUFFER_SIZE:
            if not self.buffer:
                self.next.write(self._header())
            self._flush_buffer()
            self.flag = PARTIAL_LINE
            self.next.write(data)
            self.next.write(b"\n")
            return
        if not self.buffer:
            self.buffer += self._header()
        self.buffer += data

    def close(self) -> None:
        """``Close``: a buffered partial line is written with a ``\\n``. Like upstream,
        the buffer is not reset and the next writer is not closed."""
        if self.buffer:
            self.buffer += b"\n"
            self.next.write(bytes(self.buffer))
