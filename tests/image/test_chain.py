"""Engine tests of image chains and the package-digest label, on the local base image.

Small images (an ``echo`` or a ``COPY`` on top of the offline base ``invoke base``
bootstraps), and pipglr's own chain (``ci/images``: a freshly bootstrapped base, pipglr
built on it), all named ``localhost/pipglr-chaintest-<pid>-*`` and removed afterwards.
None of the session fixtures (the pipglr containers) is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from pipglr import chain
from pipglr.build import base, engine, imagebuild, provenance
from pipglr.chain import Chain, Definition
from tests.image.infra import remove_images, unavailable

REPO = Path(__file__).resolve().parents[2]
LOG_DIR = REPO / "build" / "test-logs"
pytestmark = [pytest.mark.image]
PREFIX = f"localhost/pipglr-chaintest-{os.getpid()}-"


def podman(*args: str, input_text: str | None = None) -> str:
    result = subprocess.run(
        ["podman", *args], input=input_text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"podman {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


@pytest.fixture
def own_images() -> Iterator[None]:
    """Afterwards every image this module made is removed."""
    if shutil.which("podman") is None:
        unavailable("podman is not installed")
    try:
        yield
    finally:
        remove_images(PREFIX)


@pytest.fixture
def offline_base(own_images: None) -> str:
    """The local base image ``invoke base`` bootstraps."""
    if subprocess.run(["podman", "image", "exists", base.DEFAULT_TAG]).returncode != 0:
        unavailable(f"no {base.DEFAULT_TAG}: run `invoke base` first")
    return base.DEFAULT_TAG


def build_external(directory: Path, base_image: str, version: str) -> str:
    """The chain's external base: an image outside the chain, rebuilt with new content."""
    directory.mkdir(exist_ok=True)
    (directory / "Containerfile").write_text(
        f"FROM {base_image}\nRUN echo {version} > /external-version\n"
    )
    podman("build", "--quiet", "--tag", f"{PREFIX}external", str(directory))
    return podman("image", "inspect", "--format", "{{.Id}}", f"{PREFIX}external")


def quiet_build(built: list[str]) -> chain.Build:
    def build(definition: Definition, labels: Mapping[str, str]) -> None:
        built.append(definition.name)
        argv = chain.build_command(definition, labels)
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr}"

    return build


def run_chain(directory: Path) -> list[str]:
    built: list[str] = []
    chain.run(Chain.load(directory, PREFIX), chain.podman_lookup, quiet_build(built))
    return built


def image_id(name: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", PREFIX + name)


def test_changed_base_rebuilds_exactly_its_dependents(offline_base: str, tmp_path: Path) -> None:
    """root (on an external image) <- child; sibling on the offline base. Rebuilding the
    external image rebuilds root and child, not sibling; unchanged, nothing rebuilds."""
    build_external(tmp_path / "external", offline_base, "v1")
    defs = tmp_path / "chain"
    for name, text in {
        "root": f"FROM {PREFIX}external\nRUN echo root > /root-layer\n",
        "child": f"FROM {PREFIX}root\nCOPY greeting /greeting\n",
        "sibling": f"FROM {offline_base}\nRUN echo sibling > /sibling-layer\n",
    }.items():
        (defs / name).mkdir(parents=True)
        (defs / name / "Containerfile").write_text(text)
    (defs / "child/greeting").write_text("hello\n")

    assert run_chain(defs) == ["root", "child", "sibling"], "first run builds all, in order"
    before = {name: image_id(name) for name in ("root", "child", "sibling")}
    assert run_chain(defs) == [], "nothing changed: nothing is rebuilt"

    build_external(tmp_path / "external", offline_base, "v2")
    planned = chain.plan(Chain.load(defs, PREFIX), chain.podman_lookup)
    steps = {s.name: s for s in planned}
    assert steps["root"].reasons[0].startswith(f"parent {PREFIX}external:latest is now")
    assert steps["child"].reasons == ("parent root is rebuilt",)
    assert not steps["sibling"].rebuild

    built: list[str] = []
    done = chain.run(Chain.load(defs, PREFIX), chain.podman_lookup, quiet_build(built))
    assert built == ["root", "child"], "exactly the dependents of the base"
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / "chain.txt").write_text(  # what `invoke chain --dry-run` / `invoke chain` print
        f"== dry run after the base changed\n{chain.describe(planned)}\n"
        f"== build\n{chain.describe(done, done=True)}\n"
    )
    after = {name: image_id(name) for name in ("root", "child", "sibling")}
    assert after["root"] != before["root"] and after["child"] != before["child"]
    assert after["sibling"] == before["sibling"], "sibling does not stand on the base"
    assert podman("run", "--rm", PREFIX + "child", "cat", "/external-version") == "v2"


