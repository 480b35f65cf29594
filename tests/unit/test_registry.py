"""registry.py: inspect and push command lines, not-found handling, retries, digest check."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

from pipglr.release import registry
from pipglr.release.registry import RegistryError

REMOTE = "docker://127.0.0.1:5000/pipglr:latest"
DIGEST = "sha256:" + "a" * 64


class FakeRun:
    """Answers each command with the next scripted (status, stdout, stderr); records argv.
    A push answer with status 0 writes DIGEST to the --digestfile."""

    def __init__(self, *answers: tuple[int, str, str]) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        status, out, err = self.answers.pop(0)
        if status == 0 and "--digestfile" in argv:
            Path(argv[list(argv).index("--digestfile") + 1]).write_text(DIGEST + "\n")
        return subprocess.CompletedProcess(list(argv), status, out, err)


def _inspect_json(digest: str = DIGEST, labels: dict[str, str] | None = None) -> str:
    return json.dumps({"Digest": digest, "Labels": labels or {"a": "b"}})


@pytest.mark.parametrize(
    ("ref", "skopeo", "expected"),
    [
        ("pipglr:dev", True, [["podman", "image", "inspect", "pipglr:dev"]]),
        (REMOTE, True, [["skopeo", "inspect", "--no-tags", REMOTE]]),
        (REMOTE, False, [
            ["podman", "pull", "--quiet", "127.0.0.1:5000/pipglr:latest"],
            ["podman", "image", "inspect", "127.0.0.1:5000/pipglr:latest"],
        ]),
    ],
    ids=["local", "skopeo", "podman-pull"],
)  # fmt: skip
def test_inspect_commands(ref: str, skopeo: bool, expected: list[list[str]]) -> None:
    """A local name is inspected in place; a registry ref by skopeo, else pulled first."""
    assert registry.inspect_commands(ref, skopeo) == expected


def test_no_tls_verify_reaches_every_registry_command() -> None:
    """--no-tls-verify is passed to skopeo and to podman pull."""
    assert "--tls-verify=false" in registry.inspect_commands(REMOTE, True, False)[0]
    assert "--tls-verify=false" in registry.inspect_commands(REMOTE, False, False)[0]


def test_inspect_reads_labels_and_digest() -> None:
    """skopeo's JSON object and podman's JSON list both give labels and digest."""
    run = FakeRun((0, _inspect_json(), ""))
    info = registry.inspect(REMOTE, run=run, skopeo=True)
    assert info and info.labels == {"a": "b"} and info.digest == DIGEST
    listed = json.dumps([{"Digest": "sha256:1", "Labels": None,
                          "RepoDigests": [f"127.0.0.1:5000/pipglr@{DIGEST}",
                                          "other/name@sha256:2"]}])  # fmt: skip
    info = registry.inspect(REMOTE, run=FakeRun((0, "", ""), (0, listed, "")), skopeo=False)
    assert info and info.digests == {"sha256:1", DIGEST}, "only this repository's digests"


def test_missing_image_is_none_and_other_failures_raise() -> None:
    """Nothing published yet is an answer (None); an unreachable registry is an error."""
    missing = FakeRun((1, "", "Error: manifest unknown: manifest unknown"))
    assert registry.inspect(REMOTE, run=missing, skopeo=True) is None
    down = FakeRun((125, "", "Error: pinging container registry: connection refused"))
    with pytest.raises(RegistryError, match="connection refused"):
        registry.inspect(REMOTE, run=down, skopeo=True)


def test_push_retries_with_growing_pauses() -> None:
    """Two failed pushes, then success: three attempts, pauses of 5 and 10 s."""
    run = FakeRun((125, "", "Error: 502 Bad Gateway"), (125, "", "Error: timeout"), (0, "", ""))
    pauses: list[float] = []
    digest = registry.push("localhost/pipglr:latest", REMOTE, run=run, sleep=pauses.append)
    assert digest == DIGEST and pauses == [5.0, 10.0] and len(run.calls) == 3
    argv = run.calls[0]
    assert argv[:2] == ["podman", "push"] and argv[-2:] == ["localhost/pipglr:latest", REMOTE]


def test_push_gives_up_after_the_last_retry() -> None:
    """Every attempt failing ends in one error naming the count and the last output."""
    run = FakeRun(*[(125, "", "Error: 503")] * 3)
    with pytest.raises(RegistryError, match="failed 3 times, last: Error: 503"):
        registry.push("img", REMOTE, run=run, sleep=lambda _: None)


def test_manifest_push_pushes_the_list_with_its_images() -> None:
    """A multi-arch list is pushed with `podman manifest push --all`."""
    argv = registry.push_command("pipglr-list", REMOTE, Path("/d"), True, False)
    assert argv == ["podman", "manifest", "push", "--all", "--tls-verify=false",
                    "--digestfile", "/d", "pipglr-list", REMOTE]  # fmt: skip


def test_verify_compares_the_served_digest() -> None:
    """The pushed digest must be what the registry serves afterwards."""
    registry.verify(REMOTE, DIGEST, run=FakeRun((0, _inspect_json(), "")), skopeo=True)
    other = FakeRun((0, _inspect_json("sha256:" + "b" * 64), ""))
    with pytest.raises(RegistryError, match="serves sha256:b"):
        registry.verify(REMOTE, DIGEST, run=other, skopeo=True)


@pytest.mark.parametrize(
    ("ref", "repo"),
    [("docker://h:5000/a/b:t", "h:5000/a/b"), ("h/b@sha256:1", "h/b"), ("b:t", "b")],
)
def test_repository_strips_transport_tag_and_digest(ref: str, repo: str) -> None:
    """RepoDigests are matched on HOST/NAME alone."""
    assert registry.repository(ref) == repo


def test_expand_tags_fills_version_and_date() -> None:
    """{runner_version} comes from the image's label, {date} is ISO; duplicates drop."""
    labels = {"io.pipglr.runner.version": "v18.11.4"}
    tags = registry.expand_tags(
        ["latest", "{runner_version}", "{date}", "latest"], labels, date(2026, 11, 29)
    )
    assert tags == ["latest", "v18.11.4", "2026-11-29"]
    with pytest.raises(RegistryError, match="needs the image's io.pipglr.runner.version"):
        registry.expand_tags(["{runner_version}"], {}, date(2026, 11, 29))
    with pytest.raises(RegistryError, match="not a valid image tag"):
        registry.expand_tags(["bad tag"], labels, date(2026, 11, 29))


