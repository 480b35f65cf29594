"""Benchmark results: samples, ratios and the JSON / Markdown report.

Each :class:`Measurement` keeps its raw samples; reports show median, min and max,
and a :class:`Ratio` divides the median of one measurement by another's. When the two
were sampled *interleaved* (round i of one right after round i of the other), the
ratio also carries the quartiles of the per-round ratios: a difference counts as
resolved only when that interquartile range lies wholly on one side of 1.00x.
Nothing here runs an engine.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
from dataclasses import dataclass, field

#: Failure reasons kept per measurement.
MAX_PROBLEMS = 5


@dataclass
class Measurement:
    """Samples of one quantity in one mode."""

    name: str
    mode: str
    unit: str
    samples: list[float] = field(default_factory=list)
    failures: int = 0
    note: str = ""
    #: why samples failed, one line each (the first few; a CI job: its state, failure
    #: reason and last trace lines)
    problems: list[str] = field(default_factory=list)

    def fail(self, why: str) -> None:
        """Count a failed sample and keep the first few reasons."""
        self.failures += 1
        if len(self.problems) < MAX_PROBLEMS and why not in self.problems:
            self.problems.append(why)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def low(self) -> float:
        return min(self.samples) if self.samples else float("nan")

    @property
    def high(self) -> float:
        return max(self.samples) if self.samples else float("nan")


@dataclass
class Ratio:
    """``numerator`` median divided by ``denominator`` median; for interleaved
    measurements also the quartiles of the per-round ratios (``q1``, ``q3``) over
    ``rounds`` rounds."""

    name: str
    mode: str
    numerator: str
    denominator: str
    value: float
    q1: float | None = None
    q3: float | None = None
    rounds: int = 0

    @property
    def spread(self) -> str:
        """The per-round spread and whether it resolves the difference from 1.00x."""
        if self.q1 is None or self.q3 is None:
            return "-"
        verdict = "resolved" if self.q1 > 1.0 or self.q3 < 1.0 else "within spread"
        return f"{self.q1:.2f}-{self.q3:.2f}x over {self.rounds} rounds: {verdict}"


def paired_quartiles(top: list[float], bottom: list[float]) -> tuple[float, float] | None:
    """First and third quartile of ``top[i] / bottom[i]`` (None under 3 pairs)."""
    pairs = [t / b for t, b in zip(top, bottom, strict=False) if b]
    if len(pairs) < 3:
        return None
    q1, _, q3 = statistics.quantiles(pairs, n=4, method="inclusive")
    return q1, q3


@dataclass
class Report:
    """Everything one ``invoke bench`` run measured."""

    machine: dict[str, str]
    measurements: list[Measurement] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    #: how each measurement was taken, where the table alone would mislead
    notes: list[str] = field(default_factory=list)

    def add(self, measurement: Measurement) -> Measurement:
        self.measurements.append(measurement)
        print(f"  {measurement.mode:8} {measurement.name}: median {_fmt(measurement)}", flush=True)
        for why in measurement.problems:
            print(f"           failed: {why}", flush=True)
        return measurement

    def ratio(
        self, name: str, mode: str, top: Measurement, bottom: Measurement, paired: bool = False
    ) -> Ratio:
        """Add ``top / bottom``; ``paired``: the samples were taken round by round."""
        value = top.median / bottom.median if bottom.median else float("nan")
        ratio = Ratio(name, mode, top.name, bottom.name, value)
        quartiles = paired_quartiles(top.samples, bottom.samples) if paired else None
        if quartiles is not None:
            ratio.q1, ratio.q3 = quartiles
            ratio.rounds = min(len(top.samples), len(bottom.samples))
        self.ratios.append(ratio)
        print(f"  {mode:8} ratio {name}: {value:.2f}x ({ratio.spread})", flush=True)
        return ratio

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        for m, raw in zip(self.measurements, data["measurements"], strict=True):
            raw.update(median=m.median, min=m.low, max=m.high)
        return json.dumps(data, indent=2) + "\n"

    def to_markdown(self) -> str:
        lines = ["# pipglr benchmark", ""]
        lines += [f"- {key}: {value}" for key, value in self.machine.items()]
        lines += [
            "",
            "| mode | measurement | median | min | max | n | failures |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for m in self.measurements:
            lines.append(
                f"| {m.mode} | {m.name}{' (' + m.note + ')' if m.note else ''} | "
                f"{_num(m.median, m.unit)} | {_num(m.low, m.unit)} | {_num(m.high, m.unit)} "
                f"| {len(m.samples)} | {m.failures} |"
            )
        lines += ["", "| mode | ratio | value | per-round spread |", "| --- | --- | --- | --- |"]
        for r in self.ratios:
            lines.append(
                f"| {r.mode} | {r.name} ({r.numerator} / {r.denominator}) | {r.value:.2f}x "
                f"| {r.spread} |"
            )
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        failed = [m for m in self.measurements if m.problems]
        if failed:
            lines += ["", "## Why samples failed", ""]
            for m in failed:
                lines += [f"- {m.mode} {m.name}: {why}" for why in m.problems]
        return "\n".join(lines) + "\n"


def _num(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 1e6:.1f} MB"
    return f"{value:.3f} s"


def _fmt(m: Measurement) -> str:
    return f"{_num(m.median, m.unit)} (min {_num(m.low, m.unit)}, max {_num(m.high, m.unit)})"


# -- reading samples -------------------------------------------------------------------
def sample(m: Measurement, ok: bool, seconds: float, why: str = "failed") -> None:
    """One sample, or a failure with its reason."""
    if ok:
        m.samples.append(seconds)
    else:
        m.fail(why)


def sample_ns(m: Measurement, result: subprocess.CompletedProcess[str]) -> None:
    """One sample: the last stdout line of a command that printed nanoseconds."""
    try:
        ok = result.returncode == 0
        sample(m, ok, int(result.stdout.strip().splitlines()[-1]) / 1e9 if ok else 0.0,
               last_line(result))  # fmt: skip
    except (ValueError, IndexError):
        m.fail(last_line(result))


def collect(m: Measurement, result: subprocess.CompletedProcess[str]) -> None:
    """Read one nanosecond figure per line; ``FAIL [reason]`` lines count as failures."""
    for line in result.stdout.splitlines():
        if line.startswith("FAIL"):
            m.fail(line.removeprefix("FAIL").strip()[:120] or "a sample printed FAIL")
        elif line.strip().isdigit():
            m.samples.append(int(line) / 1e9)
    if result.returncode != 0 and not m.samples:
        m.failures += 1
        m.note = last_line(result)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    """The last line of a command's error output (its reason), at most 120 characters."""
    return (result.stderr.strip().splitlines() or ["failed"])[-1][:120]