def test_package_digest_label_needs_no_layer(offline_base: str, tmp_path: Path) -> None:
    """The build's second step labels the image with the digest of the package list it
    wrote, as a config change only (same layers as the first step)."""
    listing_path = provenance.PACKAGE_LIST_PATH
    (tmp_path / "Containerfile").write_text(
        f"FROM {offline_base}\nRUN mkdir -p /usr/share/pipglr && dpkg-query -W "
        f"-f='${{binary:Package}}=${{Version}}\\n' | LC_ALL=C sort > {listing_path}\n"
    )
    tag = f"{PREFIX}packages"
    first = podman("build", "--quiet", "--tag", tag, str(tmp_path)).splitlines()[-1]
    with engine.client() as client, open(os.devnull, "w") as sink:
        facts = provenance.Provenance(base_digest=engine.image_digest(client, offline_base))
        final, facts = imagebuild.stamp_packages(client, first, tag, facts, sink)
    listing = podman("run", "--rm", tag, "cat", provenance.PACKAGE_LIST_PATH)
    assert facts.packages_digest == provenance.package_list_digest(listing)
    labels = podman("image", "inspect", "--format", "{{json .Labels}}", tag)
    assert f'"{provenance.LABEL_PACKAGES_DIGEST}":"{facts.packages_digest}"' in labels
    layers = "{{json .RootFS.Layers}}"
    assert final != first and podman("image", "inspect", "--format", layers, final) == podman(
        "image", "inspect", "--format", layers, first
    )


def invoke_chain(*args: str, log: list[str]) -> str:
    """`invoke chain ci/images` with this module's prefix; its output goes to the log."""
    argv = [sys.executable, "-m", "invoke", "chain", "ci/images", f"--prefix={PREFIX}", *args]
    env = {**os.environ, "PIPGLR_BUILD_FLAGS": "--standin"}
    done = subprocess.run(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        check=False,
    )  # fmt: skip
    log.append(f"$ invoke chain ci/images --prefix={PREFIX} {' '.join(args)}\n{done.stdout}")
    assert done.returncode == 0, f"invoke chain: {done.stdout[-3000:]}"
    return done.stdout


def inspect(image: str, template: str) -> str:
    return podman("image", "inspect", "--format", template, image)


def test_pipglrs_own_chain_builds_base_then_image(own_images: None) -> None:
    """ci/images for real: the base bootstrapped from the mirror, then pipglr built on
    it by `invoke build` (stand-in runner), both labelled; then nothing to do; a new
    image under the base's name makes pipglr due again; the weekly
    `--rebuild=pipglr-base` bootstraps the base again and rebuilds pipglr on it."""
    log: list[str] = []
    base_image, image = f"{PREFIX}pipglr-base:latest", f"{PREFIX}pipglr:latest"
    try:
        planned = invoke_chain("--dry-run", log=log)
        assert f"1. pipglr-base ({base_image}): rebuild" in planned
        assert f"2. pipglr ({image}): rebuild" in planned
        done = invoke_chain(log=log)
        assert done.strip().splitlines()[-4:] == [
            f"1. pipglr-base ({base_image}): rebuilt",
            f"     - {base_image} does not exist",
            f"2. pipglr ({image}): rebuilt",
            f"     - {image} does not exist",
        ]
        base_layers = inspect(base_image, "{{json .RootFS.Layers}}").strip("[]").split(",")
        image_layers = inspect(image, "{{json .RootFS.Layers}}").strip("[]").split(",")
        assert image_layers[: len(base_layers)] == base_layers, "pipglr stands on the base"
        assert len(image_layers) > len(base_layers)
        parents = chain.parse_parents(
            inspect(image, f'{{{{index .Labels "{chain.LABEL_PARENTS}"}}}}')
        )
        assert parents == {base_image: inspect(base_image, "{{.Id}}")}
        assert (
            inspect(image, '{{index .Labels "org.opencontainers.image.base.name"}}') == base_image
        )

        again = invoke_chain("--dry-run", log=log)
        assert "1. pipglr-base" in again and again.count(": up to date") == 2, again

        old_id = inspect(base_image, "{{.Id}}")
        podman("build", "--quiet", "--tag", base_image, "--label", "test.rebootstrap=1",
               "-", input_text=f"FROM {base_image}\n")  # fmt: skip
        moved = invoke_chain("--dry-run", log=log)
        assert f"1. pipglr-base ({base_image}): up to date" in moved
        assert f"2. pipglr ({image}): rebuild" in moved
        assert f"parent {base_image} is now" in moved and f"(built on {old_id[:12]})" in moved
        before = inspect(image, "{{.Id}}")
        weekly = invoke_chain("--rebuild=pipglr-base", log=log)
        assert weekly.strip().splitlines()[-4:] == [
            f"1. pipglr-base ({base_image}): rebuilt",
            "     - asked for by name",
            f"2. pipglr ({image}): rebuilt",
            "     - parent pipglr-base is rebuilt",
        ]
        parents = chain.parse_parents(
            inspect(image, f'{{{{index .Labels "{chain.LABEL_PARENTS}"}}}}')
        )
        new_base = inspect(base_image, "{{.Id}}")
        assert new_base != old_id and parents == {base_image: new_base}
        assert inspect(image, "{{.Id}}") != before
    finally:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        (LOG_DIR / "chain-pipglr.txt").write_text("\n".join(log))
