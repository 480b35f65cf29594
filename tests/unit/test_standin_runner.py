"""The stand-in's runner side: register, config.toml, scripts, traces, the run loop and
the zipapp (no engine, no network: a stub coordinator)."""

from __future__ import annotations

import datetime
import signal
import subprocess
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.standin import MARKER, build_standin
from tests.standin.gitlab_runner import cli, config, register, scripts, stages, systemid, tomlwriter
from tests.standin.gitlab_runner.buildinfo import BuildInfo, short_token
from tests.standin.gitlab_runner.config import RunnerConfig
from tests.standin.gitlab_runner.errors import SkipStage
from tests.standin.gitlab_runner.jobspec import Job
from tests.standin.gitlab_runner.multi import BuildsHelper, RunCommand
from tests.standin.gitlab_runner.rotation import TokenRotator, next_to_reset
from tests.standin.gitlab_runner.trace import JobTrace, TraceBuffer
from tests.unit.test_standin_executor import TOKEN, StubGitLab, payload

ARGS = [
    "register",
    "--non-interactive",
    "--url",
    "http://127.0.0.1:1/",
    "--executor",
    "docker",
    "--docker-image",
    "localhost/x:1",
    "--docker-host",
    "unix:///run/podman.sock",
]


def _register(
    tmp_path: Path, *extra: str, token_flag: str = "--token", token: str = TOKEN
) -> tuple[int, StubGitLab, Path]:
    stub = StubGitLab()
    path = tmp_path / "config.toml"
    args = cli.parser().parse_args([*ARGS, "--config", str(path), token_flag, token, *extra])
    return register.register(args, stub), stub, path


