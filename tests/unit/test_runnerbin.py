"""pipglr.build.runnerbin: where gitlab-runner comes from, and that it is verified."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipglr.build import runnerbin
from pipglr.errors import RunnerBinaryError
from pipglr.settings import BuildSettings
from tests.standin import build_standin

HELPER = b"\xfd7zXZ served helper rootfs"


@pytest.mark.parametrize(
    ("version", "arch", "url"),
    [
        ("latest", "amd64", "/latest/binaries/gitlab-runner-linux-amd64"),
        ("17.5.0", "arm64", "/v17.5.0/binaries/gitlab-runner-linux-arm64"),
    ],
)
def test_default_source_is_the_official_release(version: str, arch: str, url: str) -> None:
    """With no local file, the binary and its checksum list come from GitLab's bucket."""
    source = runnerbin.choose_source(BuildSettings(runner_version=version, target_arch=arch))
    assert source.url == runnerbin.RELEASE_BUCKET + url
    assert source.sha256_url == source.url.rsplit("/binaries/", 1)[0] + "/release.sha256"
    assert source.path is None


def test_release_builds_never_pick_the_standin(tmp_path: Path) -> None:
    """The default source is not the stand-in, and the stand-in is refused unless allowed."""
    STANDIN = build_standin(tmp_path / "standin")  # noqa: N806
    assert runnerbin.choose_source(BuildSettings()).path is None
    assert runnerbin.is_standin(STANDIN)
    source = runnerbin.choose_source(BuildSettings(), STANDIN)
    with pytest.raises(RunnerBinaryError, match="stand-in"):
        runnerbin.fetch(source, tmp_path / "gitlab-runner", BuildSettings())
    assert not (tmp_path / "gitlab-runner").exists()
    runnerbin.fetch(source, tmp_path / "gitlab-runner", BuildSettings(), allow_standin=True)
    assert (tmp_path / "gitlab-runner").read_bytes() == STANDIN.read_bytes()


def test_local_binary_checked_when_sha256_given(tmp_path: Path) -> None:
    """A local file with a wrong sha256 is rejected; with the right one it is copied."""
    binary = tmp_path / "runner-bin"
    binary.write_bytes(b"\x7fELF pretend runner")
    good = hashlib.sha256(binary.read_bytes()).hexdigest()
    with pytest.raises(RunnerBinaryError, match="mismatch"):
        runnerbin.fetch(
            runnerbin.choose_source(BuildSettings(), binary, "0" * 64),
            tmp_path / "out", BuildSettings(),
        )  # fmt: skip
    digest = runnerbin.fetch(
        runnerbin.choose_source(BuildSettings(), binary, good.upper()), tmp_path / "out",
        BuildSettings(),
    )  # fmt: skip
    assert digest == good and (tmp_path / "out").stat().st_mode & 0o111


def test_missing_local_binary_names_both_options(tmp_path: Path) -> None:
    """No file at the given path: the error says how to get one either way."""
    with pytest.raises(RunnerBinaryError) as info:
        runnerbin.fetch(
            runnerbin.choose_source(BuildSettings(), tmp_path / "nope"), tmp_path / "out",
            BuildSettings(),
        )  # fmt: skip
    assert "official download" in str(info.value) and "--runner-binary" in str(info.value)


@pytest.mark.parametrize(
    "listing",
    [
        "{sum}\tbinaries/gitlab-runner-linux-amd64\n",
        "aaaa  binaries/gitlab-runner-linux-arm64\n{sum} *./binaries/gitlab-runner-linux-amd64\n",
    ],
    ids=["tab", "star-dot-slash"],
)
def test_parse_release_sha256_formats(listing: str) -> None:
    """Both sha256sum styles are understood; the right arch line is picked."""
    assert runnerbin.parse_release_sha256(listing.format(sum="AB" * 32), "amd64") == "ab" * 32


def test_parse_release_sha256_without_arch() -> None:
    """An arch missing from the listing is an error."""
    with pytest.raises(RunnerBinaryError, match="arm64"):
        runnerbin.parse_release_sha256("ab  binaries/gitlab-runner-linux-amd64\n", "arm64")


