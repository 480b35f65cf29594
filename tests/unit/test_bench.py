"""pipglr.bench: statistics, ratios and reports (no engine; no timings asserted)."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

from pipglr import bench, layout
from pipglr.settings import BuildSettings


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
