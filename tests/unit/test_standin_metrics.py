"""The stand-in runner's metrics and debug server (commands/multi.go
``setupMetricsAndDebugServer``, ``listenAddress``; commands/builds_helper.go ``Collect``,
``ListJobsHandler``)."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.standin.gitlab_runner import config, metrics
from tests.standin.gitlab_runner.build import Build
from tests.standin.gitlab_runner.buildinfo import BuildInfo, short_token
from tests.standin.gitlab_runner.jobspec import Job
from tests.standin.gitlab_runner.multi import RunCommand
from tests.standin.gitlab_runner.trace import JobTrace
from tests.unit.test_standin_executor import TOKEN, StubGitLab, payload

SYSTEM_ID = "s_0123456789ab"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    """Every sample of the exposition text, by name and labels; with
    prometheus_client's parser when installed, else a small one for this output."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        found: Series = {}
        pattern = re.compile(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$")
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            match = pattern.match(line)
            assert match, f"not a sample line: {line!r}"
            labels = re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match.group(2) or "")
            found[(match.group(1), frozenset(labels))] = float(match.group(3))
        return found
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(series: Series, metric: str, **labels: str) -> float | None:
    """The sample whose labels include ``labels`` (exactly one), or None."""
    hits = [v for (n, ls), v in series.items() if n == metric and set(labels.items()) <= ls]
    assert len(hits) <= 1, (metric, labels, hits)
    return hits[0] if hits else None


def get(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def command_for(tmp_path: Path, text: str, flag: str = "") -> RunCommand:
    path = tmp_path / "config.toml"
    path.write_text(text)
    command = RunCommand(path, StubGitLab(), listen_address=flag)
    command.config = config.parse(text)
    command.system_id = command.helper.system_id = SYSTEM_ID
    return command


CONFIG = f"""concurrent = 3
listen_address = "127.0.0.1:0"

[[runners]]
  name = "first"
  url = "http://127.0.0.1:1/"
  token = "{TOKEN}"
  executor = "docker"
  limit = 2
  request_concurrency = 1
"""


@contextlib.contextmanager
def serving(command: RunCommand) -> Iterator[metrics.MetricsServer]:
    server = metrics.setup(command, command.listen_address)
    assert server is not None
    try:
        yield server
    finally:
        server.stop()


def test_listen_address_flag_wins_and_a_missing_port_is_9252() -> None:
    """listenAddress: the flag over listen_address; "" when neither; the default port
    when the address has none (also a bracketed IPv6 address)."""
    assert metrics.listen_address("127.0.0.1:9000", "0.0.0.0:9100") == "0.0.0.0:9100"
    assert metrics.listen_address("127.0.0.1:9000") == "127.0.0.1:9000"
    assert metrics.listen_address("", "") == ""
    assert metrics.listen_address("127.0.0.1") == "127.0.0.1:9252"
    assert metrics.listen_address("[::1]") == "[::1]:9252"
    assert metrics.listen_address(":9252") == ":9252"
    with pytest.raises(metrics.AddrError, match="address ::1: too many colons in address"):
        metrics.listen_address("::1")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:80", ("127.0.0.1", "80")),
        ("[::1]:80", ("::1", "80")),
        (":80", ("", "80")),
        ("host:", ("host", "")),
        ("[::1]", "missing port in address"),
        ("[::1", "missing ']' in address"),
        ("[::1]::80", "too many colons in address"),
        ("a[b:80", "unexpected '[' in address"),
    ],
)
def test_split_host_port_as_go(address: str, expected: tuple[str, str] | str) -> None:
    """net.SplitHostPort's results and errors."""
    if isinstance(expected, tuple):
        assert metrics.split_host_port(address) == expected
    else:
        with pytest.raises(metrics.AddrError, match=re.escape(expected)):
            metrics.split_host_port(address)


def test_values_are_formatted_like_go() -> None:
    """expfmt writeFloat: strconv 'g' with the shortest precision."""
    cases = {0.0: "0", 3.0: "3", 2.5: "2.5", 123456.0: "123456", 1e6: "1e+06", 1e-5: "1e-05"}
    assert {v: metrics.go_float(v) for v in cases} == cases
    assert metrics.go_duration(62.5) == "1m2.5s" and metrics.go_duration(0.25) == "250ms"


