"""The job-log parser reads traces in gitlab-runner's stored format (timestamper.go)."""

from __future__ import annotations

import datetime

from tests.harness.joblog import JobLog, Line, describe, render

T0 = "2026-12-03T08:10:07.123456Z"
T1 = "2026-12-03T08:10:08.000001Z"
#: What a real runner stores for a short job: the executor's lines (stream 00), a
#: section marker written raw before a line, the job's commands and output (01),
#: stderr, a carriage-return flush continued by '+', and masked secrets.
RAW = (
    f"{T0} 00O \x1b[0KRunning with gitlab-runner 18.11.4 (abc)\x1b[0;m\n"
    f"{T0} 00O section_start:1764749407:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting\x1b[0;m\n"
    f"{T0} 01O \x1b[32;1m$ echo hello\x1b[0;m\n"
    f"{T0} 01O hello\n"
    f"{T1} 01E warning on stderr\n"
    f"{T1} 01O 50%\r\n"
    f"{T1} 01O+100%\n"
    f"{T1} 01O token glrt-[MASKED] and [MASKED]\n"
    f"{T1} 00O section_end:1764749408:step_script\r\x1b[0K\n"
    f"{T1} 00O \x1b[32;1mJob succeeded\x1b[0;m\n"
)


def test_headers_are_parsed_and_removed() -> None:
    """Time, stream number and type come from the header; the text has none of it."""
    log = JobLog(RAW)
    assert log.timestamped
    first = log.lines[0]
    assert first.time == datetime.datetime(2026, 12, 3, 8, 10, 7, 123456, tzinfo=datetime.UTC)
    assert (first.stream, first.kind, first.text) == (
        0,
        "O",
        "Running with gitlab-runner 18.11.4 (abc)",
    )
    assert [line.kind for line in log.lines if line.text == "warning on stderr"] == ["E"]


def test_commands_are_told_from_output() -> None:
    """``$ echo hello`` is a command echo; ``hello`` is output; has_line is exact."""
    log = JobLog(RAW)
    assert log.has_line("hello") and not log.has_line("$ echo hello")
    assert "$ echo hello" not in log.output() and "$ echo hello" in log.text
    assert log.output(stream=1)[0] == "hello"


def test_continuations_join_and_carriage_returns_overwrite() -> None:
    """``50%\\r`` continued by ``+100%`` displays as ``100%``, one line."""
    log = JobLog(RAW)
    assert log.has_line("100%") and not log.contains("50%")


def test_section_markers_and_colours_are_rendered_away() -> None:
    """A marker written before a line leaves just the line's text."""
    log = JobLog(RAW)
    assert log.has_line("Executing") and log.has_line("Job succeeded")
    assert "section_" not in log.text and "\x1b" not in log.text


def test_search_anchors_at_each_line() -> None:
    """``^`` anchors at the start of the displayed line, not of the header."""
    log = JobLog(RAW)
    assert log.search(r"^hello$") is not None
    assert log.search(r"^token glrt-\[MASKED\]") is not None
    assert log.search(r"^\d{4}-") is None


def test_a_log_without_timestamps_is_read_too() -> None:
    """FF_TIMESTAMPS=false: no headers; lines are read as they are."""
    log = JobLog("\x1b[0KRunning with x\x1b[0;m\n\x1b[32;1m$ echo hi\x1b[0;m\nhi\n")
    assert not log.timestamped
    assert log.has_line("hi") and log.lines[0] == Line("\x1b[0KRunning with x\x1b[0;m")
    assert log.lines[0].stream is None


def test_a_header_look_alike_in_the_middle_of_a_line_is_text() -> None:
    """Only a header at the start of a physical line counts."""
    log = JobLog(f"{T0} 01O echo {T1} 01O not a header\n")
    assert log.has_line(f"echo {T1} 01O not a header")


def test_index_orders_output_lines() -> None:
    """index() gives output line numbers, for before/after assertions."""
    log = JobLog(RAW)
    assert log.index("hello") < log.index("100%")


def test_render_keeps_plain_text() -> None:
    """Text without markers or escapes is unchanged."""
    assert render("plain text") == "plain text"


def test_matches_gives_one_match_per_output_line() -> None:
    """matches() finds a pattern in every output line that has it, in order, and not
    in the ``$ command`` echo that printed it."""
    log = JobLog(
        f"{T0} 01O $ probe a b\n{T0} 01O probe a answered 200\n{T0} 01O other\n"
        f"{T1} 01O+ line\n{T1} 01O probe b refused\n"
    )
    found = [(m[1], m[2]) for m in log.matches(r"probe (\S+) (\w+)")]
    assert found == [("a", "answered"), ("b", "refused")]
    assert log.matches(r"^nothing") == []


def test_has_command_is_exact_and_only_for_echoes() -> None:
    """has_command() matches a ``$ command`` echo exactly; an output line with the
    same text does not count, nor does a longer command."""
    log = JobLog(RAW)
    assert log.has_command("echo hello")
    assert not log.has_command("echo hel") and not log.has_command("hello")


def test_describe_names_the_job_and_ends_with_its_log() -> None:
    """describe() is for assertion messages: id, state and the displayed log's end."""
    said = describe({"id": 5, "state": "failed", "trace": RAW}, size=20)
    assert said.startswith("job 5 failed: ...") and said.endswith("Job succeeded")
    assert describe({"id": 6, "state": "pending"}) == "job 6 pending: ..."


def test_a_continuation_joins_the_last_line_of_its_own_stream() -> None:
    """A stdout line flushed at a carriage return is continued after a stderr line
    came in between: the continuation belongs to the stdout line."""
    log = JobLog(f"{T0} 01O downloading 10%\r\n{T0} 01E a warning\n{T1} 01O+100% done\n")
    assert [line.text for line in log.lines] == ["100% done", "a warning"]
    assert [line.kind for line in log.lines] == ["O", "E"]
