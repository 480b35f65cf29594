"""pipglr.ops.metricsport and ``--metrics``: publishing the exporter's port, and
``pipglr status`` reading it (and the exporter's facts) back."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from subprocess import CompletedProcess, TimeoutExpired
from typing import Any

import pytest

from pipglr import layout
from pipglr.build import labels
from pipglr.errors import UsageError
from pipglr.ops import cli, metricsport, quadlet, status
from pipglr.ops.lifecycle import resource_args, with_extra
from pipglr.ops.operate import Operator
from pipglr.ops.outer import Outer
from pipglr.settings import BuildSettings
from tests.unit.samples import GOOD_CONFIG

FAKE = Path(__file__).with_name("fakepodman.py")
IMAGE = "localhost/pipglr:test"
INNER = f"{layout.METRICS_PORT}/tcp"


@pytest.mark.parametrize(
    ("spec", "address", "port", "publish"),
    [
        ("9253", "127.0.0.1", 9253, f"127.0.0.1:9253:{INNER}"),
        ("1", "127.0.0.1", 1, f"127.0.0.1:1:{INNER}"),
        ("65535", "127.0.0.1", 65535, f"127.0.0.1:65535:{INNER}"),
        ("127.0.0.1:19253", "127.0.0.1", 19253, f"127.0.0.1:19253:{INNER}"),
        ("0.0.0.0:9253", "0.0.0.0", 9253, f"0.0.0.0:9253:{INNER}"),
        ("192.0.2.7:80", "192.0.2.7", 80, f"192.0.2.7:80:{INNER}"),
        ("[::1]:9253", "::1", 9253, f"[::1]:9253:{INNER}"),
        ("[::]:9253", "::", 9253, f"[::]:9253:{INNER}"),
        ("[2001:DB8:0::1]:9", "2001:db8::1", 9, f"[2001:db8::1]:9:{INNER}"),
    ],
)
def test_accepted_specs_publish_the_exporters_port(
    spec: str, address: str, port: int, publish: str
) -> None:
    """PORT alone is loopback; IPv4 and bracketed IPv6 literals are kept (normalised)."""
    parsed = metricsport.parse(spec)
    assert (parsed.address, parsed.port) == (address, port)
    assert parsed.publish() == publish
    assert metricsport.publish_args(spec) == ["--publish", publish]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("", "the port '' is not a number"),
        ("0", "the port 0 is not in 1-65535"),
        ("65536", "the port 65536 is not in 1-65535"),
        ("127.0.0.1:0", "the port 0 is not in 1-65535"),
        ("http", "the port 'http' is not a number"),
        ("-1", "the port '-1' is not a number"),
        ("９２５３", "is not a number"),
        ("localhost:9253", "'localhost' is not an IPv4 address (host names are not resolved)"),
        ("256.1.1.1:9253", "'256.1.1.1' is not an IPv4 address"),
        ("127.0.0.1:", "the port '' is not a number"),
        ("::1:9253", "put an IPv6 address in brackets"),
        ("[::1]9253", "needs ]:PORT after it"),
        ("[::1", "needs ]:PORT after it"),
        ("[127.0.0.1]:9253", "put an IPv6 address in brackets"),
        ("[fe80::1%eth0]:9253", "zoned IPv6 addresses are not supported"),
        ("[nothost]:9253", "'nothost' is not an IPv6 address"),
    ],
)
def test_malformed_specs_are_one_line_naming_the_cause_and_the_form(spec: str, needle: str) -> None:
    with pytest.raises(UsageError) as caught:
        metricsport.parse(spec)
    message = str(caught.value)
    assert needle in message and "\n" not in message
    assert message.startswith(f"--metrics {spec!r}: ")
    assert message.endswith("give [ADDR:]PORT, e.g. 9253, 127.0.0.1:9253 or [::1]:9253")


def test_no_spec_publishes_nothing() -> None:
    assert metricsport.publish_args(None) == []
    assert "--publish" not in resource_args("1", "1g", None, (), ("A=1",))


@pytest.mark.parametrize(
    ("inspect", "expected"),
    [
        ({}, None),
        ({"NetworkSettings": {"Ports": {}}, "HostConfig": {"PortBindings": None}}, None),
        ({"NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "", "HostPort": "80"}]}}}, None),
        ({"NetworkSettings": {"Ports": {INNER: None}}}, None),
        ({"NetworkSettings": {"Ports": {INNER: [{"HostIp": "127.0.0.1", "HostPort": "19253"}]}}},
         "127.0.0.1:19253"),
        ({"NetworkSettings": {"Ports": {INNER: [{"HostIp": "::1", "HostPort": "9253"}]}}},
         "[::1]:9253"),
        ({"NetworkSettings": {"Ports": {INNER: [{"HostIp": "", "HostPort": "9253"}]}}},
         "0.0.0.0:9253"),
        # A stopped container has no running bindings: the configured ones say it.
        ({"NetworkSettings": {"Ports": {}},
          "HostConfig": {"PortBindings": {INNER: [{"HostIp": "10.0.0.2", "HostPort": "1"}]}}},
         "10.0.0.2:1"),
    ],
)  # fmt: skip
def test_published_reads_the_binding_of_the_exporters_port(
    inspect: dict[str, Any], expected: str | None
) -> None:
    assert metricsport.published(inspect) == expected


def _unit(spec: str) -> list[str]:
    args = labels.argv("run", IMAGE, BuildSettings())[1:]
    extra = resource_args(metrics=metricsport.parse(spec))
    unit = quadlet.from_run_args(with_extra(args, IMAGE, extra), IMAGE).files["pipglr.container"]
    return unit.splitlines()


def test_quadlet_publishes_the_port_with_its_own_key() -> None:
    lines = _unit("[::1]:9300")
    assert f"PublishPort=[::1]:9300:{INNER}" in lines
    assert not any("--publish" in line for line in lines)
    assert sum(line.startswith("PublishPort=") for line in lines) == 1


# --- the command line ---------------------------------------------------------------


@pytest.fixture
def operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Operator:
    """An Operator on the fake podman with a config.toml secret stored."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "labels.json").write_text(json.dumps(labels.all_labels(BuildSettings())))
    monkeypatch.setenv("FAKE_PODMAN_STATE", str(state))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    op = Operator(Outer("rootless", (sys.executable, str(FAKE))), IMAGE)
    op.replace_config(GOOD_CONFIG)
    return op