def test_metrics_follow_the_builds_helper(tmp_path: Path) -> None:
    """/metrics answers the exposition text; gitlab_runner_jobs follows the running
    builds (idle series once the runner has a counter), with concurrent, limit, the
    request concurrency and the handled jobs counter."""
    command = command_for(tmp_path, CONFIG)
    runner = command.config.runners[0]
    labels = {"runner": short_token(TOKEN), "system_id": SYSTEM_ID}
    with serving(command) as server:
        status, headers, body = get(server.port, "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        series = parse(body.decode())
        assert value(series, "gitlab_runner_concurrent") == 3
        assert value(series, "gitlab_runner_limit", runner_name="first", **labels) == 2
        assert value(series, "gitlab_runner_version_info", name="gitlab-runner") == 1
        assert value(series, "gitlab_runner_jobs") is None, "no runner counter yet"

        assert command.helper.acquire_build(runner) and command.helper.acquire_request(runner)
        assert not command.helper.acquire_request(runner), "request_concurrency = 1"
        series = parse(get(server.port, "/metrics")[2].decode())
        assert value(series, "gitlab_runner_jobs", state="idle", **labels) == 0
        assert value(series, "gitlab_runner_request_concurrency", **labels) == 1
        assert value(series, "gitlab_runner_request_concurrency_exceeded_total", **labels) == 1
        assert value(series, "gitlab_runner_request_concurrency_used_limit", **labels) == 1
        assert value(series, "gitlab_runner_jobs_total", **labels) == 0

        info = BuildInfo(runner, Job.from_dict(payload(id=11)), SYSTEM_ID)
        build = Build(info, JobTrace(command.client, runner.url, 11, "glcbt-x"))
        build.state, build.stage = "running", "step_script"
        build._executor = SimpleNamespace(current_stage="docker_run")  # type: ignore[assignment]
        command.helper.add(info, build)
        series = parse(get(server.port, "/metrics")[2].decode())
        running = {"state": "running", "stage": "step_script", "executor_stage": "docker_run"}
        assert value(series, "gitlab_runner_jobs", **running, **labels) == 1
        assert value(series, "gitlab_runner_jobs", state="idle", **labels) == 0
        assert value(series, "gitlab_runner_jobs_total", **labels) == 1
        status, headers, body = get(server.port, "/debug/jobs/list")
        assert status == 200 and headers["X-List-Version"] == "2"
        assert body.decode().startswith(
            "url=http://127.0.0.1/group/p/-/jobs/11 state=running stage=step_script "
            "executor_stage=docker_run duration="
        ), body

        command.helper.remove(build)
        series = parse(get(server.port, "/metrics")[2].decode())
        assert value(series, "gitlab_runner_jobs", state="running", **labels) is None
        assert value(series, "gitlab_runner_jobs_total", **labels) == 1, "a counter"
        assert get(server.port, "/debug/jobs/list")[2] == b""


def test_only_get_and_head_scrape_and_gzip_is_offered(tmp_path: Path) -> None:
    """restrictHTTPMethods (405), ServeMux's 404, promhttp's gzip."""
    with serving(command_for(tmp_path, CONFIG)) as server:
        assert get(server.port, "/metrics", "POST")[:1] == (405,)
        status, _, body = get(server.port, "/metrics", "HEAD")
        assert status == 200 and body == b""
        assert get(server.port, "/debug/pprof/")[0] == 404
        status, headers, body = get(server.port, "/metrics", headers={"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip"
        assert b"gitlab_runner_concurrent 3\n" in gzip.decompress(body)


def test_no_address_or_an_invalid_one_disables_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not defined: info line; invalid: error line; neither stops the runner."""
    plain = CONFIG.replace('listen_address = "127.0.0.1:0"\n', "")
    assert metrics.setup(command_for(tmp_path, plain)) is None
    assert "listen_address not defined, metrics & debug endpoints disabled" in (
        capsys.readouterr().err
    )
    assert metrics.setup(command_for(tmp_path, plain), "::1") is None
    assert "ERROR: invalid listen address: address ::1: too many colons in address" in (
        capsys.readouterr().err
    )


def test_a_listen_failure_is_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """net.Listen failing: Fatal("Failed to create listener for metrics server"), exit 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "config.toml"
        path.write_text(CONFIG.replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        assert RunCommand(path, StubGitLab()).run() == 1
    err = capsys.readouterr().err
    assert "FATAL: Failed to create listener for metrics server" in err, err
    assert f"error=listen tcp 127.0.0.1:{port}: bind: address already in use" in err, err


def test_run_serves_on_the_flags_address_and_stops_with_it(tmp_path: Path) -> None:
    """``run``: the --listen-address flag over the config's; the server is gone when
    the runner has stopped."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.replace("127.0.0.1:0", "127.0.0.1:1"))
    command = RunCommand(path, StubGitLab(), listen_address=f"127.0.0.1:{port}")
    scraped: list[tuple[int, dict[str, str], bytes] | OSError] = []

    def scrape_then_quit() -> None:
        deadline = time.monotonic() + 5
        while True:
            try:
                scraped.append(get(port, "/metrics"))
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    scraped.append(exc)
                    break
                time.sleep(0.05)
        command._on_signal(signal.SIGQUIT, None)

    threading.Thread(target=scrape_then_quit, daemon=True).start()
    assert command.run() == 0
    assert scraped and not isinstance(scraped[0], OSError), scraped
    status, _, body = scraped[0]
    assert status == 200 and b"gitlab_runner_concurrent 3\n" in body
    with pytest.raises(OSError):
        get(port, "/metrics")


def test_adaptive_request_concurrency_as_builds_helper() -> None:
    """acquireRequest/releaseRequest with FF_USE_ADAPTIVE_REQUEST_CONCURRENCY (on by
    default): one request at first, +10 % per request that got a job, within
    [1, request_concurrency]; with the flag off, request_concurrency at once."""
    runner = config.RunnerConfig.from_dict(
        {"token": TOKEN, "executor": "docker", "request_concurrency": 3}
    )
    helper = RunCommand(Path("/nonexistent"), StubGitLab()).helper
    assert helper.acquire_request(runner) and not helper.acquire_request(runner)
    helper.release_request(runner, has_job=True)  # 0 * 1.1 -> at least 1
    counter = helper.counters[TOKEN]
    assert (counter.adaptive_limit, counter.used_limit, counter.exceeded) == (1.0, 1, 1)
    assert helper.acquire_request(runner)
    helper.release_request(runner, has_job=True)  # 1.1 -> two at a time
    assert helper.acquire_request(runner) and helper.acquire_request(runner)
    assert not helper.acquire_request(runner) and counter.used_limit == 2
    assert counter.hard_limit == 3
    fixed = config.RunnerConfig.from_dict(
        {"token": "glrt-other", "executor": "docker", "request_concurrency": 3,
         "feature_flags": {"FF_USE_ADAPTIVE_REQUEST_CONCURRENCY": False}}
    )  # fmt: skip
    assert all(helper.acquire_request(fixed) for _ in range(3))
    assert not helper.acquire_request(fixed)
