"""Benchmarks: what nesting costs against host podman, measured in one run.

``run_all`` runs, per outer mode, the measurement families of the ``bench*`` modules:
:mod:`pipglr.bench.container` (the bench's outer container), :mod:`pipglr.bench.samehost` (the
same-version host: a privileged container of the image playing the host),
:mod:`pipglr.bench.jobs` (job start, the file-heavy job, concurrency, storage drivers),
:mod:`pipglr.bench.lifecycle` (a job's lifecycle: custom executor, docker API, host),
:mod:`pipglr.bench.builds` (image builds in unprivileged and privileged jobs) and the
job lifecycle a :class:`JobDriver` provides; :mod:`pipglr.bench.report` holds the
results. Nothing here asserts a timing: benchmarks measure, tests check behaviour.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from pipglr import layout
from pipglr.bench.builds import JOB_IMAGE, BuildBench
from pipglr.bench.container import BENCH_CONFIG, BenchContainer, outer_options
from pipglr.bench.jobs import FILE_ROUNDS, JobBench, storage_drivers
from pipglr.bench.lifecycle import LIFECYCLE_ROUNDS, LifecycleBench, report_lifecycle
from pipglr.bench.lifecycle import NOTE as LIFECYCLE_NOTE
from pipglr.bench.report import Measurement, Ratio, Report
from pipglr.bench.samehost import SameVersionHost
from pipglr.errors import CommandError
from pipglr.ops.outer import Outer
from pipglr.settings import BuildSettings

__all__ = ["JobDriver", "Measurement", "Ratio", "Report", "run_all", "settings_from_labels",
           "write"]  # fmt: skip


class JobDriver(Protocol):
    """Runs real CI jobs for the job-lifecycle measurement (a GitLab and a runner:
    ``tests/harness/jobbench.py`` provides them with the fake GitLab)."""

    def nested_config(self) -> str:
        """config.toml for the bench container's runner."""

    def lifecycle(
        self, mode: str, podman: Sequence[str], repeat: int, levels: Sequence[int],
        same: SameVersionHost | None = None,
    ) -> list[tuple[Measurement, Measurement, Measurement | None]]:  # fmt: skip
        """(nested, host, same-version host) measurements for one outer mode."""

    def helper_images(self) -> Sequence[str]:
        """Images the same-version host's podman needs for the jobs (their helper)."""


def settings_from_labels(image_labels: dict[str, str]) -> BuildSettings:
    """The build settings an image was made with, read back from its labels."""
    prefix = layout.LABEL_BUILD_ARG_PREFIX
    return BuildSettings.from_mapping(
        {k.removeprefix(prefix).upper(): v for k, v in image_labels.items() if k.startswith(prefix)}
    )


NOTES = (
    "nested / host compares podman versions as much as nesting (the host's own podman "
    "against the image's); nested / same-version host measures nesting alone: the "
    "same-version host is the image under test run --privileged by the mode's outer "
    "podman, pipglr's services stopped, its root podman (the nested version, rootful, "
    "overlay on a volume, cgroupfs) playing the host (pipglr/bench/samehost.py).",
    "Image builds run the same job image (examples/podman-job) and the same "
    "`podman build -q --no-cache` of one context: the unprivileged job (no options) in an "
    "outer started with " + outer_options(False) + "; the privileged job (--privileged) "
    "in one started with " + outer_options(True) + ", where alone a privileged nested "
    "job starts; every other nested row runs in an outer started as the image's "
    "NESTED_PRIVILEGED build arg says (see the header).",
    "The file-heavy job runs interleaved: each round runs every side once, in an order "
    "that rotates per round; the spread column gives the quartiles of the per-round "
    "ratios, and a difference is resolved only when they lie on one side of 1.00x.",
    LIFECYCLE_NOTE,
)


def run_all(
    outers: Sequence[Outer],
    image: str,
    settings: BuildSettings,
    quick: bool,
    docker_cli: str,
    rebuild: Callable[[], object] | None = None,
    jobs: JobDriver | None = None,
    job_image: str = JOB_IMAGE,
    done: Callable[[Report], object] | None = None,
) -> Report:
    """Run every benchmark (or the quick subset) for each outer mode; ``done`` gets
    the report so far after each mode (an interrupted run keeps what it measured)."""
    repeat = 3 if quick else 7
    report = Report(machine_facts(outers, image), notes=list(NOTES))
    report.machine["run"] = "quick" if quick else "full"
    report.machine["outer (image's NESTED_PRIVILEGED)"] = outer_options(settings.nested_privileged)
    size = Measurement("image size (uncompressed)", "-", "bytes")
    inspect = outers[0].run("image", "inspect", "--format", "{{.Size}}", image)
    size.samples.append(float(inspect.stdout.strip()))
    report.add(size)
    if rebuild is not None:
        warm = Measurement("warm rebuild, no change", "-", "s")
        for _ in range(1 if quick else 3):
            warm.samples.append(timed(rebuild))
        report.add(warm)
    for outer in outers:
        log(f"== {outer.mode}")
        box = BenchContainer(outer, image, settings, jobs.nested_config() if jobs else BENCH_CONFIG)
        same = SameVersionHost(outer, image)
        try:
            _run_mode(report, box, same, repeat, quick, docker_cli, jobs, job_image)
        finally:
            box.remove()
            same.close()
            if done is not None:
                done(report)
    return report


