"""Benchmarks: what nesting costs against host podman, measured in one run.

Each :class:`Measurement` keeps its raw samples; reports show median, min and max,
and a :class:`Ratio` divides the median of a nested measurement by its host
counterpart. Timings of work inside a container are taken *inside* that container
(``date +%s%N`` around the command), so ``podman exec`` overhead is not counted.
Nothing here asserts a timing: benchmarks measure, tests check behaviour.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pipglr import labels, layout
from pipglr.errors import EngineError
from pipglr.outer import DOCKER_CLI, Outer
from pipglr.settings import BuildSettings

BENCH_NAME = "pipglr-bench"
#: Failure reasons kept per measurement.
MAX_PROBLEMS = 5
BENCH_SECRET = "pipglr-bench-config"
BENCH_VOLUMES = (layout.STORAGE_VOLUME, layout.CACHE_VOLUME, layout.RUNNER_VOLUME)
#: A syntactically valid config whose runner never reaches a GitLab (none is needed).
BENCH_CONFIG = f"""concurrent = 8
check_interval = 30

[[runners]]
  name = "bench"
  url = "https://gitlab.invalid/"
  token = "glrt-pipglr-bench-not-a-token"
  executor = "docker"
  [runners.docker]
    host = "{layout.DOCKER_HOST}"
    image = "bench"
"""

#: Generates ~10k small files, archives, unpacks and checksums them; prints the
#: nanoseconds the work took, measured inside the container.
FILE_WORK = r"""
s=$(date +%s%N)
mkdir -p /tmp/w/src && cd /tmp/w/src
i=0; while [ $i -lt 100 ]; do mkdir d$i; i=$((i+1)); done
seq 0 9999 | while read n; do echo "file $n" > d$((n % 100))/f$n; done
cd /tmp/w && tar cf src.tar src && mkdir out && tar xf src.tar -C out
find out -type f -exec sha256sum {} + | sha256sum >/dev/null
e=$(date +%s%N); echo $((e - s))
"""

#: A small multi-step build; ``base`` is a minimal image made from the job's own
#: shell and coreutils (no registry needed).
CONTAINERFILE = """FROM localhost/bench-base
RUN mkdir -p /app && echo one > /app/a
COPY data.txt /app/data.txt
RUN cat /app/a /app/data.txt > /app/b
RUN sh -c 'i=0; while [ $i -lt 200 ]; do echo $i >> /app/c; i=$((i+1)); done'
"""
MAKE_BASE = r"""set -e
rm -rf /tmp/bb && mkdir -p /tmp/bb
for f in /bin/sh /usr/bin/cat /usr/bin/mkdir /usr/bin/echo \
         $(ldd /bin/sh /usr/bin/cat /usr/bin/mkdir | grep -o '/[^ :]*'); do
    cp --parents -L "$f" /tmp/bb/
done
tar -C /tmp/bb -c . | PODMAN import - localhost/bench-base >/dev/null
mkdir -p /tmp/bctx && echo data > /tmp/bctx/data.txt
"""


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
    """``numerator`` median divided by ``denominator`` median."""

    name: str
    mode: str
    numerator: str
    denominator: str
    value: float


@dataclass
class Report:
    """Everything one ``invoke bench`` run measured."""

    machine: dict[str, str]
    measurements: list[Measurement] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)

    def add(self, measurement: Measurement) -> Measurement:
        self.measurements.append(measurement)
        print(f"  {measurement.mode:8} {measurement.name}: median {_fmt(measurement)}", flush=True)
        for why in measurement.problems:
            print(f"           failed: {why}", flush=True)
        return measurement

    def ratio(self, name: str, mode: str, top: Measurement, bottom: Measurement) -> None:
        value = top.median / bottom.median if bottom.median else float("nan")
        self.ratios.append(Ratio(name, mode, top.name, bottom.name, value))

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
        lines += ["", "| mode | ratio | value |", "| --- | --- | --- |"]
        for r in self.ratios:
            lines.append(
                f"| {r.mode} | {r.name} ({r.numerator} / {r.denominator}) | {r.value:.2f}x |"
            )
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


def _ns_to_s(text: str) -> float:
    return int(text.strip().splitlines()[-1]) / 1e9


class JobDriver(Protocol):
    """Runs real CI jobs for the job-lifecycle measurement (a GitLab and a runner:
    ``tests/harness/jobbench.py`` provides them with the fake GitLab)."""

    def nested_config(self) -> str:
        """config.toml for the bench container's runner."""

    def lifecycle(
        self, mode: str, podman: Sequence[str], repeat: int, levels: Sequence[int]
    ) -> list[tuple[Measurement, Measurement]]:
        """(nested, host) measurement pairs for one outer mode."""