def _podman(tmp_path: Path) -> list[str]:
    return ["--image", IMAGE, "--podman", f"{sys.executable} {FAKE}"]


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "state" / "calls.log").read_text().splitlines()


@pytest.mark.parametrize("command", ["up", "quadlet"])
def test_bad_metrics_is_one_line_exit_2_and_nothing_started(
    operator: Operator, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    before = _calls(tmp_path)
    argv = [*_podman(tmp_path), command, "--metrics", "localhost:9253"]
    assert cli.main([*argv, "--dir", str(tmp_path / "units")] if command == "quadlet"
                    else argv) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("pipglr: --metrics 'localhost:9253': ") and err.count("\n") == 1
    assert _calls(tmp_path) == before, "podman was asked nothing"
    assert not (tmp_path / "units").exists()


def test_up_publishes_and_status_reports_it(
    operator: Operator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*_podman(tmp_path), "up", "--metrics", "19253"]) == 0
    out = capsys.readouterr().out
    assert "metrics at http://127.0.0.1:19253/metrics and http://127.0.0.1:19253/runner/" in out
    started = [c for c in _calls(tmp_path) if c.startswith("run --detach")][-1].split()
    at = started.index("--publish")
    assert started[at + 1] == f"127.0.0.1:19253:{INNER}" and at < started.index(IMAGE)
    report = operator.status()
    assert report["metrics_published"] == "127.0.0.1:19253"


def test_up_without_metrics_publishes_nothing(operator: Operator, tmp_path: Path) -> None:
    operator.up()
    started = [c for c in _calls(tmp_path) if c.startswith("run --detach")][-1].split()
    assert "--publish" not in started and "-p" not in started
    assert operator.status()["metrics_published"] is None


