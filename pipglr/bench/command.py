"""What ``invoke bench`` runs: the outer podmans that can take part, the image's
settings, the warm-rebuild timing, then :func:`pipglr.bench.suite.run_all` with the
report written after each mode and at the end."""

from __future__ import annotations

import datetime
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from pipglr.bench import builds, suite
from pipglr.bench.report import Report
from pipglr.build import engine, imagebuild
from pipglr.errors import PipglrError
from pipglr.ops.outer import Outer

#: ``invoke bench``'s job-lifecycle driver, or None to leave that family out.
DriverContext = Callable[[], AbstractContextManager[suite.JobDriver | None]]


def usable_outers(modes: Sequence[str], rootless_podman: str, image: str) -> list[Outer]:
    """The outer podmans of ``modes`` that are available (others are skipped with a
    line on stderr), each holding ``image``."""
    outers = []
    for mode in modes:
        candidate = Outer.for_mode(mode.strip(), rootless_podman)
        reason = candidate.available()
        if reason:
            print(f"skipping {mode}: {reason}", file=sys.stderr)
            continue
        candidate.copy_image_from_root(image)
        outers.append(candidate)
    return outers


def bench(
    image: str,
    quick: bool,
    modes: Sequence[str],
    rootless_podman: str,
    results: Path,
    build_dir: Path,
    runner_binary: Path | None,
    standin: bool,
    job_base: str,
    job_driver: DriverContext,
) -> tuple[Report, Path, Path]:
    """Measure ``image`` in every usable outer mode; the report and its JSON and
    Markdown files in ``results``."""
    docker = shutil.which("docker")
    if docker is None:
        raise PipglrError("invoke bench drives jobs with a docker CLI client: install one")
    with engine.client() as podman:
        settings = suite.settings_from_labels(engine.image_labels(podman, image))
    outers = usable_outers(modes, rootless_podman, image)
    if not outers:
        raise PipglrError("no usable outer podman: run scripts/prepare-test-host.sh")
    job_image = builds.ensure_job_image(job_base)

    def rebuild() -> object:
        return imagebuild.build_image(
            settings, image, build_dir, runner_binary=runner_binary,
            allow_standin=standin, out=open(os.devnull, "w"),
        )  # fmt: skip

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")

    def written(partial: Report) -> object:
        return suite.write(partial, results, stamp)

    with job_driver() as driver:
        report = suite.run_all(
            outers, image, settings, quick, docker,
            rebuild if (standin or runner_binary) else None,
            driver, job_image, written,
        )  # fmt: skip
    json_path, md_path = suite.write(report, results, stamp)
    return report, json_path, md_path
