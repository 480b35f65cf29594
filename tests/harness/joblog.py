"""Read a job log the way GitLab stores it: the one parser every test reads traces with.

gitlab-runner (v18.11.4) writes its trace through the build logger
(``common/buildlogger/build_logger.go``): with ``FF_TIMESTAMPS`` on (the default,
``helpers/featureflags/flags.go``) every line starts with a header written by
``common/buildlogger/internal/timestamper/timestamper.go``::

    2026-12-03T08:10:07.123456Z 01O+text

- a UTC time with exactly six fractional digits and ``Z``, then one space;
- the stream number in two hex digits (``00`` the runner's own lines and section
  markers, ``01`` the job's script output, ``0f`` and up services);
- the stream type, ``O`` (stdout) or ``E`` (stderr);
- the append flag: ``' '`` starts a line, ``'+'`` continues the previous one (after a
  carriage-return flush or an 8 KiB buffer overflow).

With the flag off there is no header at all. Token and phrase masking happen before
the header is added, so what a test reads is what GitLab shows: ``[MASKED]`` where a
secret was. Section markers (``section_start:TIME:NAME[OPTIONS]\\r\\033[0K``), ANSI
colours and carriage-return overwrites are rendered away in :attr:`Line.text`, as the
job log page shows them.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: timestamper.go's header: RFC 3339 with six fractional digits, stream, type, flag.
HEADER = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) "
    r"(?P<stream>[0-9a-f]{2})(?P<kind>[OE])(?P<flag>[ +])"
)
#: helpers/build_section.go markers (with optional ``[collapsed=true]`` options).
SECTION = re.compile(r"section_(?:start|end):\d+:[A-Za-z0-9_.-]+(?:\[[^\]\r\n]*\])?\r\x1b\[0K")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: The executor's stream numbers (build_logger.go).
STREAM_EXECUTOR = 0
STREAM_WORK = 1
STREAM_SERVICES = 15
MASK = "[MASKED]"


@dataclass(frozen=True)
class Line:
    """One displayed line: its header fields (``None`` without timestamps) and text."""

    raw: str
    time: datetime.datetime | None = None
    stream: int | None = None
    kind: str | None = None

    @property
    def text(self) -> str:
        """The line as GitLab's job log page shows it."""
        return render(self.raw)

    @property
    def is_command(self) -> bool:
        """A ``$ command`` echo line the shell writes before running a command."""
        return self.text.startswith("$ ")


def render(raw: str) -> str:
    """Section markers and ANSI sequences removed; after carriage returns, the last
    non-empty segment (what a terminal leaves on screen)."""
    text = ANSI.sub("", SECTION.sub("", raw))
    segments = [segment for segment in text.split("\r") if segment]
    return segments[-1] if segments else ""


def _parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)


def parse(raw: str) -> list[Line]:
    """Physical lines → displayed lines. A ``+`` continuation is joined to the last line
    of its own stream and type (the ``\\n`` the timestamper added after the flush is
    dropped): each stream has a timestamper of its own (build_logger.go ``Stream``),
    so lines of other streams may come in between."""
    lines: list[Line] = []
    last: dict[tuple[int, str], int] = {}
    for physical in raw.split("\n"):
        match = HEADER.match(physical)
        if match is None:
            if physical:
                lines.append(Line(physical))
            continue
        body = physical[match.end() :]
        stream, kind = int(match["stream"], 16), match["kind"]
        if match["flag"] == "+" and (stream, kind) in last:
            at = last[(stream, kind)]
            lines[at] = Line(lines[at].raw + body, lines[at].time, stream, kind)
            continue
        last[(stream, kind)] = len(lines)
        lines.append(Line(body, _parse_time(match["time"]), stream, kind))
    return lines


class JobLog:
    """A job's trace as stored by GitLab, parsed (see the module docstring)."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.lines = parse(raw)

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> JobLog:
        """The log of a fake GitLab job record (``Client.job``/``wait``)."""
        return cls(str(record.get("trace") or ""))

    @property
    def timestamped(self) -> bool:
        """Whether every line carries the timestamper's header."""
        return bool(self.lines) and all(line.time is not None for line in self.lines)

    @property
    def text(self) -> str:
        """The whole log as displayed, one line per line."""
        return "\n".join(line.text for line in self.lines)

    def output(self, stream: int | None = None) -> list[str]:
        """Displayed lines that are not ``$ command`` echoes (of one stream if given)."""
        return [
            line.text
            for line in self.lines
            if not line.is_command and (stream is None or line.stream == stream)
        ]

    def has_line(self, text: str) -> bool:
        """Whether some output line is exactly ``text``."""
        return text in self.output()

    def contains(self, marker: str) -> bool:
        """Whether some output line (not a ``$ command`` echo) contains ``marker``."""
        return any(marker in line for line in self.output())

    def search(self, pattern: str) -> re.Match[str] | None:
        """``re.search`` over the output lines, one line at a time (``^``/``$`` anchor
        at line ends); the first match."""
        compiled = re.compile(pattern)
        for line in self.output():
            found = compiled.search(line)
            if found:
                return found
        return None

    def matches(self, pattern: str) -> list[re.Match[str]]:
        """Every output line's first ``re.search`` match of ``pattern``, in log order
        (for probes that print one result per line)."""
        compiled = re.compile(pattern)
        found = (compiled.search(line) for line in self.output())
        return [match for match in found if match]

    def has_command(self, command: str) -> bool:
        """Whether the shell echoed ``$ command`` (the command line as written in the
        job's script, before running it)."""
        return any(line.is_command and line.text == f"$ {command}" for line in self.lines)

    def index(self, marker: str) -> int:
        """The number of the first output line containing ``marker`` (ValueError if none)."""
        for number, line in enumerate(self.output()):
            if marker in line:
                return number
        raise ValueError(f"{marker!r} is in no output line")

    def tail(self, size: int = 2500) -> str:
        """The end of the displayed log, for assertion messages."""
        return self.text[-size:]


def describe(record: Mapping[str, Any], size: int = 2500) -> str:
    """A fake GitLab job record for an assertion message: id, state, the log's end."""
    tail = JobLog.of(record).tail(size)
    return f"job {record.get('id')} {record.get('state')}: ...{tail}"