def test_quadlet_metrics_writes_publishport(
    operator: Operator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    units = tmp_path / "units"
    assert cli.main([*_podman(tmp_path), "quadlet", "--dir", str(units), "--metrics",
                     "0.0.0.0:9253"]) == 0  # fmt: skip
    lines = (units / "pipglr.container").read_text().splitlines()
    assert f"PublishPort=0.0.0.0:9253:{INNER}" in lines


def test_help_warns_that_every_address_exposes_the_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in ("up", "quadlet"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--metrics [ADDR:]PORT" in text and "default 127.0.0.1" in text
        assert "0.0.0.0 exposes the metrics to the network" in text


# --- status -------------------------------------------------------------------------

FACTS = {"time": 1.0, "storage": {"used_bytes": {"total": 5}}, "runner_up": True}


def test_status_json_carries_the_exporters_facts(
    operator: Operator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The facts are the guest's `metrics-facts --json`, run as the podman user."""
    operator.up(metrics=metricsport.parse("[::1]:9253"))
    (tmp_path / "state" / "metrics-facts.json").write_text(json.dumps(FACTS))
    assert cli.main([*_podman(tmp_path), "status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"] == FACTS and report["metrics_published"] == "[::1]:9253"
    assert "metrics_error" not in report
    assert (f"exec -i --user podman pipglr {layout.PYTHON} -m pipglr.guest metrics-facts "
            "--json") in _calls(tmp_path)  # fmt: skip


def test_status_json_says_why_there_are_no_facts(
    operator: Operator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    operator.up()
    assert cli.main([*_podman(tmp_path), "status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"] is None and report["metrics_published"] is None
    assert report["metrics_error"] == (
        "metrics-facts exited 1: Error: the exporter's facts are not there"
    )
    (tmp_path / "state" / "metrics-facts.json").write_text("[1, 2]")
    assert operator.status()["metrics_error"] == (
        "metrics-facts printed a JSON list, not an object"
    )
    (tmp_path / "state" / "metrics-facts.json").write_text("Traceback")
    assert str(operator.status()["metrics_error"]).startswith("metrics-facts printed no JSON")


def test_status_facts_that_hang_are_given_up(
    operator: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator.up()
    real_exec = Outer.exec

    def exec_(self: Outer, container: str, *args: str, **kw: Any) -> CompletedProcess[str]:
        if "metrics-facts" in args:
            assert kw["timeout"] == status.FACTS_TIMEOUT
            raise TimeoutExpired(list(args), kw["timeout"])
        return real_exec(self, container, *args, **kw)

    monkeypatch.setattr(Outer, "exec", exec_)
    report = operator.status()
    assert report["metrics"] is None
    waited = status.FACTS_TIMEOUT
    assert report["metrics_error"] == f"metrics-facts did not answer within {waited} s"


def test_human_status_has_one_metrics_line(
    operator: Operator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    operator.up()
    assert cli.main([*_podman(tmp_path), "status"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line.lstrip().startswith("metrics")]
    assert len(lines) == 1, "metrics_published, metrics_error, metrics: one line together"
    assert lines[0].split(": ", 1) == [
        "       metrics",
        f"not published (pipglr up --metrics {layout.METRICS_PORT}, or quadlet --metrics "
        f"{layout.METRICS_PORT}; README: Monitoring); no facts: metrics-facts exited 1: "
        "Error: the exporter's facts are not there",
    ]
    operator.up(metrics=metricsport.parse("9300"))
    (tmp_path / "state" / "metrics-facts.json").write_text(json.dumps(FACTS))
    assert cli.main([*_podman(tmp_path), "status"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line.lstrip().startswith("metrics")]
    assert [line.split(": ", 1)[1] for line in lines] == [
        "published on 127.0.0.1:9300: http://127.0.0.1:9300/metrics, "
        "http://127.0.0.1:9300/runner/metrics"
    ]