def _run_mode(report: Report, box: BenchContainer, same: SameVersionHost, repeat: int,
              quick: bool, docker_cli: str, jobs: JobDriver | None,
              job_image: str) -> None:  # fmt: skip
    """Every measurement family of one outer mode, with progress lines."""
    mode = box.outer.mode
    log(f"-- {mode}: bench container, job image {job_image}")
    box.prepare(docker_cli)
    box.load(job_image)
    report.machine[f"nested podman ({mode})"] = box.inner_podman()
    log(f"-- {mode}: same-version host")
    same.start(box.image, *(jobs.helper_images() if jobs else ()))
    report.machine[f"same-version host podman ({mode})"] = same.podman_version()
    ready = Measurement("outer start -> runner active, socket answers", mode, "s")
    for _ in range(2 if quick else 5):
        ready.samples.append(box.start())
    report.add(ready)
    family = JobBench(box, repeat, same)
    nested, host = family.job_start()
    report.ratio("job start", mode, report.add(nested), report.add(host))
    log(f"-- {mode}: job lifecycle of both executors, interleaved")
    lifecycle = LifecycleBench(box).run(repeat if quick else LIFECYCLE_ROUNDS)
    report_lifecycle(report, mode, lifecycle)
    log(f"-- {mode}: file-heavy job, interleaved")
    files = family.file_work(repeat if quick else FILE_ROUNDS)
    for m in files.values():
        report.add(m)
    report.ratio("file-heavy job", mode, files["nested"], files["host"], paired=True)
    report.ratio("file-heavy job, nesting alone", mode, files["nested"], files["same"],
                 paired=True)  # fmt: skip
    if not quick:
        try:
            native, fuse = storage_drivers(box, repeat)
            report.ratio("nested storage", mode, report.add(native), report.add(fuse))
        except CommandError as exc:  # a failed family must not cost the others
            failed = Measurement("10k small files (nested, native overlay / fuse-overlayfs)",
                                 mode, "s")  # fmt: skip
            failed.fail(str(exc).splitlines()[-1][:200])
            report.add(failed)
    log(f"-- {mode}: image builds (the outer restarts with the options each job needs)")
    _builds(report, BuildBench(box, repeat, same, job_image))
    box.start()  # back to the image's own outer options
    for m in family.concurrency((1, 4) if quick else (1, 2, 4, 8)):
        report.add(m)
    if jobs is not None:
        log(f"-- {mode}: job lifecycle through the fake GitLab")
        levels = (4,) if quick else (1, 4, 8)
        for nested, host, other in jobs.lifecycle(mode, box.outer.podman, repeat, levels, same):
            name = nested.name.replace(" (nested)", "")
            report.ratio(name, mode, report.add(nested), report.add(host))
            if other is not None:
                report.ratio(f"{name}, nesting alone", mode, nested, report.add(other))


def _builds(report: Report, builds: BuildBench) -> None:
    """Unprivileged and privileged nested builds against both host sides."""
    mode = builds.mode
    unprivileged = report.add(builds.nested(privileged=False))
    privileged = report.add(builds.nested(privileged=True))
    host = report.add(builds.host())
    same = report.add(builds.same_host())
    report.ratio("image build, unprivileged job", mode, unprivileged, host)
    report.ratio("image build, privileged job", mode, privileged, host)
    report.ratio("image build, unprivileged job, nesting alone", mode, unprivileged, same)
    report.ratio("image build, privileged job, nesting alone", mode, privileged, same)


def machine_facts(outers: Sequence[Outer], image: str) -> dict[str, str]:
    """Header facts that make two runs comparable."""
    facts = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "image": image,
    }
    for outer in outers:
        info = outer.run(
            "info",
            "--format",
            "{{.Version.Version}} {{.Store.GraphDriverName}} {{.Host.OCIRuntime.Name}}",
            check=False,
        ).stdout.split()
        if len(info) == 3:
            facts[f"host podman ({outer.mode})"] = (
                f"{info[0]}, storage {info[1]}, runtime {info[2]}"
            )
    return facts


def timed(callable_: Callable[[], object]) -> float:
    """Seconds one call takes."""
    s = time.monotonic()
    callable_()
    return time.monotonic() - s


def write(report: Report, directory: Path, stamp: str | None = None) -> tuple[Path, Path]:
    """Write the JSON and Markdown reports (``stamp``: the same files again, e.g. after
    each outer mode); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    json_path = directory / f"bench-{stamp}.json"
    md_path = directory / f"bench-{stamp}.md"
    json_path.write_text(report.to_json())
    md_path.write_text(report.to_markdown())
    return json_path, md_path


def log(message: str) -> None:
    """Progress line on stderr."""
    print(message, file=sys.stderr, flush=True)