@pytest.mark.parametrize(
    "extra",
    [
        ["--tag-list", "a,b"],
        ["--run-untagged"],
        ["--locked=false"],
        ["--access-level", "ref_protected"],
        ["--maximum-timeout", "60"],
        ["--paused"],
        ["--maintenance-note", "x"],
    ],
)
def test_register_refuses_server_settings_with_an_authentication_token(
    tmp_path: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """commands/register.go ensureServerConfigArgsEmpty: glrt- + any reserved flag →
    exit 1 with upstream's message, nothing verified, no runner written."""
    status, stub, path = _register(tmp_path, *extra)
    assert status == 1, "refused"
    assert register.RESERVED_MESSAGE in capsys.readouterr().err, "upstream's exact message"
    assert not stub.calls, "the token is not even verified"
    assert not path.exists() or "[[runners]]" not in path.read_text(), "no runner written"


def test_register_verifies_a_glrt_token_and_writes_the_runner(tmp_path: Path) -> None:
    """glrt-: POST runners/verify, then a real-format [[runners]] entry with the id GitLab
    returned, docker settings, /cache added, and .runner_system_id beside the config."""
    status, stub, path = _register(
        tmp_path,
        "--name",
        "box",
        "--docker-pull-policy",
        "always",
        "--docker-pull-policy",
        "if-not-present",
    )
    assert status == 0 and [c[1] for c in stub.calls] == ["runners/verify"], stub.calls
    assert stub.calls[0][3]["RUNNER-TOKEN"] == TOKEN, "token header"
    written = tomllib.loads(path.read_text())
    runner = written["runners"][0]
    assert (written["concurrent"], runner["name"], runner["id"], runner["token"]) == (
        1,
        "box",
        42,
        TOKEN,
    ), written
    assert runner["docker"]["volumes"] == ["/cache"], runner["docker"]
    assert runner["docker"]["pull_policy"] == ["always", "if-not-present"], runner["docker"]
    assert runner["token_expires_at"] == config.ZERO_TIME, "no expiry"
    assert systemid.load_or_create(path).startswith("s_"), ".runner_system_id written"


def test_register_legacy_token_registers_and_appends(tmp_path: Path) -> None:
    """A registration token: POST runners (run_untagged without tags), the config gets the
    token GitLab issued; a second registration appends."""
    _register(tmp_path)
    status, stub, path = _register(
        tmp_path, "--tag-list", "a", token_flag="--registration-token", token="GR1348941legacy"
    )
    assert status == 0 and stub.calls[0][1] == "runners", stub.calls
    assert stub.calls[0][2]["tag_list"] == "a" and stub.calls[0][2]["locked"] is True
    runners = tomllib.loads(path.read_text())["runners"]
    assert [r["token"] for r in runners] == [TOKEN, "glrt-issued-by-legacy"], runners


def test_config_writer_round_trips_and_indents_like_gitlab_runner() -> None:
    """tomlwriter: load → dump → load keeps every value; tables indented per level."""
    text = (
        "concurrent = 2\ncheck_interval = 0\n[session_server]\n  session_timeout = 1800\n"
        '[[runners]]\n  name = "a b"\n  token_expires_at = 0001-01-01T00:00:00Z\n'
        '  environment = ["FF_NETWORK_PER_BUILD=true"]\n  [runners.docker]\n'
        '    volumes = ["/cache", "/x:/y:ro"]\n    pull_policy = "always"\n'
        "  [runners.feature_flags]\n    FF_X = true\n"
    )
    document = tomllib.loads(text)
    dumped = tomlwriter.dumps(document)
    assert tomllib.loads(dumped) == document, dumped
    assert "\n  [runners.docker]\n    volumes = " in dumped, dumped
    parsed = config.parse(dumped).runners[0]
    assert parsed.docker.pull_policies() == ["always"] and parsed.feature_flags == {"FF_X": True}


def _info(builds_dir: str = "", **overrides: Any) -> BuildInfo:
    runner = RunnerConfig.from_dict(
        {
            "name": "r",
            "token": TOKEN,
            "executor": "docker",
            "builds_dir": builds_dir,
            "docker": {"image": "x"},
        }
    )
    return BuildInfo(runner, Job.from_dict(payload(**overrides)), "s_0123456789ab")


def test_step_script_stops_at_the_first_failing_command(tmp_path: Path) -> None:
    """shells/bash.go semantics, run with bash: variables exported, ``$ cmd`` echoed in
    green, the first failing command ends the stage with its exit code."""
    info = _info(
        str(tmp_path),
        steps=[
            {"name": "script", "script": ["echo one $CI_JOB_TIMEOUT", "(exit 4)", "echo never"]}
        ],
    )
    (tmp_path / "group/p").mkdir(parents=True)
    script = stages.generate(info, "step_script")
    assert script.startswith("#!/usr/bin/env bash\n\ntrap 'exit 1' TERM\n"), script[:80]
    assert "set -o pipefail; fi; set -o errexit" in script, script[:400]
    ran = subprocess.run(["bash"], input=script, capture_output=True, text=True, timeout=10)
    assert ran.returncode == 4, ran
    assert "\x1b[32;1m$ echo one $CI_JOB_TIMEOUT\x1b[0;m\none 600\n" in ran.stdout, ran.stdout
    assert "never" not in ran.stdout.replace("$ echo never", ""), ran.stdout


def test_after_script_and_noop_stages() -> None:
    """after_script reports "Running after script..."; stages with nothing to do are
    skipped (FF_SKIP_NOOP_BUILD_STAGES)."""
    info = _info(
        steps=[
            {"name": "script", "script": ["true"]},
            {"name": "after_script", "script": ["echo $CI_JOB_STATUS"]},
        ]
    )
    assert "Running after script..." in stages.generate(info, stages.AFTER_SCRIPT)
    for stage in (
        stages.RESTORE_CACHE,
        stages.ARCHIVE_CACHE,
        stages.DOWNLOAD_ARTIFACTS,
        stages.UPLOAD_ON_SUCCESS,
    ):
        with pytest.raises(SkipStage):
            stages.generate(info, stage)


def test_cache_helper_arguments_match_upstream() -> None:
    """restore_cache/archive_cache call gitlab-runner-helper with the relative archive
    path under the cache dir, the timeout, --path and the env file."""
    info = _info(cache=[{"key": "deps", "paths": ["vendor/"], "policy": "pull-push"}])
    extract = stages.generate(info, stages.RESTORE_CACHE)
    assert "cache-extractor --file ../../../cache/group/p/deps/cache.zip --timeout 10" in extract
    archive = stages.generate(info, stages.ARCHIVE_CACHE)
    assert (
        "cache-archiver --file ../../../cache/group/p/deps/cache.zip --alternate-file "
        "../../../cache/group/p/"
    ) in archive, archive
    assert "--path vendor/ --env-file /builds/group/p.tmp/gitlab_runner_cache_env" in archive


def test_shell_escape_matches_helpers_shell_escape() -> None:
    """helpers/shell_escape.go: literals untouched, else ANSI-C quoting with hex escapes."""
    assert scripts.shell_escape("abc-1.2/x") == "abc-1.2/x"
    assert scripts.shell_escape("a b") == "$'a b'"
    assert scripts.shell_escape("it's\n") == r"$'it\'s\n'"
    assert scripts.shell_escape("\x1bé") == r"$'\x1b\xc3\xa9'"
    assert scripts.shell_escape("") == "''"


def test_names_follow_common_build_go() -> None:
    """Short token, ProjectUniqueName, ProjectUniqueShortName, ProjectRealUniqueName."""
    info = _info()
    assert short_token("glrt-t1_abcdefghijkl") == "abcdefghi"
    assert info.project_unique_name() == "runner-unit-test-project-3-concurrent-0"
    assert info.project_unique_short_name() == "runner-unit-test-3-0-7"
    assert (
        info.project_real_unique_name().startswith("runner-")
        and len(info.project_real_unique_name()) == 39
    )


def test_trace_patches_incrementally_and_reacts_to_cancel_and_abort() -> None:
    """network/trace.go: PATCH with Content-Range from the sent offset; "canceling" calls
    the cancel func, "canceled" the abort func; the final PUT carries the checksum."""
    stub = StubGitLab()
    trace = JobTrace(stub, "http://127.0.0.1:1/", 7, "glcbt-x")
    cancelled, aborted = threading.Event(), threading.Event()
    trace.set_cancel_func(cancelled.set)
    trace.set_abort_func(aborted.set)
    trace.write(b"hello ")
    assert trace._incremental_update()
    trace.write(b"world")
    stub.job_status = "canceling"
    assert trace._incremental_update() and cancelled.is_set() and not aborted.is_set()
    ranges = [c[3]["Content-Range"] for c in stub.calls if c[0] == "PATCH"]
    assert ranges == ["0-5", "6-10"], ranges
    stub.job_status = "canceled"
    trace.write(b"!")
    assert not trace._incremental_update() and aborted.is_set(), "abort stops the watcher"
    stub.job_status = "running"
    trace.success()
    final = [c for c in stub.calls if c[0] == "PUT"][-1][2]
    assert final["state"] == "success" and final["output"]["bytesize"] == 12, final
    assert final["checksum"].startswith("crc32:"), final


def test_builds_helper_limits_and_concurrency_ids() -> None:
    """commands/builds_helper.go: ``limit`` caps builds per runner; CI_CONCURRENT_ID and
    the project's concurrent index take the lowest free number."""
    runner = RunnerConfig.from_dict({"token": TOKEN, "limit": 2, "executor": "docker"})
    helper = BuildsHelper()
    assert helper.acquire_build(runner) and helper.acquire_build(runner)
    assert not helper.acquire_build(runner), "limit reached"
    assert helper.acquire_request(runner) and not helper.acquire_request(runner), (
        "request_concurrency"
    )
    infos = [BuildInfo(runner, Job.from_dict(payload(id=i)), "s_x") for i in (1, 2)]
    for info in infos:
        helper.add(info, object())  # type: ignore[arg-type]
    assert [(i.runner_id, i.project_runner_id) for i in infos] == [(0, 0), (1, 1)]


def test_token_rotation_writes_the_new_token_back(tmp_path: Path) -> None:
    """commands/multi.go resetOneRunnerToken: due at 75 % of the lifetime; the new token
    and its times are written into config.toml."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    path = tmp_path / "config.toml"
    config.save(
        path,
        {
            "concurrent": 1,
            "runners": [
                {
                    "name": "r",
                    "url": "http://127.0.0.1:1/",
                    "token": TOKEN,
                    "executor": "docker",
                    "token_obtained_at": now - datetime.timedelta(hours=4),
                    "token_expires_at": now + datetime.timedelta(hours=1),
                }
            ],
        },
    )
    cfg = config.load(path)
    runner, due = next_to_reset(cfg)
    assert runner is not None and due < now, "overdue"

    class Rotating(StubGitLab):
        def reset_token(self, url: str, token: str, system_id: str) -> dict[str, Any] | None:
            return {"token": "glrt-rotated", "token_expires_at": "2099-01-01T00:00:00Z"}

    assert TokenRotator(path, cfg, Rotating(), "s_x", threading.Event()).reset(runner)
    written = tomllib.loads(path.read_text())["runners"][0]
    assert written["token"] == "glrt-rotated" and written["token_expires_at"].year == 2099


def test_system_id_is_s_and_12_hex_next_to_the_config(tmp_path: Path) -> None:
    """configfile system_id_state.go: created once, reused afterwards."""
    first = systemid.load_or_create(tmp_path / "config.toml")
    assert len(first) == 14 and first.startswith("s_"), first
    assert (tmp_path / ".runner_system_id").read_text() == first
    assert systemid.load_or_create(tmp_path / "config.toml") == first


def test_sigquit_is_graceful_and_exits_zero(tmp_path: Path) -> None:
    """SIGQUIT: no new jobs, the loop ends, exit status 0 (commands/multi.go)."""
    path = tmp_path / "config.toml"
    config.save(
        path,
        {
            "concurrent": 1,
            "check_interval": 1,
            "runners": [
                {"name": "r", "url": "http://127.0.0.1:1/", "token": TOKEN, "executor": "docker"}
            ],
        },
    )
    command = RunCommand(path, StubGitLab())
    threading.Timer(0.3, lambda: command._on_signal(signal.SIGQUIT, None)).start()
    started = time.monotonic()
    assert command.run() == 0
    assert time.monotonic() - started < 5, "stops promptly"


def test_zipapp_carries_the_marker_and_runs(tmp_path: Path) -> None:
    """build_standin: an executable, uncompressed zipapp with the refusal marker."""
    binary = build_standin(tmp_path)
    assert MARKER in binary.read_bytes() and binary.stat().st_mode & 0o111
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("Version:      0.0.0-pipglr-standin"), out.stdout
    bad = subprocess.run(
        [
            str(binary),
            "register",
            "--non-interactive",
            "--config",
            str(tmp_path / "c.toml"),
            "--url",
            "http://127.0.0.1:1/",
            "--executor",
            "docker",
            "--token",
            TOKEN,
            "--tag-list",
            "x",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "is reserved" in bad.stderr, bad


NOTICE = "\n\x1b[33;1mJob's log exceeded limit of 20 bytes.\n"


def test_trace_limit_reached_exactly_adds_the_notice_at_once() -> None:
    """helpers/trace/buffer.go limitWriter: a write that reaches the limit (not only one
    that passes it) is followed by the notice; later writes are dropped."""
    under = TraceBuffer(limit=20)
    under.write(b"x" * 19)
    assert b"exceeded" not in under.read(0, 1000), "one byte short: no notice"
    exact = TraceBuffer(limit=20)
    exact.write(b"x" * 20)
    assert exact.read(0, 1000).decode().startswith("x" * 20 + NOTICE), exact.read(0, 60)
    exact.write(b"dropped")
    assert b"dropped" not in exact.read(0, 1000), "after the notice nothing is kept"


def test_trace_limit_does_not_cut_a_utf8_character() -> None:
    """truncateSafeUTF8: the cut moves back to the start of a character it would split."""
    buffer = TraceBuffer(limit=20)
    buffer.write(b"x" * 18 + "€uro".encode())  # € is 3 bytes: bytes 18-20
    assert buffer.read(0, 1000).decode().startswith("x" * 18 + NOTICE), buffer.read(0, 60)
