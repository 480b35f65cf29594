"""pipglr.bench and the job bench (tests/harness/jobbench.py): statistics, ratios, reports
and why samples failed (no engine; no timings asserted)."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from pipglr import bench, layout
from pipglr.settings import BuildSettings
from tests.fakegitlab.ctl import Client, CtlError
from tests.harness import jobbench


def _done(stdout: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], code, stdout, "boom\n")


def test_measurement_statistics() -> None:
    """median/min/max come from the samples; empty samples give NaN."""
    m = bench.Measurement("x", "rootful", "s", [3.0, 1.0, 2.0, 10.0])
    assert (m.median, m.low, m.high) == (2.5, 1.0, 10.0)
    assert math.isnan(bench.Measurement("y", "rootful", "s").median)


def test_collect_reads_nanoseconds_and_counts_failures() -> None:
    """One figure per line in ns; FAIL lines are failures, other noise ignored."""
    m = bench.Measurement("x", "rootful", "s")
    bench.Bench._collect(m, _done("1500000000\nFAIL\nnoise\n500000000\n"))
    assert m.samples == [1.5, 0.5] and m.failures == 1


def test_collect_failed_command_notes_the_error() -> None:
    """A command that failed with no samples is a failure with its last error line."""
    m = bench.Measurement("x", "rootful", "s")
    bench.Bench._collect(m, _done("", 1))
    assert m.failures == 1 and m.note == "boom"


def test_report_ratio_and_outputs(tmp_path: Path) -> None:
    """Ratios divide medians; JSON and Markdown carry machine, rows and ratios."""
    report = bench.Report({"cores": "2", "kernel": "6.x"})
    nested = report.add(bench.Measurement("nested", "rootless", "s", [2.0, 4.0, 3.0]))
    host = report.add(bench.Measurement("host", "rootless", "s", [1.0, 2.0, 1.5]))
    report.ratio("job start", "rootless", nested, host)
    assert report.ratios[0].value == 2.0
    json_path, md_path = bench.write(report, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["machine"]["cores"] == "2"
    assert data["measurements"][0]["median"] == 3.0
    markdown = md_path.read_text()
    assert "- kernel: 6.x" in markdown
    assert "| rootless | nested | 3.000 s | 2.000 s | 4.000 s | 3 | 0 |" in markdown
    assert "| rootless | job start (nested / host) | 2.00x |" in markdown


def test_sizes_are_reported_in_megabytes() -> None:
    """Byte measurements print as MB."""
    report = bench.Report({})
    report.add(bench.Measurement("image size", "-", "bytes", [328_758_223.0]))
    assert "328.8 MB" in report.to_markdown()


def test_settings_read_back_from_image_labels() -> None:
    """The bench rebuilds with the settings the image's labels record."""
    settings = BuildSettings(build_type="dev", nested_privileged=False, prune_interval="weekly")
    labels = settings.oci_labels() | {"run": "podman run ..."}
    assert bench.settings_from_labels(labels) == settings
    assert layout.LABEL_BUILD_ARG_PREFIX + "build_type" in labels


def test_failed_samples_keep_their_reasons_and_the_report_prints_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """fail() counts every failure and keeps the first five distinct reasons; the
    progress line and the Markdown report print them, a clean measurement adds none."""
    failing = bench.Measurement("jobs", "rootless", "s")
    for n in (1, 1, 2, 3, 4, 5, 6):
        failing.fail(f"job {n} failed")
    assert failing.failures == 7, "every failed sample counts"
    assert failing.problems == [f"job {n} failed" for n in (1, 2, 3, 4, 5)], failing.problems
    report = bench.Report({})
    report.add(bench.Measurement("clean", "rootless", "s", [1.0]))
    report.add(failing)
    printed = capsys.readouterr().out
    assert "failed: job 1 failed" in printed and printed.count("failed: ") == 5, printed
    markdown = report.to_markdown()
    assert "## Why samples failed" in markdown, markdown
    assert "- rootless jobs: job 5 failed" in markdown and "clean:" not in markdown, markdown


def _record(job_id: int, state: str, trace: str = "", **extra: Any) -> dict[str, Any]:
    """A fake GitLab job record as ``Client.wait`` returns it."""
    mono = {"picked": 10.0, "final_update": 12.5}
    stamps = {name: {"mono": value} for name, value in mono.items()}
    return {"id": job_id, "state": state, "failure_reason": None, "trace": trace,
            "stamps": stamps, "durations": {"pick_to_final_update": 2.5}} | extra  # fmt: skip


def test_a_failed_job_is_described_by_state_reason_and_last_lines() -> None:
    """A job that did not succeed is no sample: its state, failure reason and the last
    three trace lines as the job log shows them (timestamps, colours and command echoes
    gone); a job that succeeded (positive control) is a sample."""
    trace = "".join(
        f"2026-12-03T08:10:0{n}.123456Z 01O {text}\n"
        for n, text in enumerate(["Running with gitlab-runner", "$ false", "step one",
                                  "step two", "\x1b[31;1mERROR: Job failed: exit code 1\x1b[0;m"])
    )  # fmt: skip
    m = bench.Measurement("final", "rootful", "s")
    jobbench.JobLifecycle._sample(m, _record(7, "success"), "pick_to_final_update")
    failed = _record(8, "failed", trace, failure_reason="script_failure")
    jobbench.JobLifecycle._sample(m, failed, "pick_to_final_update")
    assert m.samples == [2.5] and m.failures == 1, (m.samples, m.failures)
    assert m.problems == [
        "job 8 failed (script_failure): step one | step two | ERROR: Job failed: exit code 1"
    ], m.problems


def test_wall_time_names_the_job_that_spoiled_it() -> None:
    """K jobs at once: one that never finished makes the round a failure naming it."""
    m = bench.Measurement("4 jobs", "rootful", "s")
    jobbench.JobLifecycle._wall(m, [_record(1, "success"), _record(2, "success")])
    stuck = _record(3, "running", "2026-12-03T08:10:00.123456Z 01O still going\n")
    stuck["stamps"]["final_update"] = None
    jobbench.JobLifecycle._wall(m, [_record(4, "success"), stuck])
    assert m.samples == [2.5] and m.failures == 1, (m.samples, m.failures)
    assert m.problems == ["job 3 running: still going"], m.problems


def test_a_job_still_running_at_the_timeout_is_returned_as_it_is() -> None:
    """``run`` does not raise when a wait times out: the record as it stands comes back
    (and is then described), the finished one as waited for."""

    class Stub(Client):
        def add_job(self, spec: dict[str, Any]) -> int:
            return 1 if spec["project_id"] == 90 else 2

        def wait(self, job_id: int, states: Iterable[str] = (), timeout: float = 60,
                 interval: float = 0.5) -> dict[str, Any]:  # fmt: skip
            if job_id == 2:
                raise CtlError("job 2 still pending after 1s")
            return _record(1, "success")

        def job(self, job_id: int) -> dict[str, Any]:
            return _record(job_id, "pending")

    jobs = jobbench.JobLifecycle(Stub("http://127.0.0.1:9"), "img").run("glrt-x", 2, timeout=1)
    assert [(j["id"], j["state"]) for j in jobs] == [(1, "success"), (2, "pending")], jobs
