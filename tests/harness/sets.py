"""Run the engine suite as concurrent sets: ``python -m tests.harness.sets [PYTEST ARGS]``.

Most of the engine suite's time is spent waiting — for systemd to boot, for nested
containers, for the runner's next poll — not computing, so on a 2-core CI machine
the three independent parts of the suite run side by side:

- ``rootful``: every test of the rootful outer container;
- ``rootless``: the same for the rootless outer container (another podman, another
  user's storage: no name is shared with the rootful set);
- ``none``: the mode-independent tests (image chains, publishing, the local
  pipeline, auto-update), which use images and containers of their own.

What the sets would otherwise each make, the coordinator makes once before they
start and hands over: the test images (:mod:`tests.harness.images`, built here, taken
as built by the sets), the fake GitLab and the LAN test hosts (network namespaces
with fixed names and addresses, served from here). Runner tokens a test starts a
runner with are per set (:func:`tests.harness.gitlab.token`).

Each set is one pytest process (``PIPGLR_OUTER_SET`` selects its tests); its lines
are streamed with the set's name in front, its full output and JUnit XML go to
``build/test-logs/engine-SET.{log,xml}``, and a table of counts and wall times ends
the run. Without root (no network namespaces) the suite runs as one plain pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOG_DIR = REPO / "build" / "test-logs"
#: The set a pytest process runs (``rootful``, ``rootless`` or ``none``); unset: all.
SET_ENV = "PIPGLR_OUTER_SET"
#: Set by the coordinator: the images are built and the shared test hosts served.
SHARED_ENV = "PIPGLR_ENGINE_SHARED"
SETS = ("rootful", "rootless", "none")


def shared() -> bool:
    """Whether this pytest process is one set of a coordinated run."""
    return os.environ.get(SHARED_ENV) == "1"


def wanted_set() -> str | None:
    """The set this pytest process runs, or None for every test."""
    value = os.environ.get(SET_ENV) or None
    if value is not None and value not in SETS:
        raise ValueError(f"{SET_ENV} must be one of {', '.join(SETS)}, not {value!r}")
    return value


def set_of(params: dict[str, object]) -> str:
    """The set of a test from its parameters: its outer mode, else ``none``."""
    mode = params.get("outer")
    return str(mode) if mode in SETS[:2] else "none"


@dataclass
class SetRun:
    """One set's pytest process and what it left."""

    name: str
    process: subprocess.Popen[str]
    log: Path
    xml: Path
    started: float
    ended: float = 0.0

    def summary(self) -> dict[str, int | float]:
        """Counts from the JUnit XML (all zero when pytest wrote none)."""
        keys = ("tests", "failures", "errors", "skipped")
        counts: dict[str, int | float] = dict.fromkeys(keys, 0)
        if self.xml.exists():
            root = ET.parse(self.xml).getroot()
            suite = root.find("testsuite") if root.tag == "testsuites" else root
            if suite is not None:
                for key in counts:
                    counts[key] = int(suite.get(key, "0"))
        counts["seconds"] = round(self.ended - self.started, 1)
        return counts


def _stream(run: SetRun, out: threading.Lock) -> None:
    """Copy the set's output to its log and, prefixed, to stdout."""
    assert run.process.stdout is not None
    width = max(len(name) for name in SETS)
    with run.log.open("w") as log:
        for line in run.process.stdout:
            log.write(line)
            log.flush()
            with out:
                sys.stdout.write(f"[{run.name:<{width}}] {line}")
                sys.stdout.flush()
    run.process.wait()
    run.ended = time.monotonic()


def start_set(name: str, pytest_args: Sequence[str]) -> SetRun:
    """Start one set's pytest process."""
    log, xml = LOG_DIR / f"engine-{name}.log", LOG_DIR / f"engine-{name}.xml"
    env = {**os.environ, SET_ENV: name, SHARED_ENV: "1", "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "pytest", "tests/image", "-v", "-p", "no:cacheprovider",
            f"--junitxml={xml}", "--durations=10", *pytest_args]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return SetRun(name, process, log, xml, time.monotonic())