class Bench:
    """One outer mode's benchmark run against a pipglr image."""

    def __init__(
        self, outer: Outer, image: str, settings: BuildSettings, repeat: int,
        config: str = BENCH_CONFIG,
    ) -> None:  # fmt: skip
        self.outer = outer
        self.image = image
        self.settings = settings
        self.repeat = repeat
        self.config = config

    # -- outer container lifecycle -------------------------------------------------
    def start(self) -> float:
        """Start the bench instance from the run label; return seconds until ready."""
        self.stop()
        started = time.monotonic()
        self.outer.run(
            *labels.second_instance(
                self.settings,
                self.image,
                BENCH_NAME,
                BENCH_SECRET,
                self.outer.mode == "rootful",
            )[1:]
        )
        ready = [
            "sh", "-c",
            f"systemctl is-active -q {layout.RUNNER_SERVICE_UNIT} && runuser -u "
            f"{layout.RUNNER.name} -- {layout.PYTHON} -m {layout.GUEST_MODULE} ping",
        ]  # fmt: skip
        deadline = started + 120
        while True:
            probe = self.outer.exec(BENCH_NAME, *ready, check=False)
            if probe.returncode == 0:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise EngineError(f"bench container not ready after 120s: {probe.stderr}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.outer.run("rm", "--force", "--ignore", BENCH_NAME, check=False)

    def prepare(self, docker_cli: str) -> None:
        """Secret, docker CLI and job image (the image under test) for the runs."""
        self.outer.run("secret", "rm", BENCH_SECRET, check=False)
        self.outer.run("secret", "create", BENCH_SECRET, "-", input=self.config)
        for volume in BENCH_VOLUMES:
            self.outer.run("volume", "rm", "--force", f"{BENCH_NAME}-{volume}", check=False)
        self.start()
        self.outer.install_docker_cli(BENCH_NAME, docker_cli)
        self.outer.load_nested_image(BENCH_NAME, self.image)

    def nested(self, script: str, *docker_args: str) -> subprocess.CompletedProcess[str]:
        """Run ``sh -c script`` as runner in the outer container (docker CLI available)."""
        return self.outer.exec(
            BENCH_NAME, "sh", "-c", script, user=layout.RUNNER.name, check=False, timeout=1800
        )

    def nested_job(
        self, script: str, *options: str, timeout: float = 1800
    ) -> subprocess.CompletedProcess[str]:
        """A nested job through the API running ``script`` (stdin) with ``sh``."""
        run = self.docker_cmd("run", "--rm", "-i", *options, "--entrypoint", "sh", self.image)
        return self.outer.exec(
            BENCH_NAME, "sh", "-c", run, user=layout.RUNNER.name, input=script,
            check=False, timeout=timeout,
        )  # fmt: skip

    def host_job(self, script: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        """The same job in a container of the host podman (no nesting)."""
        return self.outer.run(
            "run", "--rm", "-i", "--entrypoint", "sh", self.image,
            input=script, check=False, timeout=timeout,
        )  # fmt: skip

    def docker_cmd(self, *args: str) -> str:
        return shlex.join([DOCKER_CLI, "-H", layout.DOCKER_HOST, *args])

    # -- measurements ------------------------------------------------------------
    def job_start(self) -> tuple[Measurement, Measurement]:
        """`run --rm IMAGE true` through the inner API vs through host podman."""
        nested = Measurement("job start (docker API, nested)", self.outer.mode, "s")
        run = self.docker_cmd("run", "--rm", "--entrypoint", "true", self.image)
        loop = (
            f"for i in $(seq {self.repeat}); do s=$(date +%s%N); {run} || echo FAIL; "
            "e=$(date +%s%N); echo $((e - s)); done"
        )
        self._collect(nested, self.nested(loop))
        host = Measurement("job start (host podman)", self.outer.mode, "s")
        for _ in range(self.repeat):
            s = time.monotonic()
            result = self.outer.run("run", "--rm", "--entrypoint", "true", self.image, check=False)
            self._sample(host, result.returncode == 0, time.monotonic() - s)
        return nested, host

    def file_work(self) -> tuple[Measurement, Measurement]:
        """~10k small files: archive, unpack, checksum — nested job vs host container."""
        nested = Measurement("10k small files (nested job)", self.outer.mode, "s")
        for _ in range(self.repeat):
            self._sample_ns(nested, self.nested_job(FILE_WORK, timeout=900))
        host = Measurement("10k small files (host container)", self.outer.mode, "s")
        for _ in range(self.repeat):
            self._sample_ns(host, self.host_job(FILE_WORK, timeout=900))
        return nested, host

    def storage_drivers(self) -> tuple[Measurement, Measurement]:
        """The same file work in nested podman on native overlay vs fuse-overlayfs.

        Both run with the podman CLI as user podman (separate graph roots on the
        storage volume), so only the storage driver differs.
        """
        results = []
        for label, extra in (
            ("native overlay", []),
            ("fuse-overlayfs", ["--storage-opt", "overlay.mount_program=/usr/bin/fuse-overlayfs"]),
        ):
            root = f"{layout.STORAGE_MOUNT}/bench-{label.split()[0]}"
            podman = ["podman", "--root", root, "--storage-driver", "overlay", *extra]
            self.outer.pipe_from(
                [*self.outer.podman, "save", self.image],
                "exec",
                "-i",
                "--user",
                layout.PODMAN.name,
                BENCH_NAME,
                *podman,
                "load",
            )
            m = Measurement(f"10k small files (nested, {label})", self.outer.mode, "s")
            for _ in range(min(self.repeat, 3)):
                result = self.outer.exec(
                    BENCH_NAME,
                    *podman,
                    "run",
                    "--rm",
                    "-i",
                    "--cgroups=disabled",
                    "--network=none",
                    "--entrypoint",
                    "sh",
                    self.image,
                    user=layout.PODMAN.name,
                    input=FILE_WORK,
                    check=False,
                    timeout=900,
                )
                self._sample_ns(m, result)
            self.outer.exec(BENCH_NAME, "rm", "-rf", root, check=False)
            results.append(m)
        return results[0], results[1]

    def nested_build(self) -> tuple[Measurement, Measurement]:
        """A small multi-step Containerfile: in a privileged nested job vs on the host."""
        containerfile = CONTAINERFILE.replace("'", "'\\''")
        podman_job = "podman --storage-driver vfs"
        job = (
            MAKE_BASE.replace("PODMAN", podman_job)
            + f"printf '%s' '{containerfile}' > /tmp/bctx/Containerfile\n"
            + f"for i in $(seq {self.repeat}); do s=$(date +%s%N); "
            + f"{podman_job} build -q --isolation chroot --no-cache -t b$i /tmp/bctx "
            + ">/dev/null || echo FAIL; e=$(date +%s%N); echo $((e - s)); done\n"
        )
        nested = Measurement("image build (privileged nested job, vfs)", self.outer.mode, "s")
        if not self.settings.nested_privileged:
            nested.note = "skipped: NESTED_PRIVILEGED=false"
        else:
            self._collect(nested, self.nested_job(job, "--privileged"))
        host = Measurement("image build (host podman)", self.outer.mode, "s")
        with tempfile.TemporaryDirectory(prefix="pipglr-bench-", dir="/var/tmp") as tmp:
            ctx = Path(tmp)
            ctx.chmod(0o777)
            (ctx / "Containerfile").write_text(CONTAINERFILE)
            (ctx / "data.txt").write_text("data\n")
            self._host_base()
            for _ in range(self.repeat):
                s = time.monotonic()
                result = self.outer.run(
                    "build", "-q", "--no-cache", "-t", "pipglr-bench-b", str(ctx), check=False
                )
                self._sample(host, result.returncode == 0, time.monotonic() - s)
        self.outer.run("rmi", "--force", "pipglr-bench-b", "localhost/bench-base", check=False)
        return nested, host

    def _host_base(self) -> None:
        """Import the same minimal base into the host engine (made inside a container)."""
        script = MAKE_BASE.split("tar -C")[0] + "tar -C /tmp/bb -c . | base64 -w0\n"
        result = self.host_job(script)
        if result.returncode != 0:
            raise EngineError(f"making the bench base image failed: {result.stderr.strip()}")
        tar = result.stdout
        data = base64.b64decode(tar)
        with tempfile.NamedTemporaryFile(suffix=".tar", dir="/var/tmp") as handle:
            handle.write(data)
            handle.flush()
            os.chmod(handle.name, 0o644)
            self.outer.run("import", handle.name, "localhost/bench-base")

    def concurrency(self, levels: Sequence[int]) -> list[Measurement]:
        """K nested jobs at once: wall time and failures."""
        results = []
        run = self.docker_cmd(
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            self.image,
            "-c",
            "seq 1 200000 | sha256sum >/dev/null",
        )
        for k in levels:
            m = Measurement(f"{k} concurrent nested jobs (wall)", self.outer.mode, "s")
            script = (
                f"s=$(date +%s%N); for i in $(seq {k}); do ( {run} || echo FAIL ) & done; "
                "wait; e=$(date +%s%N); echo $((e - s))"
            )
            for _ in range(max(1, self.repeat // 2)):
                self._collect(m, self.nested(script))
            results.append(m)
        return results

    # -- sample helpers --------------------------------------------------------------
    @staticmethod
    def _sample(m: Measurement, ok: bool, seconds: float) -> None:
        if ok:
            m.samples.append(seconds)
        else:
            m.failures += 1

    @staticmethod
    def _sample_ns(m: Measurement, result: subprocess.CompletedProcess[str]) -> None:
        try:
            ok = result.returncode == 0
            Bench._sample(m, ok, _ns_to_s(result.stdout) if ok else 0.0)
        except (ValueError, IndexError):
            m.failures += 1

    @staticmethod
    def _collect(m: Measurement, result: subprocess.CompletedProcess[str]) -> None:
        """Read one nanosecond figure per line; FAIL lines count as failures."""
        for line in result.stdout.splitlines():
            if line.strip() == "FAIL":
                m.failures += 1
            elif line.strip().isdigit():
                m.samples.append(int(line) / 1e9)
        if result.returncode != 0 and not m.samples:
            m.failures += 1
            m.note = (result.stderr.strip().splitlines() or ["failed"])[-1][:120]


def settings_from_labels(image_labels: dict[str, str]) -> BuildSettings:
    """The build settings an image was made with, read back from its labels."""
    prefix = layout.LABEL_BUILD_ARG_PREFIX
    return BuildSettings.from_mapping(
        {k.removeprefix(prefix).upper(): v for k, v in image_labels.items() if k.startswith(prefix)}
    )


def run_all(
    outers: Sequence[Outer],
    image: str,
    settings: BuildSettings,
    quick: bool,
    docker_cli: str,
    rebuild: Callable[[], object] | None = None,
    jobs: JobDriver | None = None,
) -> Report:
    """Run every benchmark (or the quick subset) for each outer mode."""
    repeat = 3 if quick else 7
    report = Report(machine_facts(outers, image))
    report.machine["run"] = "quick" if quick else "full"
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
        config = jobs.nested_config() if jobs else BENCH_CONFIG
        bench = Bench(outer, image, settings, repeat, config)
        try:
            bench.prepare(docker_cli)
            inner = outer.exec(
                BENCH_NAME, "podman", "info", "--format",
                "{{.Version.Version}}, storage {{.Store.GraphDriverName}}, runtime "
                "{{.Host.OCIRuntime.Name}}", user=layout.PODMAN.name, check=False,
            ).stdout.strip()  # fmt: skip
            report.machine[f"nested podman ({outer.mode})"] = inner or "unknown"
            ready = Measurement("outer start -> runner active, socket answers", outer.mode, "s")
            for _ in range(2 if quick else 5):
                ready.samples.append(bench.start())
            report.add(ready)
            outer.install_docker_cli(BENCH_NAME, docker_cli)  # restarts dropped it
            nested, host = bench.job_start()
            report.ratio("job start", outer.mode, report.add(nested), report.add(host))
            nested, host = bench.file_work()
            report.ratio("file-heavy job", outer.mode, report.add(nested), report.add(host))
            if not quick:
                native, fuse = bench.storage_drivers()
                report.ratio("nested storage", outer.mode, report.add(native), report.add(fuse))
                nested, host = bench.nested_build()
                report.ratio("image build", outer.mode, report.add(nested), report.add(host))
            for m in bench.concurrency((1, 4) if quick else (1, 2, 4, 8)):
                report.add(m)
            if jobs is not None:
                levels = (4,) if quick else (1, 4, 8)
                for nested, host in jobs.lifecycle(outer.mode, outer.podman, repeat, levels):
                    report.ratio(nested.name.replace(" (nested)", ""), outer.mode,
                                 report.add(nested), report.add(host))  # fmt: skip
        finally:
            bench.stop()
            outer.run("secret", "rm", BENCH_SECRET, check=False)
            for volume in BENCH_VOLUMES:
                outer.run("volume", "rm", "--force", f"{BENCH_NAME}-{volume}", check=False)
    return report


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


def write(report: Report, directory: Path) -> tuple[Path, Path]:
    """Write the JSON and Markdown reports; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = directory / f"bench-{stamp}.json"
    md_path = directory / f"bench-{stamp}.md"
    json_path.write_text(report.to_json())
    md_path.write_text(report.to_markdown())
    return json_path, md_path


def log(message: str) -> None:
    """Progress line on stderr."""
    print(message, file=sys.stderr, flush=True)
