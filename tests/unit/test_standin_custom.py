"""The stand-in's custom executor keeps gitlab-runner's side of the contract
(executors/custom at v18.11.4): fake driver programs written here record their argv,
environment and scripts, and do what each test's plan says."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness.joblog import JobLog
from tests.standin.gitlab_runner import build as buildmod
from tests.standin.gitlab_runner.build import Build
from tests.standin.gitlab_runner.buildinfo import BuildInfo
from tests.standin.gitlab_runner.config import RunnerConfig
from tests.standin.gitlab_runner.customjson import ConfigJSONError, parse_config_output
from tests.standin.gitlab_runner.jobspec import Job
from tests.standin.gitlab_runner.trace import JobTrace
from tests.unit.test_standin_executor import TOKEN, StubGitLab, payload

DRIVER = r"""
import json, os, signal, subprocess, sys, time
record, plan_path, role, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
plan = json.load(open(plan_path)).get(role, {})
if role == "run":
    plan = plan.get(rest[-1], plan.get("*", {}))
def note(entry):
    with open(record, "a") as handle:
        handle.write(json.dumps(entry) + "\n")
keep = ("TMPDIR", "BUILD_FAILURE_EXIT_CODE", "SYSTEM_FAILURE_EXIT_CODE",
        "BUILD_EXIT_CODE_FILE", "JOB_RESPONSE_FILE", "DRIVER_JOB_ENV")
entry = {
    "role": role, "argv": rest, "cwd": os.getcwd(),
    "env": {k: v for k, v in os.environ.items() if k.startswith("CUSTOM_ENV_") or k in keep},
    "response": open(os.environ["JOB_RESPONSE_FILE"]).read(),
}
if role == "run":
    entry["script"] = open(rest[-2]).read()
note(entry)
if plan.get("trap_term"):
    signal.signal(signal.SIGTERM, lambda *_: note({"role": "term", "stage": rest[-1:]}))
sys.stdout.write(plan.get("stdout", ""))
sys.stdout.flush()
sys.stderr.write(plan.get("stderr", ""))
sys.stderr.flush()
if "code_file" in plan:
    open(os.environ["BUILD_EXIT_CODE_FILE"], "w").write(plan["code_file"])
if plan.get("sleep"):
    child = subprocess.Popen(["sleep", "60"]) if plan.get("child") else None
    note({"role": "started", "child": child.pid if child else 0})
    deadline = time.monotonic() + plan["sleep"]
    while time.monotonic() < deadline:
        time.sleep(0.05)
sys.exit(plan.get("exit", 0))
"""
CONFIG_JSON = {"builds_dir": "/b", "cache_dir": "/c", "driver": {"name": "fake", "version": "1.2"}}


class Driver:
    """The fake driver: its plan (per role; ``run`` per stage or ``*``) and its record."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "driver.py"
        self.script.write_text(DRIVER)
        self.plan_path = tmp_path / "plan.json"
        self.record = tmp_path / "record.jsonl"
        self.plan: dict[str, Any] = {"config": {"stdout": json.dumps(CONFIG_JSON)}, "run": {}}

    def args(self, role: str) -> list[str]:
        return [str(self.script), str(self.record), str(self.plan_path), role]

    def section(self, **overrides: Any) -> dict[str, Any]:
        """``[runners.custom]`` running this driver for every program."""
        section: dict[str, Any] = {}
        for role in ("config", "prepare", "run", "cleanup"):
            section[f"{role}_exec"] = sys.executable
            section[f"{role}_args"] = self.args(role)
        section.update(overrides)
        return section

    def entries(self, role: str | None = None) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        lines = [json.loads(line) for line in self.record.read_text().splitlines()]
        return [e for e in lines if role is None or e["role"] == role]

    def stages(self) -> list[str]:
        return [e["argv"][-1] for e in self.entries("run")]


@pytest.fixture
def driver(tmp_path: Path) -> Driver:
    return Driver(tmp_path)


