"""The stand-in's build logger writes traces as gitlab-runner v18.11.4 does: per-line
timestamp headers (common/buildlogger/internal/timestamper), masked phrases, sensitive
URL parameters and prefixed tokens (internal/masker, urlsanitizer, tokensanitizer), each
writer stateful across writes; and what it writes reads back through ``JobLog``."""

from __future__ import annotations

import datetime
import itertools
from pathlib import Path

import pytest

from tests.fakegitlab import payloads
from tests.harness.joblog import JobLog
from tests.standin.gitlab_runner.buildinfo import BuildInfo
from tests.standin.gitlab_runner.buildlog import (
    STREAM_EXECUTOR_LEVEL,
    STREAM_STARTING_SERVICE_LEVEL,
    STREAM_WORK_LEVEL,
    BuildLogger,
    LogOptions,
    Section,
)
from tests.standin.gitlab_runner.jobspec import Job
from tests.standin.gitlab_runner.timestamper import Clock, header
from tests.standin.gitlab_runner.tokenmask import default_token_prefixes
from tests.unit.test_standin_executor import payload, runner_config

START = datetime.datetime(2026, 12, 3, 8, 10, 7, 123456, tzinfo=datetime.UTC)


class Trace:
    """A job trace that keeps what the logger appends."""

    job_id = 7

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    @property
    def text(self) -> str:
        return self.data.decode()


def ticking() -> Clock:
    """A clock one second further at every reading, from :data:`START`."""
    seconds = itertools.count()
    return lambda: START + datetime.timedelta(seconds=next(seconds))


def stamp(second: int) -> str:
    """The time part of a header for the clock's ``second``-th reading."""
    return f"2026-12-03T08:10:{7 + second:02d}.123456Z"


def new_logger(**options: object) -> tuple[BuildLogger, Trace]:
    trace = Trace()
    return BuildLogger(trace, LogOptions(**options), clock=ticking()), trace  # type: ignore[arg-type]


def masked(data: list[bytes], **options: object) -> str:
    """What one stdout writer makes of ``data`` written piece by piece, then closed
    (no timestamps: the masking alone)."""
    logger, trace = new_logger(**options)
    out = logger.stream(STREAM_WORK_LEVEL, "O")
    for piece in data:
        out.write(piece)
    out.close()
    return trace.text


def splits(text: bytes) -> list[list[bytes]]:
    """``text`` in one write, and cut in two at every position."""
    return [[text]] + [[text[:cut], text[cut:]] for cut in range(1, len(text))]


# --- the timestamper -------------------------------------------------------------------
def test_header_format() -> None:
    """RFC 3339 UTC with six fractional digits, ``Z``, a space, two hex digits of stream,
    the type and the append flag."""
    assert header(START, 1, "O", " ") == b"2026-12-03T08:10:07.123456Z 01O "
    small = START.replace(microsecond=42)
    assert header(small, 15, "E", "+") == b"2026-12-03T08:10:07.000042Z 0fE+", "zero padded"
    local = START.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert header(local, 0, "O", " ").startswith(b"2026-12-03T08:10:07.123456Z"), "in UTC"


def test_every_line_gets_a_header_with_its_time() -> None:
    """One write with two lines: two headers, each with the time of its own line."""
    logger, trace = new_logger(timestamping=True)
    logger.stream(STREAM_WORK_LEVEL, "O").write(b"one\ntwo\n")
    assert trace.text == f"{stamp(0)} 01O one\n{stamp(1)} 01O two\n", trace.text


def test_partial_line_waits_for_its_newline() -> None:
    """Text without a newline is held back; the newline of a later write ends it under
    the header taken when it started."""
    logger, trace = new_logger(timestamping=True)
    out = logger.stream(STREAM_WORK_LEVEL, "O")
    out.write(b"par")
    assert trace.text == "", f"a partial line is buffered, got {trace.text!r}"
    out.write(b"tial\nnext")
    assert trace.text == f"{stamp(0)} 01O partial\n", trace.text


def test_carriage_return_flushes_and_the_next_line_continues() -> None:
    """A write ending in ``\\r`` is written out with a newline added; the next line is a
    ``+`` continuation, and JobLog shows the last state."""
    logger, trace = new_logger(timestamping=True)
    out = logger.stream(STREAM_WORK_LEVEL, "O")
    for piece in (b"10%\r", b"20%\r", b"done\n"):
        out.write(piece)
    assert trace.text == (f"{stamp(0)} 01O 10%\r\n{stamp(1)} 01O+20%\r\n{stamp(2)} 01O+done\n"), (
        trace.text
    )
    assert JobLog(trace.text).output() == ["done"], JobLog(trace.text).lines


