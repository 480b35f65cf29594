"""The stand-in's artifacts stages: the scripts shells/abstract.go writes
(``writeUploadArtifacts``/``writeUploadArtifact``, ``downloadAllArtifacts``,
``guardRunnerCommand``, ``changeFilesOwnership``), and the whole path run with bash —
upload stage of job A, download stage of job B — through the helper's artifacts
commands against the fake GitLab on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakegitlab.server import Running, running
from tests.fakegitlab.state import State
from tests.standin.gitlab_runner import stages
from tests.standin.gitlab_runner.buildinfo import BuildInfo
from tests.standin.gitlab_runner.config import RunnerConfig
from tests.standin.gitlab_runner.errors import SkipStage
from tests.standin.gitlab_runner.jobspec import Job
from tests.standin.gitlab_runner.scripts import shell_escape
from tests.unit.test_fakegitlab import TOKEN, take_job, update
from tests.unit.test_standin_executor import payload

REPO = Path(__file__).resolve().parents[2]
URL = "http://gitlab.test:8080/"
FULL = {
    "name": "bundle", "untracked": True, "paths": ["out/", "*.txt"], "exclude": ["out/*.log"],
    "when": "on_success", "expire_in": "1 week", "artifact_type": "archive",
    "artifact_format": "zip",
}  # fmt: skip


def info_for(
    job: dict[str, Any], url: str = URL, builds_dir: str = "", **variables: str
) -> BuildInfo:
    """A BuildInfo for a payload on a docker runner with ``url``."""
    runner = RunnerConfig.from_dict(
        {"name": "r", "url": url, "token": TOKEN, "executor": "docker",
         "builds_dir": builds_dir, "docker": {"image": "x"}}
    )  # fmt: skip
    extra = [{"key": k, "value": v, "public": True} for k, v in variables.items()]
    job = job | {"variables": [*job.get("variables", []), *extra]}
    return BuildInfo(runner, Job.from_dict(job), "s_0123456789ab")


def body(info: BuildInfo, stage: str) -> str:
    """The stage body the script evals (BashWriter.Finish quotes it as ``$'...'``)."""
    script = stages.generate(info, stage)
    quoted = script.split("eval $'", 1)[1].rsplit("') < /dev/null", 1)[0]
    return quoted.encode("latin-1").decode("unicode_escape").encode("latin-1").decode()


def command_line(*words: str) -> str:
    """How BashWriter.Command writes a command."""
    return " ".join(shell_escape(word) for word in words)


def test_upload_arguments_follow_write_upload_artifact() -> None:
    """url, token, id, timeouts, --path…, --exclude…, --untracked, --name, --expire-in,
    --artifact-format, --artifact-type — in upstream's order, under the helper guard."""
    script = body(info_for(payload(artifacts=[FULL])), stages.UPLOAD_ON_SUCCESS)
    expected = command_line(
        "gitlab-runner-helper", "artifacts-uploader", "--url", URL, "--token",
        "glcbt-job-token", "--id", "7", "--timeout", "1h0m0s", "--response-header-timeout",
        "10m0s", "--path", "out/", "--path", "*.txt", "--exclude", "out/*.log",
        "--untracked", "--name", "bundle", "--expire-in", "1 week", "--artifact-format",
        "zip", "--artifact-type", "archive",
    )  # fmt: skip
    assert expected in script, script
    assert "if gitlab-runner-helper --version >/dev/null 2>&1 ; then" in script, script
    assert "Missing gitlab-runner-helper. Uploading artifacts is disabled." in script
    assert "Uploading artifacts..." in script


@pytest.mark.parametrize(
    ("when", "success", "failure"),
    [(None, True, False), ("on_success", True, False), ("on_failure", False, True),
     ("always", True, True)],
)  # fmt: skip
def test_when_picks_the_upload_stage(when: str | None, success: bool, failure: bool) -> None:
    """``ArtifactWhen.OnSuccess``/``OnFailure``: unset means on_success; a stage with
    nothing to upload is skipped."""
    job = payload(artifacts=[{"paths": ["out/"], "when": when}])
    for stage, wanted in ((stages.UPLOAD_ON_SUCCESS, success), (stages.UPLOAD_ON_FAILURE, failure)):
        try:
            uploads = "artifacts-uploader" in body(info_for(job), stage)
        except SkipStage:
            uploads = False
        assert uploads == wanted, f"when={when!r}: {stage} uploads={uploads}, wanted {wanted}"


