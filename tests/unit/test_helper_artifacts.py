"""The stand-in helper's artifacts commands (tests/standin/helper/helper_artifacts):
doublestar patterns, file selection as file_archiver.go, the zip format of
helpers/archives, and artifacts-uploader/-downloader against the fake GitLab (or a
scripted server) on 127.0.0.1, with network/gitlab.go's statuses and retries."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fakegitlab.server import Running, running
from tests.fakegitlab.state import State
from tests.standin.helper.helper_artifacts import archive, commands, patterns
from tests.unit.test_fakegitlab import TOKEN, take_job

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.txt", "a.txt", True), ("*.txt", "d/a.txt", False), ("*", ".hidden", True),
        ("**/*.txt", "a.txt", True), ("**/*.txt", "d/e/a.txt", True),
        ("out/**", "out", True), ("out/**", "out/x/y", True), ("out/**", "outx", False),
        ("a?c", "abc", True), ("a?c", "a/c", False), ("[ab]x", "bx", True),
        ("[!ab]x", "cx", True), ("[!ab]x", "ax", False), ("{a,b}/c", "b/c", True),
        ("{a,b}/c", "x/c", False), ("\\*", "*", True), ("\\*", "x", False),
        ("out/*.log", "out/debug.log", True), ("out/*.log", "out/sub/debug.log", False),
    ],
)  # fmt: skip
def test_patterns_match_like_doublestar(pattern: str, path: str, expected: bool) -> None:
    """doublestar.Match: * and ? stop at /, ** spans directories (a/** matches a)."""
    assert patterns.match(pattern, path) is expected, f"{pattern!r} vs {path!r}"


def test_paths_outside_the_build_directory_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """findRelativePathInProject: ../x is an error; a glob keeps its pattern part."""
    monkeypatch.chdir(tmp_path)
    assert patterns.relative_in_project("out/**/*.txt", str(tmp_path)) == "out/**/*.txt"
    with pytest.raises(ValueError, match="not a subpath"):
        patterns.relative_in_project("../x", str(tmp_path))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A build directory (the working directory) with a few files."""
    root = tmp_path / "project"
    (root / "out/sub").mkdir(parents=True)
    (root / "out/report.txt").write_text("report\n")
    (root / "out/debug.log").write_text("noise\n")
    (root / "out/sub/deep.txt").write_text("deep\n")
    (root / "top.txt").write_text("top\n")
    monkeypatch.chdir(root)
    return root


def test_file_selection_follows_file_archiver(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory path brings everything below it, --exclude removes matches (and says
    how many), a missing path only warns; the log lines are upstream's."""
    files = archive.FileArchiver(["out/", "missing/"], ["out/*.log"], untracked=False)
    files.enumerate()
    assert files.sorted_files() == ["out", "out/report.txt", "out/sub", "out/sub/deep.txt"]
    err = capsys.readouterr().err
    assert "out/: found 4 matching artifact files and directories" in err, err
    assert "out/*.log: excluded 1 files" in err, err
    assert "WARNING: missing/: no matching files." in err, err


def test_untracked_adds_what_git_does_not_track(project: Path) -> None:
    """--untracked: ``git ls-files -o``; a committed file is not added."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "top.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    files = archive.FileArchiver([], [], untracked=True)
    files.enumerate()
    assert "out/report.txt" in files.files, "untracked file added"
    assert "top.txt" not in files.files, "tracked file left out"


def test_zip_round_trip_keeps_content_modes_links_and_times(project: Path, tmp_path: Path) -> None:
    """createZipEntry/extractZipFile: files, directories, a symbolic link, permission
    bits and modification times survive; ownership comes from the UID/GID field."""
    script = project / "out/run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o750)
    os.utime(project / "out/report.txt", (1_600_000_000, 1_600_000_000))
    (project / "out/link").symlink_to("report.txt")
    files = archive.FileArchiver(["out"], [], untracked=False)
    files.enumerate()
    zipped = tmp_path / "a.zip"
    with zipped.open("wb") as target:
        archive.create_zip(target, files.sorted_files())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    archive.extract_zip(str(zipped))
    assert (elsewhere / "out/sub/deep.txt").read_text() == "deep\n"
    assert stat.S_IMODE((elsewhere / "out/run.sh").stat().st_mode) == 0o750
    assert os.readlink(elsewhere / "out/link") == "report.txt"
    assert (elsewhere / "out/report.txt").stat().st_mtime == 1_600_000_000
    assert (elsewhere / "out/report.txt").stat().st_uid == (project / "top.txt").stat().st_uid


def helper(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python3 -m helper_artifacts`` as the image's shim runs it."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "tests.standin.helper.helper_artifacts", *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def gitlab() -> Iterator[Running]:
    """The fake GitLab on 127.0.0.1 with jobs a, b (pipeline 1) and x (project 2)."""
    with running(State([TOKEN], update_interval=1)) as server:
        for name, project_id in (("a", 1), ("b", 1), ("x", 2)):
            server.state.add_job(
                {"name": name, "script": ["true"], "pipeline_id": project_id,
                 "project_id": project_id}
            )  # fmt: skip
        yield server


def test_upload_then_download_through_gitlab(
    gitlab: Running, project: Path, tmp_path: Path
) -> None:
    """The uploader sends a zip named after --name that GitLab lists with the selected
    files; the downloader with another job's token of the project extracts them; a job
    of another project is refused (exit 1, permission denied, nothing extracted)."""
    a, b, x = take_job(gitlab), take_job(gitlab), take_job(gitlab)
    up = helper(
        project, "artifacts-uploader", "--url", gitlab.url + "/", "--token", a["token"],
        "--id", str(a["id"]), "--path", "out/", "--exclude", "out/*.log", "--name", "bundle",
        "--artifact-format", "zip", "--artifact-type", "archive",
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    assert 'Uploading artifacts as "archive" to coordinator... 201 Created' in up.stderr
    stored = gitlab.state.job_artifacts(a["id"])[0]
    assert stored["filename"] == "bundle.zip", stored
    names = [entry["name"] for entry in stored["entries"]]
    assert names == ["out/", "out/report.txt", "out/sub/", "out/sub/deep.txt"], names
    for job, target in ((b, tmp_path / "b"), (x, tmp_path / "x")):
        target.mkdir()
        down = helper(target, "artifacts-downloader", "--url", gitlab.url, "--token",
                      job["token"], "--id", str(a["id"]))  # fmt: skip
        if job is b:
            assert down.returncode == 0, down.stderr
            assert (target / "out/report.txt").read_text() == "report\n", "b got a's file"
        else:
            assert down.returncode == 1 and "FATAL: permission denied" in down.stderr, down
            assert not (target / "out").exists(), "nothing extracted for another project"


def test_nothing_to_upload_is_an_error_line_but_success(gitlab: Running, project: Path) -> None:
    """``Run``: no files → ``ERROR: No files to upload``, exit 0, no request to GitLab."""
    a = take_job(gitlab)
    up = helper(project, "artifacts-uploader", "--url", gitlab.url, "--token", a["token"],
                "--id", str(a["id"]), "--path", "nothing-here/")  # fmt: skip
    assert up.returncode == 0 and "ERROR: No files to upload" in up.stderr, up
    uploads = gitlab.state.request_log.since(0, f"/api/v4/jobs/{a['id']}/artifacts")
    assert uploads == [], "no upload request"


def test_missing_credentials_are_fatal(project: Path) -> None:
    """normalizeArgs: no URL or token → FATAL: Missing runner credentials, exit 1."""
    env_free = helper(
        project, "artifacts-uploader", "--path", "out/", "--id", "1", "--url", "", "--token", ""
    )
    assert env_free.returncode == 1, env_free
    assert "FATAL: Missing runner credentials" in env_free.stderr, env_free.stderr


class Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next status of ``server.statuses``."""

    server: ScriptedServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                self.rfile.read(size + 2)
            self.rfile.readline()
        else:
            self.rfile.read(length)
        status, body = self.server.statuses.pop(0)
        self.server.seen.append(self.path)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        """Quiet."""


class ScriptedServer(ThreadingHTTPServer):
    """A coordinator whose answers the test lists."""

    def __init__(self, statuses: list[tuple[int, bytes]]) -> None:
        super().__init__(("127.0.0.1", 0), Scripted)
        self.statuses, self.seen = list(statuses), []  # type: list[tuple[int, bytes]], list[str]


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ScriptedServer, list[float]]]:
    """A scripted server, and the sleeps the commands asked for (not slept)."""
    sleeps: list[float] = []
    monkeypatch.setattr(commands, "sleep", sleeps.append)
    server = ScriptedServer([])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server, sleeps
    server.shutdown()
    server.server_close()
    thread.join(5)