@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A loopback HTTP server laid out like GitLab's release bucket."""
    payload = b"\x7fELF served runner"
    binaries = tmp_path / "v1.2.3" / "binaries"
    binaries.mkdir(parents=True)
    (binaries / "gitlab-runner-linux-amd64").write_bytes(payload)
    helpers = tmp_path / "v1.2.3" / "helper-images"
    helpers.mkdir()
    (helpers / "prebuilt-alpine-x86_64.tar.xz").write_bytes(HELPER)
    (tmp_path / "v1.2.3" / "release.sha256").write_text(
        f"{hashlib.sha256(payload).hexdigest()}  binaries/gitlab-runner-linux-amd64\n"
        f"{hashlib.sha256(HELPER).hexdigest()}  helper-images/prebuilt-alpine-x86_64.tar.xz\n"
    )

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", payload
    finally:
        server.shutdown()


def test_download_is_verified_against_release_sha256(
    release_server: tuple[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The official path downloads, checks the published sha256, and tampering fails."""
    url, payload = release_server
    monkeypatch.setattr(runnerbin, "RELEASE_BUCKET", url)
    settings = BuildSettings(runner_version="v1.2.3")
    target = tmp_path / "gitlab-runner"
    digest = runnerbin.fetch(runnerbin.choose_source(settings), target, settings)
    assert target.read_bytes() == payload and digest == hashlib.sha256(payload).hexdigest()


def test_download_failure_names_both_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable bucket: one error naming the download and the offline option."""
    monkeypatch.setattr(runnerbin, "RELEASE_BUCKET", "http://127.0.0.1:9")
    with pytest.raises(RunnerBinaryError) as info:
        runnerbin.fetch(runnerbin.choose_source(BuildSettings()), tmp_path / "x", BuildSettings())
    message = str(info.value)
    assert "cannot download" in message and "--runner-binary" in message


def test_helper_archive_comes_with_a_downloaded_runner(
    release_server: tuple[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Release builds fetch prebuilt-alpine-x86_64.tar.xz beside the binary, verified."""
    url, _ = release_server
    monkeypatch.setattr(runnerbin, "RELEASE_BUCKET", url)
    settings = BuildSettings(runner_version="v1.2.3")
    helper = runnerbin.choose_helper_source(settings, runnerbin.choose_source(settings))
    assert (
        helper is not None
        and helper.url == f"{url}/v1.2.3/helper-images/prebuilt-alpine-x86_64.tar.xz"
    )
    digest = runnerbin.fetch_helper(helper, tmp_path / "h.tar.xz", settings)
    assert digest == hashlib.sha256(HELPER).hexdigest()
    assert (tmp_path / "h.tar.xz").read_bytes() == HELPER


def test_tampered_helper_archive_is_refused(
    release_server: tuple[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper archive that does not match release.sha256 is removed and refused."""
    url, _ = release_server
    monkeypatch.setattr(runnerbin, "RELEASE_BUCKET", url)
    (tmp_path / "v1.2.3/helper-images/prebuilt-alpine-x86_64.tar.xz").write_bytes(b"tampered")
    settings = BuildSettings(runner_version="v1.2.3")
    target = tmp_path / "h.tar.xz"
    with pytest.raises(RunnerBinaryError, match="sha256 mismatch"):
        runnerbin.fetch_helper(runnerbin.official_helper_source(settings), target, settings)
    assert not target.exists()


def test_local_runner_without_archive_bakes_no_helper(tmp_path: Path) -> None:
    """A local binary alone: no archive (the first job pulls the helper image)."""
    settings = BuildSettings()
    local = runnerbin.choose_source(settings, tmp_path / "runner")
    assert runnerbin.choose_helper_source(settings, local) is None
    given = runnerbin.choose_helper_source(settings, local, tmp_path / "prebuilt.tar.xz")
    assert given is not None and given.path == tmp_path / "prebuilt.tar.xz"
    with pytest.raises(RunnerBinaryError, match="prebuilt-alpine-x86_64.tar.xz"):
        runnerbin.fetch_helper(given, tmp_path / "out", settings)
