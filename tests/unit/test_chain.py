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


def command_definition(root: Path, name: str, command: str, **files: str) -> Path:
    """A definition NAME built by a ``build`` command, with extra files."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "build").write_text(f"# how {name} is built\n{command}\n")
    for file, text in files.items():
        (d / file).write_text(text)
    return d


def test_build_file_definition_fills_in_images(tmp_path: Path) -> None:
    """A build command instead of a Containerfile: {image} and {images[NAME]} are
    filled in, $VARS are left to the shell, parents come from `depends`."""
    write(tmp_path, "base")
    command_definition(tmp_path, "app", "make-image --on {images[base]} --tag {image} $FLAGS",
                       depends="base\n")  # fmt: skip
    loaded = Chain.load(tmp_path)
    app = loaded.definitions["app"]
    assert app.command == "make-image --on localhost/base:latest --tag localhost/app:latest $FLAGS"
    assert app.from_images == () and loaded.parents["app"] == ("base",)
    assert loaded.order == ("base", "app")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"notes": "x"}, "has neither a Containerfile nor a build file"),
        ({"build": "one\ntwo\n"}, "build has 2 lines: write one command line"),
        ({"build": "make {tag}"}, "cannot fill in 'tag': the command may use {image}"),
        ({"build": "make ${HOME}"}, "cannot fill in 'HOME'"),
        ({"build": "make", "sources": "../nowhere\n"}, "sources names ../nowhere, which does"),
    ],
)
def test_bad_definition_is_one_line(tmp_path: Path, files: dict[str, str], message: str) -> None:
    """Each mistake in a definition is refused with one line naming it."""
    d = tmp_path / "defs" / "app"
    d.mkdir(parents=True)
    for file, text in files.items():
        (d / file).write_text(text)
    with pytest.raises(UsageError) as info:
        Chain([Definition.load(d)])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_sources_count_as_context_but_not_python_caches(tmp_path: Path) -> None:
    """Changing a file a `sources` line names changes the context hash; a
    __pycache__ under it does not."""
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg/mod.py").write_text("A = 1\n")
    d = command_definition(tmp_path / "defs", "app", "make {image}", sources="../../src\n")
    before = Definition.load(d).context_hash()
    (src / "pkg/__pycache__").mkdir()
    (src / "pkg/__pycache__/mod.cpython-311.pyc").write_bytes(b"\0")
    assert Definition.load(d).context_hash() == before
    (src / "pkg/mod.py").write_text("A = 2\n")
    assert Definition.load(d).context_hash() != before


def test_rebuild_by_name_takes_its_dependents(diamond: Path) -> None:
    """Asking for base rebuilds base and what stands on it, though nothing changed; an
    unknown name is refused."""
    podman = FakePodman()
    podman.run(diamond)
    steps = {s.name: s for s in chain.plan(Chain.load(diamond), podman.lookup, ["base"])}
    assert steps["base"].reasons == ("asked for by name",)
    assert [n for n, s in steps.items() if s.rebuild] == ["base", "left", "right", "top"]
    built: list[str] = []
    podman.built = built
    chain.run(Chain.load(diamond), podman.lookup, podman.build, ["left"])
    assert built == ["left", "top"]
    with pytest.raises(UsageError, match="no definition nope in this chain: name one of base"):
        chain.plan(Chain.load(diamond), podman.lookup, ["nope"])


def test_command_definition_is_labelled_after_its_build(tmp_path: Path) -> None:
    """What the chain runs after a build command: a FROM-only build (Containerfile on
    stdin) adding the chain's labels under the same name."""
    command_definition(tmp_path, "app", "make {image}")
    definition = Chain.load(tmp_path).definitions["app"]
    argv = chain.build_command(definition, {chain.LABEL_CONTEXT: "sha256:x"})
    assert argv == ["podman", "build", "--quiet", "--tag", "localhost/app:latest",
                    "--label=io.pipglr.chain.context=sha256:x", "-"]  # fmt: skip


def test_pipglrs_own_chain_is_base_then_image() -> None:
    """ci/images: the bootstrapped base, then pipglr built on it by `invoke build` from
    the files the image is assembled from."""
    loaded = Chain.load(Path(__file__).resolve().parents[2] / "ci" / "images")
    assert loaded.order == ("pipglr-base", "pipglr")
    image = loaded.definitions["pipglr"]
    assert (
        "invoke build --base-image localhost/pipglr-base:latest --tag localhost/pipglr:latest"
        in str(image.command)
    )
    names = {name for name, _ in image.context_files()}
    assert {"../../../Containerfile", "../../../pipglr/chain.py"} <= names
    assert "invoke base --tag localhost/pipglr-base:latest" in str(
        loaded.definitions["pipglr-base"].command
    )