def runner(section: dict[str, Any] | None, **extra: Any) -> RunnerConfig:
    raw: dict[str, Any] = {"name": "unit", "url": "http://127.0.0.1:1/", "token": TOKEN}
    raw.update(executor="custom", **extra)
    if section is not None:
        raw["custom"] = section
    return RunnerConfig.from_dict(raw)


def run_job(
    driver: Driver,
    config: RunnerConfig,
    job: dict[str, Any] | None = None,
    during: Callable[[Build], None] | None = None,
) -> tuple[JobLog, dict[str, Any]]:
    """One job through :class:`Build` (the executor chosen by ``executor``); the trace
    and the final update."""
    driver.plan_path.write_text(json.dumps(driver.plan))
    job = job or payload()
    gitlab = StubGitLab()
    trace = JobTrace(gitlab, config.url, job["id"], job["token"])
    build = Build(BuildInfo(config, Job.from_dict(job), "s_0123456789ab"), trace)
    if during is not None:
        threading.Thread(target=during, args=(build,), daemon=True).start()
    build.run()
    final = [c for c in gitlab.calls if c[0] == "PUT"][-1][2]
    return JobLog(trace.buffer.read(0, 1 << 20).decode(errors="replace")), final


def test_programs_and_stages_in_upstream_order(driver: Driver) -> None:
    """config, prepare, one run per stage (script path + stage name, step_script passed
    as build_script with upstream's warning), cleanup; the driver line from the JSON."""
    job = payload(
        steps=[
            {"name": "script", "script": ["echo hi"]},
            {"name": "after_script", "script": ["echo bye"]},
        ]
    )
    log, final = run_job(driver, runner(driver.section(run_args=[*driver.args("run"), "x"])), job)
    assert final["state"] == "success", log.tail()
    assert [e["role"] for e in driver.entries()] == ["config", "prepare", *["run"] * 5, "cleanup"]
    assert driver.stages() == [
        "prepare_script",
        "get_sources",
        "build_script",
        "after_script",
        "cleanup_file_variables",
    ], driver.stages()
    for entry in driver.entries("run"):
        extra, script, _stage = entry["argv"]
        assert extra == "x", "run_args come before the script and the stage"
        path = Path(script)
        assert path.name == "script" and path.parent.name.startswith("script"), path
        assert path.parent.parent.name.startswith("custom-executor"), path
        assert path.parent.parent == Path(entry["cwd"]), "programs run in the temp dir"
        assert entry["script"].startswith("#!/usr/bin/env bash\n"), entry["script"][:40]
    assert not Path(driver.entries("run")[0]["cwd"]).exists(), "temp dir removed by Cleanup"
    assert log.has_line("Using Custom executor with driver fake 1.2..."), log.tail()
    assert log.contains("Starting with version 17.0 the 'build_script' stage will be replaced")
    sources = driver.entries("run")[1]["script"]
    assert "/b/group/p" in sources, "config_exec's builds_dir makes the project dir"
    prepare = driver.entries("run")[0]["script"]
    assert "Running on $(hostname)..." in prepare, "no hostname from config_exec: no 'via'"


def test_startup_line_and_hostname_without_driver_version(driver: Driver) -> None:
    """logStartupMessage without a version; the JSON's hostname in the prepare script;
    builds_dir_is_shared puts the project under <short token>/<concurrent id>/."""
    output = {**CONFIG_JSON, "driver": {"name": "fake"}, "hostname": "box"}
    driver.plan["config"] = {"stdout": json.dumps({**output, "builds_dir_is_shared": True})}
    log, _ = run_job(driver, runner(driver.section()))
    assert log.has_line("Using Custom executor with driver fake..."), log.tail()
    prepare = driver.entries("run")[0]["script"]
    assert "Running on $(hostname) via box..." in prepare, prepare
    env = driver.entries("run")[0]["env"]
    assert env["CUSTOM_ENV_CI_PROJECT_DIR"] == "/b/unit-test/0/group/p", env
    driver.plan["config"] = {}
    driver.record.unlink()
    log, _ = run_job(driver, runner(driver.section(), builds_dir="/t", cache_dir="/tc"))
    assert log.has_line("Using Custom executor..."), "no JSON: the plain usage line"
    assert driver.entries("run")[0]["env"]["CUSTOM_ENV_CI_BUILDS_DIR"] == "/t"