def test_an_artifact_with_only_exclude_still_uploads() -> None:
    """writeUploadArtifact counts --exclude as archiver arguments; an entry with no
    paths, exclude or untracked is skipped, and without a URL the stage is."""
    only_exclude = payload(artifacts=[{"exclude": ["*.log"]}])
    assert "--exclude $'*.log'" in body(info_for(only_exclude), stages.UPLOAD_ON_SUCCESS)
    with pytest.raises(SkipStage):
        stages.generate(info_for(payload(artifacts=[{"name": "x"}])), stages.UPLOAD_ON_SUCCESS)
    with pytest.raises(SkipStage):
        stages.generate(info_for(only_exclude, url=""), stages.UPLOAD_ON_SUCCESS)


def test_download_follows_download_all_artifacts() -> None:
    """One guarded artifacts-downloader per dependency with an artifacts file (the
    dependency's token, its id), then the ownership hand-over of cache and builds dir."""
    dependencies = [
        {"id": 3, "name": "a", "token": "glcbt-b", "artifacts_file": {"filename": "x.zip"}},
        {"id": 4, "name": "no-files", "token": "glcbt-b"},
    ]
    script = body(info_for(payload(dependencies=dependencies)), stages.DOWNLOAD_ARTIFACTS)
    assert "Downloading artifacts for a (3)..." in script, script
    expected = command_line(
        "gitlab-runner-helper", "artifacts-downloader", "--url", URL, "--token", "glcbt-b",
        "--id", "3",
    )  # fmt: skip
    assert expected in script and "--id 4" not in script, script
    assert "Missing gitlab-runner-helper. Artifacts downloading is disabled." in script
    assert 'if [ -e "/builds/.gitlab-build-uid-gid" ]; then' in script, script
    assert "chown -R \"$(stat -c '%u:%g' '/builds/.gitlab-build-uid-gid')\" '/builds'" in script
    with pytest.raises(SkipStage):
        stages.generate(info_for(payload(dependencies=dependencies[1:])), stages.DOWNLOAD_ARTIFACTS)


@pytest.fixture
def gitlab() -> Iterator[Running]:
    """The fake GitLab on 127.0.0.1."""
    with running(State([TOKEN], update_interval=1)) as server:
        yield server


def helper_bin(tmp_path: Path) -> Path:
    """A ``gitlab-runner-helper`` on PATH: answers --version, runs the artifacts
    commands from this checkout (the image's shim runs the same package)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "gitlab-runner-helper"
    shim.write_text(
        '#!/bin/sh\n[ "$1" = --version ] && exit 0\n'
        f'exec {sys.executable} -m tests.standin.helper.helper_artifacts "$@"\n'
    )
    shim.chmod(0o755)
    return bin_dir


def run_stage(info: BuildInfo, stage: str, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """A stage script run with bash, the helper on PATH."""
    env = os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    script = stages.generate(info, stage)
    return subprocess.run(
        ["bash"], input=script, capture_output=True, text=True, timeout=60, env=env
    )


def test_artifacts_travel_from_one_job_to_the_next(gitlab: Running, tmp_path: Path) -> None:
    """Job A's upload stage archives out/ (minus *.log) into GitLab; job B's download
    stage, with A as dependency, finds out/report.txt with A's content in its own build
    directory; the excluded file stays behind."""
    bin_dir = helper_bin(tmp_path)
    state = gitlab.state
    artifacts = {"paths": ["out/"], "exclude": ["out/*.log"]}
    state.add_job({"name": "a", "script": ["true"], "pipeline_id": 1, "artifacts": artifacts})
    state.add_job({"name": "b", "script": ["true"], "pipeline_id": 1, "dependencies": ["a"]})
    a = take_job(gitlab)
    info_a = info_for(a, gitlab.url + "/", str(tmp_path / "a"))
    out = Path(info_a.build_dir) / "out"
    out.mkdir(parents=True)
    (out / "report.txt").write_text("made by a\n")
    (out / "debug.log").write_text("noise\n")
    uploaded = run_stage(info_a, stages.UPLOAD_ON_SUCCESS, bin_dir)
    assert uploaded.returncode == 0, uploaded.stderr + uploaded.stdout
    assert 'Uploading artifacts as "archive" to coordinator... 201 Created' in uploaded.stderr
    update(gitlab, a, state="success", exit_code=0)
    b = take_job(gitlab)
    info_b = info_for(b, gitlab.url + "/", str(tmp_path / "b"))
    Path(info_b.build_dir).mkdir(parents=True)
    downloaded = run_stage(info_b, stages.DOWNLOAD_ARTIFACTS, bin_dir)
    assert downloaded.returncode == 0, downloaded.stderr + downloaded.stdout
    assert f"Downloading artifacts for a ({a['id']})..." in downloaded.stdout, downloaded.stdout
    report = Path(info_b.build_dir) / "out/report.txt"
    assert report.read_text() == "made by a\n", "b sees a's file with a's content"
    assert not (Path(info_b.build_dir) / "out/debug.log").exists(), "excluded in a's upload"