@contextmanager
def shared_services() -> Iterator[None]:
    """The fake GitLab, the LAN test hosts and the company network, for every set, and
    root podman's bridge kept at one MAC (:mod:`tests.harness.bridgepin`); at the end, every job's
    name, state and lifecycle durations go to ``build/test-logs/jobs.json`` (where the
    suite's job time goes)."""
    from tests.harness import bridgepin, companynet, gitlab, lan

    with ExitStack() as stack:
        stack.enter_context(bridgepin.pinned())
        client = stack.enter_context(gitlab.serving(LOG_DIR / "fake-gitlab.log"))
        stack.enter_context(lan.serving())
        # One per machine (its namespace): served here, attached by the sets.
        company = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="pipglr-companynet-", dir="/var/tmp")))  # fmt: skip
        stack.enter_context(companynet.serving(company, state=companynet.SHARED_STATE))
        try:
            yield
        finally:
            jobs = client.jobs()
            (LOG_DIR / "jobs.json").write_text(json.dumps(jobs, indent=1) + "\n")


def build_images() -> None:
    """Build every image of the catalog, with progress."""
    from tests.harness import images

    base = images.catalog_base()
    # The job images (apt and dpkg, mostly waiting) build beside the pipglr images.
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    side = {
        images.JOB_IMAGE: (images.job_image_argv(base), LOG_DIR / "job-image-build.log"),
        images.CURL_JOB_IMAGE: (
            images.curl_job_image_argv(base),
            LOG_DIR / "curl-job-image-build.log",
        ),
    }
    builds: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    started = time.monotonic()
    for tag, (argv, log) in side.items():
        print(f"== building {tag} on {base} (log {log})", flush=True)
        with log.open("wb") as out:
            builds[tag] = (subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT), log)
    try:
        for tag, settings in images.CATALOG.items():
            begun = time.monotonic()
            print(f"== building {tag}", flush=True)
            images.build_test_image(settings, tag)
            print(f"== built {tag} in {time.monotonic() - begun:.0f}s", flush=True)
    except BaseException:
        for process, _ in builds.values():
            process.terminate()
        raise
    failed = [f"{tag} (see {log})" for tag, (process, log) in builds.items() if process.wait()]
    if failed:
        raise images.Unavailable(f"building failed: {', '.join(failed)}")
    took = time.monotonic() - started
    print(f"== built {', '.join(builds)} in {took:.0f}s (beside the others)", flush=True)


def start_build() -> tuple[subprocess.Popen[bytes], Path]:
    """Build the catalog in a process of its own, its output in a log: ``invoke test``
    runs the lint, type and unit checks meanwhile (they need no image)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / "engine-build.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "tests.harness.sets", "--build-only"],
                                   cwd=REPO, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    return process, log


def finish_build(process: subprocess.Popen[bytes], log: Path) -> int:
    """Follow the build's log until it ends; its exit status."""
    with log.open("rb") as shown:
        while True:
            chunk = shown.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            elif process.poll() is not None:
                return process.returncode
            else:
                time.sleep(0.5)


def run_sets(names: Sequence[str], pytest_args: Sequence[str], build: bool = True) -> int:
    """Build (unless built already), serve, run the sets side by side; 0 when every set
    passed."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if build:
        build_images()
    with shared_services():
        print(f"== shared test hosts up; starting sets {', '.join(names)}", flush=True)
        lock = threading.Lock()
        runs = [start_set(name, pytest_args) for name in names]
        threads = [threading.Thread(target=_stream, args=(run, lock)) for run in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    print(f"\n== engine sets done after {time.monotonic() - started:.0f}s")
    print("| set | tests | failures | errors | skipped | wall s | exit |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        s = run.summary()
        print(f"| {run.name} | {s['tests']} | {s['failures']} | {s['errors']} | "
              f"{s['skipped']} | {s['seconds']} | {run.process.returncode} |")  # fmt: skip
    failed = [run.name for run in runs if run.process.returncode not in (0, 5)]
    if failed:
        print(f"== failed sets: {', '.join(failed)} (logs: build/test-logs/engine-SET.log)")
    return 1 if failed else 0


def main(argv: Sequence[str]) -> int:
    """Entry point: ``--build-only``, or ``[--no-build] [--sets a,b]`` (default all)
    then pytest arguments."""
    args = list(argv)
    if args == ["--build-only"]:
        build_images()
        return 0
    build = args[:1] != ["--no-build"]
    args = args if build else args[1:]
    names: Sequence[str] = SETS
    if args[:1] == ["--sets"] and len(args) > 1:
        names, args = args[1].split(","), args[2:]
    unknown = set(names) - set(SETS)
    if unknown:
        print(f"unknown set(s) {', '.join(sorted(unknown))}: use {', '.join(SETS)}")
        return 2
    if os.geteuid() != 0:
        print("== not root: no test network namespaces; running the engine suite as one pytest")
        return subprocess.run([sys.executable, "-m", "pytest", "tests/image", *args],
                              cwd=REPO, check=False).returncode  # fmt: skip
    return run_sets(names, args, build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
