"""`invoke rebuild-needed`: current facts, reasons printed, exit 0/1/2."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config
from invoke.context import MockContext
from invoke.exceptions import Exit

import tasks
from pipglr.build.provenance import Provenance
from pipglr.errors import RunnerBinaryError, UsageError
from pipglr.release import rebuild as release
from pipglr.release import registry
from pipglr.settings import BuildSettings
from tests.unit.test_provenance import PUBLISHED

PUBLISHED_REF = "docker://127.0.0.1:5000/pipglr:latest"


def _context() -> MockContext:
    return MockContext(config=Config(overrides={"pipglr": tasks.ns.configuration()["pipglr"]}))


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The published image's labels (PUBLISHED) and the candidate's facts, settable."""
    state: dict[str, Any] = {"labels": PUBLISHED.to_labels(), "current": PUBLISHED}

    def fake_inspect(ref: str, tls_verify: bool = True, **_: Any) -> registry.ImageInfo | None:
        state["inspected"] = (ref, tls_verify)
        labels = state["labels"]
        return None if labels is None else registry.ImageInfo(labels, "sha256:x", frozenset())

    monkeypatch.setattr(registry, "inspect", fake_inspect)

    def fake_candidate(ref: str, tls_verify: bool = True) -> Provenance:
        state["candidate"] = (ref, tls_verify)
        return state["current"]

    monkeypatch.setattr(release, "candidate_facts", fake_candidate)
    return state


def _run(capsys: pytest.CaptureFixture[str], **flags: Any) -> tuple[int, str]:
    try:
        tasks.rebuild_needed(_context(), PUBLISHED_REF, **flags)
    except Exit as stop:
        return stop.code, capsys.readouterr().out
    return 0, capsys.readouterr().out


def test_unchanged_candidate_exits_1(
    published: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Same facts as the published image: exit 1, every fact printed unchanged."""
    code, out = _run(capsys, candidate="localhost/pipglr:latest", tls_verify=False)
    assert code == 1, out
    assert published["candidate"] == ("localhost/pipglr:latest", False)
    assert published["inspected"] == (PUBLISHED_REF, False)
    assert out.count("unchanged") == 5 and "no rebuild needed" in out


def test_changed_package_list_exits_0_and_says_why(
    published: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A different package list digest alone: exit 0, the reason line names it."""
    published["current"] = dataclasses.replace(PUBLISHED, packages_digest="sha256:new")
    code, out = _run(capsys, candidate="localhost/pipglr:latest")
    assert code == 0, out
    assert "installed package list digest changed: sha256:" in out and "rebuild needed" in out


def test_nothing_published_exits_0(
    published: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The first publish: no image there yet means publish."""
    published["labels"] = None
    code, out = _run(capsys, candidate="localhost/pipglr:latest")
    assert code == 0 and "no published image" in out


def test_registry_error_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreachable registry is not a decision: exit 2 with the error."""

    def down(*_: Any, **__: Any) -> None:
        raise registry.RegistryError("`skopeo inspect ...` failed: connection refused")

    monkeypatch.setattr(registry, "inspect", down)
    with pytest.raises(Exit) as info:
        tasks.rebuild_needed(_context(), PUBLISHED_REF, tls_verify=False)
    assert info.value.code == 2 and "connection refused" in str(info.value.message)


def test_without_candidate_the_facts_are_gathered(
    published: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before a build: flags reach the gatherer; the package list is not compared."""
    seen: dict[str, Any] = {}

    def gathered(settings: BuildSettings, binary: Path | None, sha: str | None) -> Provenance:
        seen.update(settings=settings, binary=binary, sha=sha)
        return dataclasses.replace(PUBLISHED, packages_digest=None)

    monkeypatch.setattr(release, "gathered_facts", gathered)
    code, out = _run(capsys, base_image="localhost/pipglr-base:trixie", runner_sha256="AB")
    assert code == 1, out
    assert seen["settings"].base_image == "localhost/pipglr-base:trixie" and seen["sha"] == "AB"
    assert "installed package list digest: not known now, not compared" in out


def test_gathered_facts_use_each_source(tmp_path: Path) -> None:
    """Base digest from podman, runner sha from flag, binary or release.sha256, commit
    from git; the package list stays unknown."""
    binary = tmp_path / "gitlab-runner"
    binary.write_bytes(b"runner")
    settings = BuildSettings(runner_version="v18.11.4")

    def from_release(s: BuildSettings) -> str:
        return "release-sha"

    def gather(**kw: Any) -> Provenance:
        return release.gathered_facts(
            settings, base_digest=lambda image: f"digest-of-{image}",
            release_sha256=from_release, repo=tmp_path, **kw,
        )  # fmt: skip

    facts = gather()
    assert facts == Provenance(
        base_digest=f"digest-of-{settings.base_image}",
        runner_version="v18.11.4",
        runner_sha256="release-sha",
    )
    assert gather(runner_binary=binary).runner_sha256 == hashlib.sha256(b"runner").hexdigest()
    assert gather(runner_sha256="ABC").runner_sha256 == "abc"


def test_release_sha256_unreachable_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, the release checksum cannot be read: the error names both ways out."""
    from pipglr.build import runnerbin

    monkeypatch.setattr(runnerbin, "RELEASE_BUCKET", "http://127.0.0.1:9")
    with pytest.raises(RunnerBinaryError, match="--runner-sha256 HEX or --runner-binary"):
        runnerbin.release_sha256(BuildSettings(), timeout=2)


def test_publish_task_expands_tags_and_pushes_each_arch(
    published: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`invoke publish --arch-images A,B` pushes both as one list under the expanded tags."""
    calls: dict[str, Any] = {}

    def fake_publish(sources: list[str], to: str, tags: list[str], tls: bool, retries: int) -> Any:
        calls.update(sources=sources, to=to, tags=tags, tls=tls, retries=retries)
        return {f"{to}:{t}": "sha256:d" for t in tags}

    monkeypatch.setattr(registry, "publish", fake_publish)
    tasks.publish(_context(), to="docker://r/p", arch_images="a,b", tls_verify=False)
    assert calls["sources"] == ["a", "b"] and calls["tls"] is False and calls["retries"] == 3
    assert calls["tags"][:2] == ["latest", "v18.11.4"] and len(calls["tags"]) == 3
    assert "pushed docker://r/p:latest@sha256:d (verified)" in capsys.readouterr().out


def test_candidate_without_provenance_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A candidate image built before provenance labels cannot be compared."""
    info = registry.ImageInfo({"org.opencontainers.image.title": "pipglr"}, "", frozenset())
    monkeypatch.setattr(registry, "inspect", lambda *a, **k: info)
    with pytest.raises(UsageError, match="has no provenance labels"):
        release.candidate_facts("localhost/old")
