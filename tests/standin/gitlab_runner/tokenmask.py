"""Prefixed tokens in the job trace
(common/buildlogger/internal/tokensanitizer/token_masker.go).

A known prefix followed by characters of the token alphabet keeps the prefix and loses
the rest to ``[MASKED]`` (``glpat-abc123`` → ``glpat-[MASKED]``). One filter per
prefix, stacked longest first; each keeps its match state across writes, so a token
split over two writes is still masked. At most 15 prefixes are used: the first 15 of
the sorted list (``internal.Unique``), the rest are silently ignored.
"""

from __future__ import annotations

from .masking import MASK, Sink

#: ``DefaultTokenPrefixes``: always ``glpat-``; these too with FF_MASK_ALL_DEFAULT_TOKENS.
ALL_TOKEN_PREFIXES = (
    "gloas-", "gldt-", "glrt-", "glcbt-", "glrtr-", "glptt-", "glft-", "glimt-",
    "glagent-", "glsoat-", "glffct-", "_gitlab_session=", "gltok-",
)  # fmt: skip
MAX_PREFIXES = 15
#: ``alphabet``: what a token's body may contain.
ALPHABET = frozenset(b"-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz=")


def default_token_prefixes(mask_all_default_tokens: bool) -> list[str]:
    """``DefaultTokenPrefixes``."""
    return ["glpat-", *(ALL_TOKEN_PREFIXES if mask_all_default_tokens else ())]


class _PrefixFilter:
    """``tokenSanitizer``: one prefix. After a full prefix match, alphabet bytes are
    swallowed; the first other byte (or ``close``) writes ``[MASKED]`` for them."""

    def __init__(self, prefix: bytes, next_writer: Sink) -> None:
        self.prefix, self.next = prefix, next_writer
        self.matching = 0
        self.masked = False

    def write(self, data: bytes) -> None:
        """``tokenSanitizer.Write``."""
        if not data:
            return
        if data == MASK:
            self.next.write(data)
            return
        prefix, pos, last = self.prefix, 0, 0
        while pos < len(data):
            if self.matching == len(prefix):
                if data[pos] in ALPHABET:
                    self.masked = True
                    pos += 1
                    last = pos
                    continue
                if self.masked:
                    self.masked = False
                    self.next.write(MASK)
                self.matching = 0
            if self.matching == 0:
                found = data.find(prefix[:1], pos)
                if found < 0:
                    pos = len(data)
                    break
                pos = found
            size = min(len(prefix) - self.matching, len(data) - pos)
            if data[pos : pos + size] == prefix[self.matching : self.matching + size]:
                self.next.write(data[last:pos])
                self.matching += size
                pos += size
                last = pos
                if self.matching == len(prefix):
                    self.next.write(prefix)  # the prefix itself stays readable
                continue
            if self.matching > 0:
                self.next.write(prefix[: self.matching])
                if prefix[0] == data[pos]:
                    self.matching = 1
                    last += 1
                    pos += 1
                    continue
            self.matching = 0
            pos += 1
        self.next.write(data[last:pos])

    def close(self) -> None:
        """``tokenSanitizer.Close``: a token at the very end is masked now; otherwise the
        matched prefix bytes are written (again, for a complete prefix: upstream does)."""
        if self.masked:
            self.next.write(MASK)
        else:
            self.next.write(self.prefix[: self.matching])
        self.next.close()


def token_sanitizer(next_writer: Sink, prefixes: list[bytes]) -> Sink:
    """``tokensanitizer.New``: filters for the first :data:`MAX_PREFIXES` prefixes (as
    ``internal.Unique`` sorted them), the longest outermost."""
    writer = next_writer
    for prefix in prefixes[:MAX_PREFIXES]:
        writer = _PrefixFilter(prefix, writer)
    return writer