def run_in_process(server: ScriptedServer, *args: str) -> int:
    """``commands.main`` with the server's URL; the exit status (1 for FATAL)."""
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        return commands.main([args[0], "--url", url, "--token", "glcbt-t", "--id", "5", *args[1:]])
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("statuses", "exit_code", "sleeps"),
    [
        ([503, 503, 201], 0, [1.0, 2.0]),
        ([500, 500, 500], 1, [1.0, 2.0]),
        ([503] * 6, 1, [1.0, 2.0, 4.0, 5.0, 5.0]),
        ([403], 1, []),
        ([413], 1, []),
    ],
)
def test_upload_retries_as_artifacts_uploader_go(
    scripted: tuple[ScriptedServer, list[float]],
    project: Path,
    statuses: list[int],
    exit_code: int,
    sleeps: list[float],
) -> None:
    """shouldRetry: failed uploads 3 tries, 503 six, 403/413 none; backoff 1 s doubling
    to 5 s; success ends the loop."""
    server, slept = scripted
    server.statuses = [(status, json.dumps({"message": "x"}).encode()) for status in statuses]
    assert run_in_process(server, "artifacts-uploader", "--path", "out/") == exit_code
    assert len(server.seen) == len(statuses), f"one request per scripted answer: {server.seen}"
    assert slept == sleeps, slept


def test_download_asks_direct_download_first_and_retries_twice(
    scripted: tuple[ScriptedServer, list[float]], project: Path
) -> None:
    """directDownloadFlag: ``direct_download=true`` on the first try only; a failed
    download (500) is retried twice, one second apart, then fatal."""
    server, slept = scripted
    server.statuses = [(500, b"{}")] * 3
    assert run_in_process(server, "artifacts-downloader", "--direct-download") == 1
    assert [path.split("?", 1)[1] for path in server.seen] == ["direct_download=true", "", ""]
    assert slept == [1.0, 1.0], slept


def test_download_not_found_is_final(
    scripted: tuple[ScriptedServer, list[float]], project: Path
) -> None:
    """404 → DownloadNotFound: no retry, exit 1."""
    server, slept = scripted
    server.statuses = [(404, b'{"message":"404 Not Found"}')]
    assert run_in_process(server, "artifacts-downloader") == 1
    assert len(server.seen) == 1 and slept == [], server.seen
