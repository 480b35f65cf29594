"""pipglr.bench and the job bench (tests/harness/jobbench.py): statistics, ratios, reports
and why samples failed (no engine; no timings asserted)."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipglr import layout
from pipglr.bench import builds as benchbuild
from pipglr.bench import container as benchouter
from pipglr.bench import jobs as benchjobs
from pipglr.bench import report as benchreport
from pipglr.bench import samehost as benchhost
from pipglr.bench import suite as bench
from pipglr.ops.outer import Outer
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
    benchreport.collect(m, _done("1500000000\nFAIL\nnoise\n500000000\n"))
    assert m.samples == [1.5, 0.5] and m.failures == 1


def test_collect_failed_command_notes_the_error() -> None:
    """A command that failed with no samples is a failure with its last error line."""
    m = bench.Measurement("x", "rootful", "s")
    benchreport.collect(m, _done("", 1))
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


def test_interleaved_ratio_carries_the_per_round_spread() -> None:
    """A paired ratio keeps the quartiles of the per-round ratios and says whether they
    resolve the difference (all on one side of 1.00x); an unpaired one has no spread."""
    report = bench.Report({})
    nested = bench.Measurement("nested", "rootful", "s", [1.2, 1.3, 1.1, 1.25, 1.2])
    host = bench.Measurement("host", "rootful", "s", [1.0, 1.0, 1.0, 1.0, 1.0])
    clear = report.ratio("files", "rootful", nested, host, paired=True)
    assert clear.rounds == 5 and clear.q1 == pytest.approx(1.2) and clear.q3 == 1.25
    assert clear.spread == "1.20-1.25x over 5 rounds: resolved", clear.spread
    noisy = bench.Measurement("noisy", "rootful", "s", [0.5, 2.0, 1.0, 1.5, 0.8])
    assert report.ratio("noise", "rootful", noisy, host, paired=True).spread.endswith(
        "within spread"
    )
    assert report.ratio("start", "rootful", nested, host).spread == "-"
    markdown = report.to_markdown()
    assert "| rootful | files (nested / host) | 1.20x | 1.20-1.25x over 5 rounds: resolved |" in (
        markdown
    ), markdown


def test_paired_quartiles_need_three_rounds() -> None:
    """Under three pairs there is no spread to speak of."""
    assert benchreport.paired_quartiles([1.0, 2.0], [1.0, 1.0]) is None
    assert benchreport.paired_quartiles([2.0, 2.0, 2.0], [1.0, 1.0, 1.0]) == (2.0, 2.0)


def test_interleaving_rotates_the_order_of_the_sides() -> None:
    """Round n starts with side n (mod the number of sides): no side always goes first."""
    sides = ["nested", "host", "same"]
    orders = [benchjobs.rotated(sides, n) for n in range(4)]
    assert orders == [["nested", "host", "same"], ["host", "same", "nested"],
                      ["same", "nested", "host"], ["nested", "host", "same"]]  # fmt: skip


def test_notes_are_part_of_the_markdown_report() -> None:
    """How rows were measured (outer options, same-version host) is printed with them."""
    report = bench.Report({}, notes=["builds: privileged outer for the privileged row"])
    assert "## Notes\n\n- builds: privileged outer" in report.to_markdown()


def test_build_script_builds_with_the_job_images_own_defaults() -> None:
    """The build in a job is a plain ``podman build`` (no vfs, no isolation flag: the
    job image's storage.conf and BUILDAH_ISOLATION decide), timed per build, and says
    which storage and isolation it ran on."""
    script = benchbuild.build_script(4)
    assert "podman build -q --no-cache -t b$i /tmp/bctx" in script
    assert "vfs" not in script and "--isolation" not in script
    assert "for i in $(seq 4)" in script and 'echo "info: storage' in script
    assert "FROM localhost/bench-base" in script
    assert benchbuild.job_image_build_command("localhost/pipglr-base:trixie") == [
        "podman", "build", "--build-arg", "BASE_IMAGE=localhost/pipglr-base:trixie",
        "-t", benchbuild.JOB_IMAGE, str(benchbuild.JOB_IMAGE_DIR),
    ]  # fmt: skip
    assert (benchbuild.JOB_IMAGE_DIR / "Containerfile").is_file()


@dataclass(frozen=True)
class RecordingOuter(Outer):
    """An outer podman that records its commands and answers every one with success."""

    calls: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, *args: str, check: bool = True, cwd: Path | None = None,
            input: bytes | str | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:  # fmt: skip
        self.calls.append(args)
        return subprocess.CompletedProcess(list(args), 0, "info: storage overlay\n1000000000\n", "")

    def install_docker_cli(self, container: str, docker_cli: str) -> None:
        self.calls.append(("install-docker-cli", container))


def _runs(outer: RecordingOuter) -> list[tuple[str, ...]]:
    return [c for c in outer.calls if c[:2] == ("run", "--detach")]


def test_the_outer_restarts_with_the_options_each_build_job_needs() -> None:
    """Unprivileged build: a job with no options in an outer with NESTING_OPTIONS;
    privileged build: ``--privileged`` in an outer with PRIVILEGED_NESTING_OPTIONS —
    whatever the image's NESTED_PRIVILEGED default says; the docker CLI comes back."""
    outer = RecordingOuter("rootful", ("podman",))
    box = benchouter.BenchContainer(outer, "img", BuildSettings(nested_privileged=True))
    box.docker_cli = "/usr/bin/docker"
    box.start()
    builds = benchbuild.BuildBench(box, 2, None)
    unprivileged = builds.nested(privileged=False)
    privileged = builds.nested(privileged=True)
    first, second, third = _runs(outer)
    assert "--privileged" in first, "the image's settings: privileged outer"
    assert "--privileged" not in second and "seccomp=unconfined" in second
    assert "--privileged" in third
    jobs = [c for c in outer.calls if c[0] == "exec" and "sh" in c and "-c" in c]
    unprivileged_job, privileged_job = (c[-1] for c in jobs if "--entrypoint" in c[-1])
    assert "--privileged" not in unprivileged_job and benchbuild.JOB_IMAGE in unprivileged_job
    assert "run --rm -i --privileged --entrypoint sh" in privileged_job
    assert outer.calls.count(("install-docker-cli", benchouter.BENCH_NAME)) == 3
    assert unprivileged.name == "image build (unprivileged job, no options)"
    assert unprivileged.samples == [1.0] and unprivileged.note == "storage overlay"
    assert privileged.name == "image build (privileged job)" and box.privileged


def test_same_version_host_is_the_image_run_privileged_with_its_api_published() -> None:
    """The playing container: the image, --privileged, systemd, its own storage volume,
    the API directory from the host, pipglr's guard off and root's consent given."""
    args = benchhost.run_args("localhost/pipglr:test", Path("/var/tmp/api"))
    assert args[-1] == "localhost/pipglr:test" and "--privileged" in args
    assert f"/var/tmp/api:{benchhost.API_DIR}" in args
    assert f"{benchhost.SAME_HOST_VOLUME}:/var/lib/containers" in args
    assert layout.HOST_IDS_CONSENT in args and "PIPGLR_EGRESS_GUARD=off" in args


class _Family:
    """Stand-ins for the measurement families: fixed samples, no engine."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.mode = "rootful"

    def _m(self, name: str, value: float) -> bench.Measurement:
        return bench.Measurement(name, self.mode, "s", [value])

    def job_start(self) -> tuple[bench.Measurement, bench.Measurement]:
        return self._m("start nested", 0.2), self._m("start host", 0.2)

    def file_work(self, rounds: int) -> dict[str, bench.Measurement]:
        return {side: self._m(f"files {side}", 1.0) for side in ("nested", "host", "same")}

    def run(self, rounds: int) -> dict[str, bench.Measurement]:
        values = {"custom": 1.5, "docker": 0.5, "host": 0.25}
        return {side: self._m(f"lifecycle {side}", value) for side, value in values.items()}

    def concurrency(self, levels: Iterable[int]) -> list[bench.Measurement]:
        return []

    def nested(self, privileged: bool) -> bench.Measurement:
        return self._m("build privileged" if privileged else "build unprivileged", 2.0)

    def host(self) -> bench.Measurement:
        return self._m("build host", 1.0)

    def same_host(self) -> bench.Measurement:
        return self._m("build same", 0.8)


def test_a_quick_run_reports_privileged_and_unprivileged_builds_side_by_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--quick keeps the image-build rows: unprivileged and privileged job against the
    host and against the same-version host, beside the file-heavy job's two ratios."""
    monkeypatch.setattr(bench, "JobBench", _Family)
    monkeypatch.setattr(bench, "BuildBench", _Family)
    monkeypatch.setattr(bench, "LifecycleBench", _Family)

    class Box:
        outer = Outer("rootful", ("podman",))
        image = "img"

        def prepare(self, docker_cli: str) -> None: ...
        def load(self, image: str) -> None: ...
        def inner_podman(self) -> str:
            return "5.4.2"

        def start(self, privileged: bool | None = None) -> float:
            return 1.0

    class Same:
        def start(self, *images: str) -> None: ...
        def podman_version(self) -> str:
            return "5.4.2"

    report = bench.Report({})
    bench._run_mode(report, Box(), Same(), 3, True, "docker", None, "job")  # type: ignore[arg-type]
    names = [r.name for r in report.ratios]
    assert names == [
        "job start", "custom-executor job lifecycle, nested / host",
        "docker-API job run, nested / host", "custom-executor lifecycle / docker-API run",
        "file-heavy job", "file-heavy job, nesting alone",
        "image build, unprivileged job", "image build, privileged job",
        "image build, unprivileged job, nesting alone",
        "image build, privileged job, nesting alone",
    ], names  # fmt: skip
    assert [r.value for r in report.ratios[1:4]] == [6.0, 2.0, 3.0]
    assert report.ratios[6].value == 2.0 and report.ratios[8].value == 2.5
    assert report.machine["same-version host podman (rootful)"] == "5.4.2"


def test_the_same_version_host_keeps_rlimits_under_the_hard_limits() -> None:
    """Its podman sets rlimits no higher than the hard limits it runs under (unlimited
    ones left alone) and uses cgroupfs."""
    conf = benchhost.engine_conf(20000, -1)
    assert 'default_ulimits = ["nofile=20000:20000"]' in conf
    assert 'cgroup_manager = "cgroupfs"' in conf
    assert '"nproc=4096:4096"' in benchhost.engine_conf(20000, 4096)


def test_a_failed_build_sample_keeps_its_reason() -> None:
    """``FAIL reason`` lines (a build's last error line) are failures with that reason."""
    m = bench.Measurement("x", "rootful", "s")
    benchreport.collect(m, _done("info: storage overlay\nFAIL Error: setrlimit\n2000000000\n"))
    assert m.samples == [2.0] and m.problems == ["Error: setrlimit"], m.problems
