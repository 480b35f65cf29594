"""Sensitive URL parameters in the job trace
(common/buildlogger/internal/urlsanitizer/urlsanitizer.go).

``?key=`` or ``&key=`` with a known key (any case): the value up to the next ``?``,
``&``, whitespace or control character becomes ``[MASKED]``. The key being read and
the masking state carry over between writes.
"""

from __future__ import annotations

import re

from .masking import MASK, Sink

#: ``tokenParamKeys``.
PARAM_KEYS = frozenset(
    {
        "private_token",
        "authenticity_token",
        "rss_token",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
    }
)
#: ``New``: the key buffer's capacity, the longest key + 1 (its loop over the map
#: always ends there, whatever the map order).
KEY_CAPACITY = max(len(key) for key in PARAM_KEYS) + 1
#: ``isParamEnd`` as ``bytes.IndexFunc`` sees runes: ``?``, ``&``, ``unicode.IsSpace``,
#: ``unicode.IsControl`` (C0, DEL, C1), UTF-8 encoded.
_PARAM_END = re.compile(
    rb"[?&\x00-\x20\x7f]|\xc2[\x80-\xa0]|\xe1\x9a\x80|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]"
    rb"|\xe2\x81\x9f|\xe3\x80\x80"
)
_SEPARATOR = re.compile(rb"[?&]")
_KEY_END = re.compile(rb"[=?&]")


def _go_lower(key: bytes) -> str:
    """``strings.ToLower``: simple (one rune to one rune) lower case."""
    return "".join(char.lower()[:1] for char in key.decode(errors="replace"))


class URLSanitizer:
    """``URLSanitizer``."""

    def __init__(self, next_writer: Sink) -> None:
        self.next = next_writer
        self.match = bytearray()
        self.masking = False

    def write(self, data: bytes) -> None:  # noqa: C901 - one state machine, as upstream
        """``URLSanitizer.Write``."""
        pos = last = 0
        while pos < len(data):
            if self.masking:  # drop the value up to its end
                value_end = _PARAM_END.search(data, pos)
                if value_end is None:
                    pos = last = len(data)
                    break
                pos = last = value_end.start()
                self.masking = False
                self.next.write(MASK)
            if len(self.match) == KEY_CAPACITY:
                self.match.clear()
            if not self.match:
                separator = _SEPARATOR.search(data, pos)
                if separator is None:
                    pos = len(data)
                    break
                self.match.append(data[separator.start()])
                pos = separator.start() + 1
            if pos >= len(data):
                break
            found = _KEY_END.search(data, pos)
            if found is None:
                self.match.append(data[pos])
                pos += 1
                continue
            end = found.start()
            if data[end] in b"?&":
                self.match.clear()
                pos = end
                continue
            if end - pos + len(self.match) > KEY_CAPACITY:
                self.match.clear()
                pos += 1
                continue
            key = bytes(self.match) + data[pos:end]
            pos = end + 1
            if _go_lower(key[1:]) in PARAM_KEYS:
                self.next.write(data[last:pos])
                last = pos
                self.masking = True
            self.match.clear()
        if pos > last:
            self.next.write(data[last:pos])

    def close(self) -> None:
        """``URLSanitizer.Close``: a value still being dropped becomes ``[MASKED]``."""
        if self.masking:
            self.next.write(MASK)
        self.next.close()