def test_environment_of_the_programs(driver: Driver) -> None:
    """CUSTOM_ENV_<variable> (never overridden by job_env), the runner's own variables,
    the job response file, CI_JOB_SERVICES; config_exec runs before StartBuild."""
    output = {**CONFIG_JSON, "job_env": {"DRIVER_JOB_ENV": "1", "CUSTOM_ENV_CI_PIPELINE_ID": "x"}}
    driver.plan["config"] = {"stdout": json.dumps(output)}
    services = [{"name": "redis:7", "alias": "cache,kv", "command": ["redis-server"]}]
    job = payload(services=services)
    run_job(driver, runner(driver.section()), job)
    config, prepare = driver.entries("config")[0], driver.entries("prepare")[0]
    assert "DRIVER_JOB_ENV" not in config["env"], "job_env only after config_exec"
    assert config["env"]["CUSTOM_ENV_CI_BUILDS_DIR"] == "", "before StartBuild: no RootDir"
    assert config["env"]["CUSTOM_ENV_CI_PROJECT_DIR"] == ""
    for entry in (prepare, *driver.entries("run"), driver.entries("cleanup")[0]):
        env = entry["env"]
        assert env["DRIVER_JOB_ENV"] == "1", entry["role"]
        assert env["CUSTOM_ENV_CI_PIPELINE_ID"] == "99", "job_env never overrides CUSTOM_ENV_"
        assert env["CUSTOM_ENV_CI_BUILDS_DIR"] == "/b" and env["CUSTOM_ENV_CI_SHARED_ENVIRONMENT"]
        assert "CUSTOM_ENV_CI_DISPOSABLE_ENVIRONMENT" not in env
        assert (env["BUILD_FAILURE_EXIT_CODE"], env["SYSTEM_FAILURE_EXIT_CODE"]) == ("1", "2")
        assert env["TMPDIR"] == entry["cwd"]
        assert env["BUILD_EXIT_CODE_FILE"] == os.path.join(entry["cwd"], "build_exit_code")
        assert env["JOB_RESPONSE_FILE"] == os.path.join(entry["cwd"], "response.json")
        assert json.loads(entry["response"]) == job and entry["response"].endswith("}\n")
        assert json.loads(env["CUSTOM_ENV_CI_JOB_SERVICES"]) == [
            {"name": "redis:7", "alias": "cache", "entrypoint": None, "command": ["redis-server"]}
        ]
    run_job(driver, runner(driver.section()))
    assert driver.entries("run")[-1]["env"]["CUSTOM_ENV_CI_JOB_SERVICES"] == ""


@pytest.mark.parametrize(
    ("plan", "line", "reason", "code"),
    [
        ({"exit": 1}, "ERROR: Job failed: exit status 1", "script_failure", 1),
        (
            {"exit": 1, "code_file": "42\n"},
            "ERROR: Job failed: exit status 42",
            "script_failure",
            42,
        ),
        (
            {"exit": 1, "code_file": "nope"},
            "ERROR: Job failed (system failure): unknown Custom executor executable exit code 2; "
            "executable execution terminated with: exit status 1",
            "runner_system_failure",
            0,
        ),
        (
            {"exit": 2},
            "ERROR: Job failed (system failure): exit status 2",
            "runner_system_failure",
            0,
        ),
        (
            {"exit": 3},
            "ERROR: Job failed (system failure): unknown Custom executor executable exit code 3; "
            "executable execution terminated with: exit status 3",
            "runner_system_failure",
            0,
        ),
    ],
)
def test_exit_codes_of_run(
    driver: Driver, plan: dict[str, Any], line: str, reason: str, code: int
) -> None:
    """command.go waitForCommand/parseBuildFailure: 1 is a build failure (its code from
    BUILD_EXIT_CODE_FILE), 2 a system failure, anything else an unknown one."""
    driver.plan["run"] = {"build_script": plan}
    job = payload(
        steps=[
            {"name": "script", "script": ["false"]},
            {"name": "after_script", "script": ["echo bye"]},
        ]
    )
    job["features"]["failure_reasons"] = ["script_failure", "runner_system_failure"]
    log, final = run_job(driver, runner(driver.section()), job)
    assert log.lines[-1].text == line, log.tail()
    assert (final["failure_reason"], final.get("exit_code", 0)) == (reason, code), final
    assert "after_script" in driver.stages(), "after_script runs after a failed step"
    assert driver.stages()[-1] == "cleanup_file_variables" and driver.entries("cleanup")


