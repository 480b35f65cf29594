"""Engine tests of publish and rebuild-needed against a registry on 127.0.0.1.

Debian's ``docker-registry`` serves a temporary directory on a free loopback port
for the module; the images are small (labels on the offline base), named
``localhost/pipglr-chaintest-<pid>-*``, and removed afterwards with what was pulled
from the test registry.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipglr.build import base, provenance
from pipglr.release import registry
from tests.harness import registry as test_registry_mod
from tests.image.infra import labelled_image, remove_images, unavailable

LOG_DIR = Path(__file__).resolve().parents[2] / "build" / "test-logs"
pytestmark = [pytest.mark.image]
PREFIX = f"localhost/pipglr-chaintest-{os.getpid()}-"
#: What a manifest list is called in OCI and Docker terms.
LIST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
FACTS = provenance.Provenance("sha256:" + "b" * 64, "v18.11.4", "c" * 64, "sha256:1", "e" * 40)


@pytest.fixture(scope="module")
def test_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``docker://127.0.0.1:PORT/pipglr-chaintest-<pid>`` served by docker-registry."""
    if shutil.which("podman") is None:
        unavailable("podman is not installed (apt-get install podman)")
    if not test_registry_mod.available():
        unavailable(test_registry_mod.MISSING)
    if subprocess.run(["podman", "image", "exists", base.DEFAULT_TAG]).returncode != 0:
        unavailable(f"no {base.DEFAULT_TAG}: run `invoke base` first")
    with test_registry_mod.serve(tmp_path_factory.mktemp("registry")) as host:
        try:
            yield f"docker://{host}/pipglr-chaintest-{os.getpid()}"
        finally:
            remove_images(PREFIX, f"{host}/")


@pytest.mark.parametrize("skopeo", [True, False], ids=["skopeo", "podman-pull"])
def test_publish_then_rebuild_needed(test_registry: str, tmp_path: Path, skopeo: bool) -> None:
    """publish pushes every tag and checks its digest; the published labels then
    decide: the same facts need no rebuild, a new package list does."""
    if skopeo and shutil.which("skopeo") is None:
        unavailable("skopeo is not installed (apt-get install skopeo)")
    image = labelled_image(tmp_path, PREFIX + "published", FACTS)
    tags = registry.expand_tags(["latest", "{runner_version}", "{date}"],
                                FACTS.to_labels(), datetime.date.today())  # fmt: skip
    run = registry.run_command
    pushed = registry.publish([image], test_registry, tags, tls_verify=False, run=run)
    assert sorted(pushed) == sorted(f"{test_registry}:{t}" for t in tags)
    assert len(set(pushed.values())) == 1, "one image, one digest under every tag"

    info = registry.inspect(f"{test_registry}:latest", tls_verify=False, skopeo=skopeo)
    assert info is not None and next(iter(pushed.values())) in info.digests
    previous = provenance.Provenance.from_labels(info.labels)
    assert provenance.decide(previous, FACTS).needed is False
    newer = provenance.Provenance(**{**FACTS.__dict__, "packages_digest": "sha256:2"})
    assert provenance.decide(previous, newer).needed is True
    rebased = provenance.Provenance(**{**FACTS.__dict__, "base_digest": "sha256:" + "d" * 64})
    decisions = {"unchanged": provenance.decide(previous, FACTS),
                 "changed base": provenance.decide(previous, rebased)}  # fmt: skip
    assert decisions["changed base"].needed is True
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / f"rebuild-needed-{'skopeo' if skopeo else 'podman'}.txt").write_text("".join(
        f"== {case}: {'publish (exit 0)' if d.needed else 'nothing changed (exit 1)'}\n"
        + "".join(f"  {line}\n" for line in d.reasons)
        for case, d in decisions.items()
    ))  # fmt: skip
    missing = registry.inspect(f"{test_registry}:never-pushed", tls_verify=False, skopeo=skopeo)
    assert missing is None, "an unpublished tag reads as nothing published"


def raw_manifest(reference: str) -> bytes:
    """The manifest the registry serves for ``reference`` (``docker://...``), as bytes."""
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", reference],
                         capture_output=True, check=False)  # fmt: skip
    assert raw.returncode == 0, raw.stderr.decode(errors="replace")
    return raw.stdout


def test_publish_manifest_list(test_registry: str, tmp_path: Path) -> None:
    """Per-arch images go out as one manifest list whose digest is verified: the
    registry serves a list (OCI index or Docker manifest list) under the tag, the digest
    publish returned is that list's (sha256 of the bytes served), and it names two
    distinct images the registry serves too."""
    if shutil.which("skopeo") is None:
        unavailable("skopeo is not installed (apt-get install skopeo)")
    images = [labelled_image(tmp_path, PREFIX + name, FACTS) for name in ("arch-a", "arch-b")]
    try:
        pushed = registry.publish(images, test_registry, ["multi"], tls_verify=False)
    finally:
        subprocess.run(["podman", "manifest", "rm", f"localhost/{test_registry.rpartition('/')[2]}"
                        "-publish-list"], capture_output=True, check=False)  # fmt: skip
    digest = pushed[f"{test_registry}:multi"]
    served = raw_manifest(f"{test_registry}:multi")
    assert digest == "sha256:" + hashlib.sha256(served).hexdigest(), "not the list served"
    manifest = json.loads(served)
    assert manifest.get("mediaType") in LIST_TYPES, manifest.get("mediaType")
    children = [entry["digest"] for entry in manifest["manifests"]]
    assert len(set(children)) == 2, f"two distinct images: {children}"
    for child in children:
        single = json.loads(raw_manifest(f"{test_registry}@{child}"))
        assert "layers" in single and single.get("mediaType") not in LIST_TYPES, single
