"""Masked phrases in the job trace (common/buildlogger/internal/masker/masker.go), and
what the build logger's filters share: the writer protocol, the ``[MASKED]`` word and
the phrase list clean-up (common/buildlogger/internal/unique.go).

Each filter is a writer over the next one, stateful across writes: a phrase split over
two writes is still masked, because the bytes that might start it are held back until
the rest decides. The pieces each filter passes on are separate writes to the next, as
upstream (the timestamper downstream looks at write boundaries).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

MASK = b"[MASKED]"
#: Go's ``unicode.IsSpace`` (``strings.TrimSpace`` trims these): Latin-1 spaces and the
#: other ``White_Space`` runes.
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class Sink(Protocol):
    """``io.WriteCloser`` as the filters use it."""

    def write(self, data: bytes) -> None:
        """Take ``data``."""

    def close(self) -> None:
        """Flush what is held back, then close the next writer."""


class NopCloser:
    """internal/nopcloser.go ``NewNopCloser``: the trace under the filters; ``close``
    does nothing."""

    def __init__(self, target: Writable) -> None:
        self.target = target

    def write(self, data: bytes) -> None:
        """Append to the target."""
        if data:
            self.target.write(data)

    def close(self) -> None:
        """Nothing to close."""


class Writable(Protocol):
    """What the build logger writes to (``buildlogger.Trace``: the job trace)."""

    def write(self, data: bytes) -> None:
        """Append ``data``."""


def unique(values: Iterable[str]) -> list[bytes]:
    """``internal.Unique``: trimmed, sorted by byte length then bytes, duplicates and
    empty ones dropped."""
    trimmed = {value.strip(GO_SPACE).encode() for value in values}
    return sorted((v for v in trimmed if v), key=lambda v: (len(v), v))


class _PhraseFilter:
    """``masker``: one phrase; a full match becomes ``[MASKED]``, a broken-off partial
    match is passed on unchanged."""

    def __init__(self, phrase: bytes, next_writer: Sink) -> None:
        self.phrase, self.next, self.matching = phrase, next_writer, 0

    def write(self, data: bytes) -> None:
        """``masker.Write``."""
        if not data:
            return
        if data == MASK:  # an upper filter's mask goes straight through
            self.next.write(data)
            return
        phrase, pos, last = self.phrase, 0, 0
        while pos < len(data):
            if self.matching == 0:
                found = data.find(phrase[:1], pos)
                if found < 0:
                    pos = len(data)
                    break
                pos = found
            size = min(len(phrase) - self.matching, len(data) - pos)
            if data[pos : pos + size] == phrase[self.matching : self.matching + size]:
                self.next.write(data[last:pos])
                self.matching += size
                pos += size
                last = pos
                if self.matching == len(phrase):
                    self.next.write(MASK)
                    self.matching = 0
                continue
            if self.matching > 0:
                self.next.write(phrase[: self.matching])
                if phrase[0] == data[pos]:  # the breaking byte may start the phrase again
                    self.matching = 1
                    last += 1
                    pos += 1
                    continue
            self.matching = 0
            pos += 1
        self.next.write(data[last:pos])

    def close(self) -> None:
        """``masker.Close``: a pending partial match is passed on unchanged."""
        if self.matching == len(self.phrase):
            self.next.write(MASK)
        else:
            self.next.write(self.phrase[: self.matching])
        self.next.close()


def phrase_masker(next_writer: Sink, phrases: list[bytes]) -> Sink:
    """``masker.New``: one filter per phrase, stacked so the longest sees data first
    (``phrases`` as :func:`unique` sorts them)."""
    writer = next_writer
    for phrase in phrases:
        writer = _PhraseFilter(phrase, writer)
    return writer