def test_eight_kib_partial_line_is_written_out_and_continued() -> None:
    """A partial line is held while it fits 8 KiB together with its 32-byte header; the
    write that would outgrow that is written out with a newline, and the next line
    continues it with ``+``. JobLog joins them into one line."""
    logger, trace = new_logger(timestamping=True)
    out = logger.stream(STREAM_WORK_LEVEL, "O")
    out.write(b"a" * 8000)
    out.write(b"b" * 160)
    assert trace.text == "", "32 + 8000 + 160 = 8 KiB: still held back"
    out.write(b"c")
    assert trace.text == f"{stamp(0)} 01O " + "a" * 8000 + "b" * 160 + "c\n", trace.text[-80:]
    out.write(b"d\n")
    assert trace.text.endswith(f"\n{stamp(1)} 01O+d\n"), trace.text[-80:]
    assert JobLog(trace.text).output() == ["a" * 8000 + "b" * 160 + "cd"], "one line"


def test_eight_kib_single_write_goes_out_at_once() -> None:
    """One write larger than 8 KiB with nothing held is written at once with its header
    and a newline; 8 KiB exactly is held."""
    logger, trace = new_logger(timestamping=True)
    held = logger.stream(STREAM_WORK_LEVEL, "O")
    held.write(b"h" * 8192)
    assert trace.text == "", "8192 bytes are held back"
    logger.stream(STREAM_WORK_LEVEL, "E").write(b"x" * 8193)
    assert trace.text == f"{stamp(1)} 01E " + "x" * 8193 + "\n", trace.text[:80]


def test_close_flushes_a_partial_line_with_a_newline() -> None:
    """Closing a writer writes its held-back partial line with a newline; a writer with
    nothing held back writes nothing."""
    logger, trace = new_logger(timestamping=True)
    complete = logger.stream(STREAM_WORK_LEVEL, "O")
    complete.write(b"whole\n")
    complete.close()
    assert trace.text == f"{stamp(0)} 01O whole\n", "nothing held back, nothing added"
    partial = logger.stream(STREAM_WORK_LEVEL, "E")
    partial.write(b"no newline")
    partial.close()
    assert trace.text.endswith(f"{stamp(1)} 01E no newline\n"), trace.text


def test_each_writer_has_its_stream_type_and_state() -> None:
    """Stream number and O/E per writer (executor 00, work 01, services 0f); a partial
    line on stdout is not ended by a line on stderr."""
    logger, trace = new_logger(timestamping=True)
    stdout = logger.stream(STREAM_WORK_LEVEL, "O")
    stderr = logger.stream(STREAM_WORK_LEVEL, "E")
    stdout.write(b"out ")
    stderr.write(b"err\n")
    stdout.write(b"end\n")
    logger.println("runner line")
    logger.stream(STREAM_STARTING_SERVICE_LEVEL, "O").write(b"service\n")
    lines = [(line.stream, line.kind, line.text) for line in JobLog(trace.text).lines]
    assert lines == [
        (1, "E", "err"),
        (1, "O", "out end"),
        (0, "O", "runner line"),
        (15, "O", "service"),
    ], trace.text


def test_section_markers_go_through_the_executor_stream() -> None:
    """``SendRawLog``: a section marker is flushed at its ``\\r`` on stream 00 and the
    runner line after it continues that line (``+``), as real traces show."""
    logger, trace = new_logger(timestamping=True)
    with Section(logger, "step_script", enabled=True):
        logger.println("inside")
    physical = trace.text.split("\n")
    assert physical[0].startswith(f"{stamp(0)} 00O section_start:"), physical
    assert physical[0].endswith(":step_script\r"), physical
    assert physical[1] == f"{stamp(1)} 00O+\x1b[0K\x1b[0Kinside\x1b[0;m", physical
    assert JobLog(trace.text).lines[0].text == "inside", JobLog(trace.text).lines


def test_no_timestamping_writes_the_text_alone() -> None:
    """With timestamping off nothing is added to the text; with it on, headers are."""
    plain_logger, plain = new_logger(timestamping=False)
    plain_logger.println("line")
    assert plain.text == "\x1b[0Kline\x1b[0;m\n", plain.text
    stamped_logger, stamped = new_logger(timestamping=True)
    stamped_logger.println("line")
    assert stamped.text == f"{stamp(0)} 00O \x1b[0Kline\x1b[0;m\n", stamped.text