def test_publish_manifest_list_pushes_and_verifies_each_tag() -> None:
    """Two arch images: a list is made of them, pushed with --all and checked per tag."""
    verified = _inspect_json()
    run = FakeRun((1, "", "no such list"), (0, "", ""), (0, "", ""), (0, "", ""),
                  (0, "", ""), (0, verified, ""), (0, "", ""), (0, verified, ""))  # fmt: skip
    repo = "docker://127.0.0.1:5000/pipglr"
    pushed = registry.publish(
        ["img-amd64", "img-arm64"], repo, ["latest", "v1"], run=run, skopeo=True
    )
    assert pushed == {f"{repo}:latest": DIGEST, f"{repo}:v1": DIGEST}
    verbs = [" ".join(argv[1:3]) for argv in run.calls]
    assert verbs[:4] == ["manifest rm", "manifest create", "manifest add", "manifest add"]
    assert run.calls[2][-1] == "containers-storage:img-amd64"
    assert run.calls[4][:4] == ["podman", "manifest", "push", "--all"]


def test_publish_refuses_a_local_destination() -> None:
    """The destination must be a registry reference."""
    with pytest.raises(RegistryError, match="use docker://HOST/NAME"):
        registry.publish(["img"], "localhost/pipglr", ["latest"], run=FakeRun())