def test_invalid_config_json_is_a_retried_system_failure(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dynamicConfig's parse error is no BuildError: Prepare is retried (3 times), each
    attempt cleaned up; the job ends as a system failure; no stage runs."""
    monkeypatch.setattr(buildmod, "PREPARATION_RETRY_INTERVAL", 0.0)
    driver.plan["config"] = {"stdout": "{not json", "stderr": "config says hello\n"}
    log, final = run_job(driver, runner(driver.section()))
    assert final["failure_reason"] == "runner_system_failure", final
    assert len(driver.entries("config")) == 3 and len(driver.entries("cleanup")) == 3
    assert not driver.entries("run") and not driver.entries("prepare")
    assert log.contains("ERROR: Preparation failed: error while parsing JSON output:"), log.tail()
    assert log.has_line("config says hello"), "config_exec's stderr goes to the trace"
    assert log.lines[-1].text.startswith("ERROR: Job failed (system failure): error while parsing")


def test_config_json_types_as_go_decodes_them() -> None:
    """json.Unmarshal into ConfigExecOutput: null leaves a field unset, keys match
    case-insensitively, a wrong type is an error."""
    out = parse_config_output(b'{"Builds_Dir": "/x", "cache_dir": null, "other": 1}')
    assert (out.builds_dir, out.cache_dir) == ("/x", None)
    with pytest.raises(ConfigJSONError, match="ConfigExecOutput.builds_dir of type string"):
        parse_config_output(b'{"builds_dir": 5}')
    with pytest.raises(ConfigJSONError, match="Go value of type custom.ConfigExecOutput"):
        parse_config_output(b"[]")


def test_missing_builds_dir_is_a_build_error_not_retried(driver: Driver) -> None:
    """The custom provider has no default builds dir: StartBuild's BuildError."""
    driver.plan["config"] = {"stdout": json.dumps({"cache_dir": "/c"})}
    log, _ = run_job(driver, runner(driver.section()))
    assert log.lines[-1].text == "ERROR: Job failed: the builds_dir is not configured", log.tail()
    assert len(driver.entries("config")) == 1 and len(driver.entries("cleanup")) == 1


def test_prepare_timeout_terminates_the_program(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prepare_exec_timeout: SIGTERM to the program's group at the deadline; the exit
    by signal is an unknown failure (exit code -1), retried, cleanup after each."""
    monkeypatch.setattr(buildmod, "PREPARATION_RETRY_INTERVAL", 0.0)
    driver.plan["prepare"] = {"sleep": 30}
    started = time.monotonic()
    log, final = run_job(driver, runner(driver.section(prepare_exec_timeout=1)))
    assert time.monotonic() - started < 20, "each attempt ends at its 1 s timeout"
    assert len(driver.entries("prepare")) == 3 and len(driver.entries("cleanup")) == 3
    assert log.lines[-1].text == (
        "ERROR: Job failed (system failure): unknown Custom executor executable exit code -1; "
        "executable execution terminated with: signal: terminated"
    ), log.tail()
    assert final["failure_reason"] == "runner_system_failure"


def test_abort_sends_sigterm_then_sigkill_then_cleans_up(driver: Driver) -> None:
    """The runner aborting mid-stage: SIGTERM to run_exec's process group (the driver
    ignores it), SIGKILL after graceful_kill_timeout (its child dies too), then
    cleanup_exec."""
    driver.plan["run"] = {"build_script": {"sleep": 60, "trap_term": True, "child": True}}

    def abort(build: Build) -> None:
        deadline = time.monotonic() + 30
        while not driver.entries("started") and time.monotonic() < deadline:
            time.sleep(0.05)
        build.interrupt("terminated")

    started = time.monotonic()
    log, final = run_job(
        driver, runner(driver.section(graceful_kill_timeout=1, force_kill_timeout=5)), during=abort
    )
    assert time.monotonic() - started < 30, "killed after the 1 s grace, not after 60 s"
    roles = [e["role"] for e in driver.entries()]
    assert roles[-3:] == ["started", "term", "cleanup"], roles
    child = driver.entries("started")[0]["child"]
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(child, 0)
            time.sleep(0.05)
    assert log.lines[-1].text == "ERROR: Job failed (system failure): aborted: terminated"
    assert final["failure_reason"] == "runner_system_failure"


def test_cleanup_runs_after_a_failed_prepare_and_logs_outside_the_trace(
    driver: Driver, capsys: pytest.CaptureFixture[str]
) -> None:
    """prepare_exec exiting 1 is a BuildError (not retried); Cleanup still runs, its
    stdout/stderr go to the runner's log, never into the trace."""
    driver.plan["prepare"] = {"exit": 1, "stdout": "preparing\n"}
    driver.plan["cleanup"] = {"stderr": "cleanup-stderr-marker\n"}
    log, _ = run_job(driver, runner(driver.section()))
    assert log.has_line("preparing"), "prepare_exec's output is in the trace"
    assert log.lines[-1].text == "ERROR: Job failed: exit status 1", log.tail()
    assert len(driver.entries("cleanup")) == 1 and not driver.entries("run")
    assert not log.contains("cleanup-stderr-marker")
    assert "cleanup-stderr-marker  cleanup_std=err" in capsys.readouterr().err


def test_unconfigured_and_unreplayed_custom_sections(driver: Driver) -> None:
    """prepareConfig's BuildErrors; the stand-in refuses a [runners.custom] key it does
    not replay, and ignores [runners.docker] for a custom runner."""
    log, _ = run_job(driver, runner(None))
    assert log.lines[-1].text == "ERROR: Job failed: custom executor not configured"
    log, _ = run_job(driver, runner({"config_exec": sys.executable}))
    assert log.lines[-1].text == "ERROR: Job failed: custom executor is missing RunExec"
    log, _ = run_job(driver, runner(driver.section(future_key="x"), docker={"image": "a"}))
    assert log.contains('"runners.custom.future_key"'), log.tail()
    assert '"runners.docker' not in log.text


def test_shell_and_clone_path_from_the_executor_options(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config_exec's shell names the scripts' shell; one the stand-in cannot write is
    "shell ... not found" (retried); GIT_CLONE_PATH needs ``custom_build_dir``, which
    the custom provider leaves off."""
    monkeypatch.setattr(buildmod, "PREPARATION_RETRY_INTERVAL", 0.0)
    driver.plan["config"] = {"stdout": json.dumps({**CONFIG_JSON, "shell": "sh"})}
    run_job(driver, runner(driver.section()))
    assert driver.entries("run")[0]["script"].startswith("#!/usr/bin/env sh\n")
    driver.plan["config"] = {"stdout": json.dumps({**CONFIG_JSON, "shell": "pwsh"})}
    log, _ = run_job(driver, runner(driver.section()))
    assert log.lines[-1].text == "ERROR: Job failed (system failure): shell pwsh not found"
    driver.plan["config"] = {"stdout": json.dumps(CONFIG_JSON)}
    job = payload()
    job["variables"].append({"key": "GIT_CLONE_PATH", "value": "/b/here", "public": True})
    log, _ = run_job(driver, runner(driver.section()), job)
    assert log.lines[-1].text == (
        "ERROR: Job failed: setting GIT_CLONE_PATH is not allowed, enable `custom_build_dir` "
        "feature"
    ), log.tail()
    driver.record.unlink()
    log, _ = run_job(driver, runner(driver.section(), custom_build_dir={"enabled": True}), job)
    assert driver.entries("run")[0]["env"]["CUSTOM_ENV_CI_PROJECT_DIR"] == "/b/here", log.tail()