# --- the options a build gives (common/build.go getNewLogger) -----------------------
def build_options(tmp_path: Path, variables: dict[str, str], **flags: bool) -> LogOptions:
    job = payload(
        variables=[{"key": k, "value": v, "public": True} for k, v in variables.items()]
        + [{"key": "SECRET", "value": "hunter2", "masked": True}],
        features={"trace_sections": True, "token_mask_prefixes": ["ghp_"]},
    )
    runner = runner_config(tmp_path / "docker.sock")
    runner.feature_flags.update(flags)
    return LogOptions.for_build(BuildInfo(runner, Job.from_dict(job), "s_0"))


def test_build_options_default_to_timestamps_and_all_token_prefixes(tmp_path: Path) -> None:
    """FF_TIMESTAMPS and FF_MASK_ALL_DEFAULT_TOKENS are on by default; masked variables
    and the payload's prefixes are passed on."""
    options = build_options(tmp_path, {})
    assert options.timestamping and options.mask_all_default_tokens, options
    assert "hunter2" in options.mask_phrases, options.mask_phrases
    assert options.mask_token_prefixes == ["ghp_"], options.mask_token_prefixes


def test_job_variables_turn_timestamps_and_token_prefixes_off(tmp_path: Path) -> None:
    """FF_TIMESTAMPS=false / FF_MASK_ALL_DEFAULT_TOKENS=false in the job's variables."""
    variables = {"FF_TIMESTAMPS": "false", "FF_MASK_ALL_DEFAULT_TOKENS": "false"}
    options = build_options(tmp_path, variables)
    assert not options.timestamping and not options.mask_all_default_tokens, options


def test_runner_feature_flags_win_over_job_variables(tmp_path: Path) -> None:
    """``[runners.feature_flags]`` decides before the job's variables."""
    options = build_options(tmp_path, {"FF_TIMESTAMPS": "false"}, FF_TIMESTAMPS=True)
    assert options.timestamping, "the runner's FF_TIMESTAMPS=true wins"


# --- tokens (tokensanitizer) ---------------------------------------------------------
@pytest.mark.parametrize("prefix", default_token_prefixes(True))
def test_default_prefix_keeps_the_prefix_and_masks_the_token(prefix: str) -> None:
    """Every default prefix: the prefix stays, the alphabet after it becomes [MASKED]."""
    text = masked([f"use {prefix}Ab1-._=z now\n".encode()], mask_all_default_tokens=True)
    assert text == f"use {prefix}[MASKED] now\n", text


def test_only_glpat_without_mask_all_default_tokens() -> None:
    """FF_MASK_ALL_DEFAULT_TOKENS off: ``glpat-`` is still masked, ``glrt-`` is not."""
    text = masked([b"glpat-abc glrt-def\n"], mask_all_default_tokens=False)
    assert text == "glpat-[MASKED] glrt-def\n", text


def test_token_split_across_writes_is_masked() -> None:
    """A token (or its prefix) cut between two writes at any point is still masked."""
    for pieces in splits(b"key glpat-abcdef end\n"):
        assert masked(pieces) == "key glpat-[MASKED] end\n", pieces


def test_token_at_the_end_of_a_stream_is_masked_on_close() -> None:
    """A token the writer is closed on is masked, not dropped or shown."""
    assert masked([b"last glpat-abc"]) == "last glpat-[MASKED]", "closing writes the mask"


def test_payload_prefixes_are_masked() -> None:
    """``features.token_mask_prefixes`` adds prefixes; without them the text stays."""
    assert masked([b"ghp_secret1\n"], mask_token_prefixes=["ghp_"]) == "ghp_[MASKED]\n"
    assert masked([b"ghp_secret1\n"]) == "ghp_secret1\n", "not a prefix without the payload"


def test_at_most_fifteen_prefixes_shortest_first() -> None:
    """Defaults (14) + two short payload prefixes: the 15 shortest are used, so the
    longest default (``_gitlab_session=``) is dropped; without the extras it masks."""
    line = b"aa-1 bb-2 _gitlab_session=3\n"
    full = masked([line], mask_all_default_tokens=True, mask_token_prefixes=["aa-", "bb-"])
    assert full == "aa-[MASKED] bb-[MASKED] _gitlab_session=3\n", full
    defaults = masked([line], mask_all_default_tokens=True)
    assert defaults == "aa-1 bb-2 _gitlab_session=[MASKED]\n", defaults


# --- phrases (masker) and URL parameters (urlsanitizer) -----------------------------
def test_masked_phrase_split_across_writes_is_masked() -> None:
    """A masked variable's value cut between two writes at any point is [MASKED]."""
    for pieces in splits(b"pw=hunter2!\n"):
        assert masked(pieces, mask_phrases=["hunter2"]) == "pw=[MASKED]!\n", pieces


