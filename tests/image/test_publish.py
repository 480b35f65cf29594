"""Engine tests of publish and rebuild-needed against a registry on 127.0.0.1.

Debian's ``docker-registry`` serves a temporary directory on a free loopback port
for the module; the images are small (labels on the offline base), named
``localhost/pipglr-chaintest-<pid>-*``, and removed afterwards with what was pulled
from the test registry.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipglr import base, provenance, registry
from tests.harness import registry as test_registry_mod
from tests.image.infra import labelled_image, remove_images, unavailable

LOG_DIR = Path(__file__).resolve().parents[2] / "build" / "test-logs"
pytestmark = [pytest.mark.image]
PREFIX = f"localhost/pipglr-chaintest-{os.getpid()}-"
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


def test_publish_manifest_list(test_registry: str, tmp_path: Path) -> None:
    """Per-arch images go out as one manifest list whose digest is verified."""
    images = [labelled_image(tmp_path, PREFIX + name, FACTS) for name in ("arch-a", "arch-b")]
    pushed = registry.publish(images, test_registry, ["multi"], tls_verify=False)
    digest = pushed[f"{test_registry}:multi"]
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"{test_registry}:multi"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if raw.returncode == 0:
        assert "manifest.list" in raw.stdout or "image.index" in raw.stdout
    assert digest.startswith("sha256:")
    subprocess.run(["podman", "manifest", "rm", f"localhost/{test_registry.rpartition('/')[2]}"
                    "-publish-list"], capture_output=True, check=False)  # fmt: skip
