"""Image chains: FROM parsing, graph, cycles, order and what a run rebuilds."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path

import pytest

from pipglr import chain
from pipglr.chain import Chain, Definition, Image
from pipglr.errors import UsageError

BASE = "docker.io/library/debian:trixie-slim"


def write(root: Path, name: str, *parents: str, depends: str = "", extra: str = "") -> None:
    """A definition NAME whose FROM lines name the chain images of ``parents`` (or an
    external BASE when none), with an optional ``depends`` file."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    froms = [f"FROM localhost/{p} AS {p}-stage" for p in parents[:-1]]
    froms.append(f"FROM localhost/{parents[-1]}" if parents else f"FROM {BASE}")
    (d / "Containerfile").write_text("\n".join([*froms, f"RUN echo {name} {extra}", ""]))
    if depends:
        (d / "depends").write_text(depends)


class FakePodman:
    """Local image storage: lookup by name, and a build that stores a new image id."""

    def __init__(self) -> None:
        self.images: dict[str, Image] = {chain.normalize(BASE): Image("base-1", {})}
        self.built: list[str] = []
        self.ids = itertools.count(1)

    def lookup(self, image: str) -> Image | None:
        return self.images.get(image)

    def build(self, definition: Definition, labels: Mapping[str, str]) -> None:
        self.built.append(definition.name)
        self.images[definition.image] = Image(f"{definition.name}-{next(self.ids)}", labels)

    def run(self, directory: Path) -> list[str]:
        self.built = []
        chain.run(Chain.load(directory), self.lookup, self.build)
        return self.built


@pytest.fixture
def diamond(tmp_path: Path) -> Path:
    """base <- left, right <- top (two FROM lines), plus an unrelated `solo`."""
    write(tmp_path, "base")
    write(tmp_path, "left", "base")
    write(tmp_path, "right", "base")
    write(tmp_path, "top", "left", "right")
    write(tmp_path, "solo")
    return tmp_path


def test_from_lines_with_args_stages_and_flags() -> None:
    """ARG defaults are substituted; stages, scratch and --platform are handled."""
    text = (
        "ARG BASE=localhost/base\nFROM --platform=linux/amd64 ${BASE} AS build\n"
        "RUN true\nFROM build\nFROM scratch\nFROM \\\n  other:1\n"
    )
    assert chain.from_images(text) == ("localhost/base:latest", "other:1")


def test_diamond_order_puts_parents_first(diamond: Path) -> None:
    """Each definition comes after all its parents; ties by name."""
    order = Chain.load(diamond).order
    assert order == ("base", "left", "right", "solo", "top")
    assert Chain.load(diamond).parents["top"] == ("left", "right")


def test_cycle_is_one_line_naming_it(tmp_path: Path) -> None:
    """a -> b -> c -> a is refused with the cycle spelled out."""
    write(tmp_path, "a", "c")
    write(tmp_path, "b", "a")
    write(tmp_path, "c", "b")
    with pytest.raises(UsageError) as info:
        Chain.load(tmp_path)
    message = str(info.value)
    assert "\n" not in message and "dependency cycle: a -> c -> b -> a" in message


def test_missing_parent_is_external_unless_declared(tmp_path: Path) -> None:
    """A FROM image outside the chain is a base; a `depends` name outside it is an error."""
    write(tmp_path, "app", "not-in-chain")
    loaded = Chain.load(tmp_path)
    assert loaded.parents["app"] == () and loaded.external["app"] == (
        "localhost/not-in-chain:latest",
    )
    write(tmp_path, "app", "not-in-chain", depends="tools\n")
    with pytest.raises(UsageError, match="app/depends names 'tools', which is not in"):
        Chain.load(tmp_path)


def test_depends_file_adds_a_parent(tmp_path: Path) -> None:
    """A dependency no FROM line shows (e.g. COPY --from) is declared in `depends`."""
    write(tmp_path, "tools")
    write(tmp_path, "app", depends="# copied from\ntools\n")
    assert Chain.load(tmp_path).order == ("tools", "app")


def test_first_run_builds_all_then_nothing(diamond: Path) -> None:
    """Nothing built yet: everything, in order; unchanged afterwards: nothing."""
    podman = FakePodman()
    assert podman.run(diamond) == ["base", "left", "right", "solo", "top"]
    assert podman.run(diamond) == []
    steps = chain.plan(Chain.load(diamond), podman.lookup)
    assert not any(s.rebuild for s in steps) and all(s.reasons == () for s in steps)


def test_leaf_change_rebuilds_only_the_leaf(diamond: Path) -> None:
    """Changing top/ (nobody's parent) rebuilds top alone."""
    podman = FakePodman()
    podman.run(diamond)
    write(diamond, "top", "left", "right", extra="changed")
    assert podman.run(diamond) == ["top"]


def test_base_change_rebuilds_all_its_dependents(diamond: Path) -> None:
    """Changing base/ rebuilds base, left, right and top (not solo), with reasons."""
    podman = FakePodman()
    podman.run(diamond)
    write(diamond, "base", extra="changed")
    steps = {s.name: s for s in chain.plan(Chain.load(diamond), podman.lookup)}
    assert "base/ changed since" in steps["base"].reasons[0]
    assert steps["top"].reasons == ("parent left is rebuilt", "parent right is rebuilt")
    assert podman.run(diamond) == ["base", "left", "right", "top"]


def test_external_base_moving_rebuilds_its_dependents(diamond: Path) -> None:
    """A new image under the external base's name (a pull) rebuilds what stands on it."""
    podman = FakePodman()
    podman.run(diamond)
    podman.images[chain.normalize(BASE)] = Image("base-2", {})
    steps = {s.name: s for s in chain.plan(Chain.load(diamond), podman.lookup)}
    assert steps["solo"].reasons == (f"parent {BASE} is now base-2 (built on base-1)",)
    assert podman.run(diamond) == ["base", "left", "right", "solo", "top"]


def test_describe_prints_order_and_reasons(diamond: Path) -> None:
    """The dry-run text: numbered order, verdict, one reason per line."""
    text = chain.describe(chain.plan(Chain.load(diamond), FakePodman().lookup))
    assert text.splitlines()[0] == "1. base (localhost/base:latest): rebuild"
    assert "     - localhost/base:latest does not exist" in text


def test_build_command_labels_and_context(tmp_path: Path) -> None:
    """podman build gets the tag, the chain labels and the definition's directory."""
    write(tmp_path, "base")
    definition = Chain.load(tmp_path).definitions["base"]
    argv = chain.build_command(definition, {chain.LABEL_CONTEXT: "sha256:x"})
    where = tmp_path / "base"
    assert argv == ["podman", "build", "--layers", "--tag", "localhost/base:latest",
                    "--label=io.pipglr.chain.context=sha256:x",
                    "--file", str(where / "Containerfile"), str(where)]  # fmt: skip


def test_image_file_names_the_image(tmp_path: Path) -> None:
    """An `image` file overrides PREFIX + directory name; children find it by that name."""
    write(tmp_path, "base")
    (tmp_path / "base/image").write_text("registry.example/team/base:2\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app/Containerfile").write_text("FROM registry.example/team/base:2\n")
    assert Chain.load(tmp_path).parents["app"] == ("base",)