def test_longest_phrase_first_and_phrases_trimmed() -> None:
    """Phrases are trimmed and the longest is matched first; an empty one masks
    nothing; a broken-off match is passed on unchanged."""
    phrases = [" abc", "abcdef\t", ""]
    assert masked([b"abcdef abcxyz abx\n"], mask_phrases=phrases) == ("[MASKED] [MASKED]xyz abx\n")


def test_masked_variable_holding_a_token_is_masked_whole() -> None:
    """Phrases are masked before tokens: a masked variable whose value is a PAT leaves
    ``[MASKED]``, not ``glpat-[MASKED]``; the same token outside a variable keeps its
    prefix."""
    assert masked([b"t=glpat-secret\n"], mask_phrases=["glpat-secret"]) == "t=[MASKED]\n"
    assert masked([b"t=glpat-secret\n"]) == "t=glpat-[MASKED]\n", "the token filter alone"


def test_sensitive_url_parameters_are_masked() -> None:
    """``private_token`` (any case) and the AWS signature are masked up to ``&`` or
    whitespace; other parameters stay."""
    line = b"GET /p?PRIVATE_TOKEN=abc123&page=2&X-Amz-Signature=f00d ?token=keep\n"
    text = masked([line])
    assert text == (
        "GET /p?PRIVATE_TOKEN=[MASKED]&page=2&X-Amz-Signature=[MASKED] ?token=keep\n"
    ), text


def test_url_parameter_split_across_writes_is_masked() -> None:
    """The key or the value cut between two writes at any point is still masked."""
    for pieces in splits(b"u?private_token=s3cr3t&a=1\n"):
        assert masked(pieces) == "u?private_token=[MASKED]&a=1\n", pieces


# --- what GitLab shows ---------------------------------------------------------------
def test_round_trip_through_joblog() -> None:
    """What the logger writes (sections, runner lines, stdout and stderr of a stage with
    a secret, a token and a progress line) parses back into the displayed lines, their
    streams and types, with [MASKED] where the secrets were."""
    logger, trace = new_logger(
        timestamping=True, mask_phrases=["hunter2"], mask_all_default_tokens=True
    )
    logger.println("Running with gitlab-runner")
    with Section(logger, "step_script", enabled=True):
        logger.stage_header("Executing step_script")
        stdout = logger.stream(STREAM_WORK_LEVEL, "O")
        stderr = logger.stream(STREAM_WORK_LEVEL, "E")
        stdout.write(b"$ echo $SECRET\nhun")
        stdout.write(b"ter2\n50%\r")
        stderr.write(b"token glrt-")
        stdout.write(b"100%\n")
        stderr.write(b"abc\n")
        stdout.write(b"no newline")
        stderr.close()
        stdout.close()
    logger.infoln("Job succeeded")
    logger.close()
    log = JobLog(trace.text)
    assert log.timestamped, trace.text
    shown = [(line.stream, line.kind, line.text) for line in log.lines]
    assert shown == [
        (STREAM_EXECUTOR_LEVEL, "O", "Running with gitlab-runner"),
        (STREAM_EXECUTOR_LEVEL, "O", "Executing step_script"),
        (STREAM_WORK_LEVEL, "O", "$ echo $SECRET"),
        (STREAM_WORK_LEVEL, "O", "[MASKED]"),
        (STREAM_WORK_LEVEL, "O", "100%"),
        (STREAM_WORK_LEVEL, "E", "token glrt-[MASKED]"),
        (STREAM_WORK_LEVEL, "O", "no newline"),
        (STREAM_EXECUTOR_LEVEL, "O", "Job succeeded"),
    ], trace.text
    assert "hunter2" not in trace.text and "glrt-abc" not in trace.text, trace.text
    assert log.has_line("[MASKED]") and log.contains("glrt-[MASKED]"), log.tail()


def test_fake_gitlab_sends_no_token_mask_prefixes() -> None:
    """GitLab's ``features`` (app/models/ci/build.rb) carry trace_sections and
    failure_reasons, no token_mask_prefixes: the stand-in masks its defaults only."""
    spec = payloads.normalize_spec({"script": ["true"]})
    job = payloads.build_job(spec, job_id=5, token="glcbt-x", server_url="http://h")
    assert set(job["features"]) == {"trace_sections", "failure_reasons"}, job["features"]
    assert Job.from_dict(job).token_mask_prefixes == [], "nothing beyond the defaults"
