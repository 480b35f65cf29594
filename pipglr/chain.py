"""Image chains: build a directory of image definitions in dependency order.

Each subdirectory of a chain directory is one definition: a ``Containerfile`` and its
build context, built as ``PREFIX + directory name`` (``localhost/`` by default) or the
name in an optional one-line ``image`` file. Its parents are the images its ``FROM``
lines name (``ARG`` defaults before the first ``FROM`` are substituted, build stages
are not parents) plus the definitions listed in an optional ``depends`` file, one
name a line, for dependencies no ``FROM`` shows. A ``FROM`` image that is no
definition of the chain is external (a base image), which is fine; a ``depends``
name that is no definition is an error, and so is a cycle.

A definition is rebuilt when its image does not exist, when the hash of its
directory differs from the one recorded in the image's :data:`LABEL_CONTEXT`, when a
parent is rebuilt in the same run, or when a parent's image id differs from the one
recorded in :data:`LABEL_PARENTS` (an external base that was pulled or re-imported).
Standard library only; podman is reached through the injectable ``lookup`` and
``build`` callables.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipglr.errors import EngineError, UsageError

LABEL_CONTEXT = "io.pipglr.chain.context"
LABEL_PARENTS = "io.pipglr.chain.parents"
DEFAULT_PREFIX = "localhost/"
_FROM_RE = re.compile(r"^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
_ARG_RE = re.compile(r"^ARG\s+(\w+)=(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Image:
    """What local podman knows of an image: its id and labels."""

    id: str
    labels: Mapping[str, str]


Lookup = Callable[[str], "Image | None"]
Build = Callable[["Definition", Mapping[str, str]], None]


def normalize(ref: str) -> str:
    """``ref`` with a ``:latest`` tag made explicit, for comparing image names."""
    last = ref.rpartition("/")[2]
    return ref if ":" in last or "@" in last else f"{ref}:latest"


@dataclass(frozen=True)
class Definition:
    """One image of a chain: its directory, image name and parent images."""

    name: str
    path: Path
    image: str
    from_images: tuple[str, ...]
    depends: tuple[str, ...]

    @classmethod
    def load(cls, path: Path, prefix: str = DEFAULT_PREFIX) -> Definition:
        """Read ``path/Containerfile`` and the optional ``image`` and ``depends`` files."""
        containerfile = path / "Containerfile"
        if not containerfile.is_file():
            raise UsageError(f"{path} has no Containerfile: every chain entry needs one")
        named = path / "image"
        image = named.read_text().strip() if named.is_file() else f"{prefix}{path.name}"
        deps = path / "depends"
        depends = tuple(_lines(deps.read_text())) if deps.is_file() else ()
        froms = from_images(containerfile.read_text())
        return cls(path.name, path, normalize(image), froms, depends)

    def context_hash(self) -> str:
        """``sha256:HEX`` over every file's relative path, mode and content."""
        digest = hashlib.sha256()
        for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(self.path)}\0{file.stat().st_mode:o}\0".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        return f"sha256:{digest.hexdigest()}"


def _lines(text: str) -> list[str]:
    return [ln.split("#", 1)[0].strip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]


def from_images(containerfile: str) -> tuple[str, ...]:
    """The images a Containerfile's ``FROM`` lines name (build stages and ``scratch``
    excluded), with ``ARG`` defaults declared before the first ``FROM`` substituted."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    images: list[str] = []
    for line in _lines(containerfile.replace("\\\n", " ")):
        arg, found = _ARG_RE.match(line), _FROM_RE.match(line)
        if arg and not images and not stages:
            args[arg.group(1)] = arg.group(2).strip("\"'")
        elif found:
            ref = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)),
                         found.group(1))  # fmt: skip
            if ref not in stages and ref != "scratch":
                images.append(normalize(ref))
            if found.group(2):
                stages.add(found.group(2))
    return tuple(dict.fromkeys(images))


class Chain:
    """The definitions of one chain directory and their dependency graph."""

    def __init__(self, definitions: Iterable[Definition]) -> None:
        self.definitions = {d.name: d for d in definitions}
        by_image = {d.image: d.name for d in self.definitions.values()}
        self.parents: dict[str, tuple[str, ...]] = {}
        self.external: dict[str, tuple[str, ...]] = {}
        for d in self.definitions.values():
            for dep in d.depends:
                if dep not in self.definitions:
                    raise UsageError(
                        f"{d.name}/depends names {dep!r}, which is not in this chain: "
                        f"add {dep}/Containerfile or remove the line"
                    )
            inner = [by_image[i] for i in d.from_images if i in by_image]
            self.parents[d.name] = tuple(dict.fromkeys([*inner, *d.depends]))
            self.external[d.name] = tuple(i for i in d.from_images if i not in by_image)
        self.order = self._topological_order()

    @classmethod
    def load(cls, directory: Path, prefix: str = DEFAULT_PREFIX) -> Chain:
        """Every subdirectory of ``directory`` holding a Containerfile."""
        if not directory.is_dir():
            raise UsageError(f"{directory} is not a directory of image definitions")
        found = [Definition.load(p, prefix) for p in sorted(directory.iterdir())
                 if (p / "Containerfile").is_file()]  # fmt: skip
        if not found:
            raise UsageError(f"{directory} holds no NAME/Containerfile")
        return cls(found)

    def _topological_order(self) -> tuple[str, ...]:
        """Parents before children, ties by name; a cycle is a one-line error."""
        order: list[str] = []
        state: dict[str, str] = {}

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = [*path[path.index(name) :], name]
                raise UsageError(f"dependency cycle: {' -> '.join(cycle)}: break one of them")
            state[name] = "visiting"
            for parent in sorted(self.parents[name]):
                visit(parent, [*path, name])
            state[name] = "done"
            order.append(name)

        for name in sorted(self.definitions):
            visit(name, [])
        return tuple(order)


@dataclass(frozen=True)
class Step:
    """One definition in build order: whether it is rebuilt, and why."""

    name: str
    image: str
    rebuild: bool
    reasons: tuple[str, ...]


def plan(chain: Chain, lookup: Lookup) -> list[Step]:
    """Decide, in build order, which definitions to rebuild."""
    steps: list[Step] = []
    rebuilt: set[str] = set()
    for name in chain.order:
        definition = chain.definitions[name]
        reasons = _reasons(chain, definition, lookup, rebuilt)
        if reasons:
            rebuilt.add(name)
        steps.append(Step(name, definition.image, bool(reasons), tuple(reasons)))
    return steps


def _reasons(chain: Chain, definition: Definition, lookup: Lookup, rebuilt: set[str]) -> list[str]:
    current = lookup(definition.image)
    if current is None:
        return [f"{definition.image} does not exist"]
    reasons = []
    if current.labels.get(LABEL_CONTEXT) != definition.context_hash():
        reasons.append(f"{definition.name}/ changed since {current.id[:12]} was built")
    reasons += [f"parent {p} is rebuilt" for p in chain.parents[definition.name] if p in rebuilt]
    recorded = parse_parents(current.labels.get(LABEL_PARENTS, ""))
    for image in parent_images(chain, definition.name):
        if any(image == chain.definitions[p].image for p in rebuilt):
            continue
        now = lookup(image)
        now_id = now.id if now else "missing"
        if recorded.get(image) != now_id:
            reasons.append(f"parent {image} is now {now_id[:12]} (built on "
                           f"{recorded.get(image, 'unrecorded')[:12]})")  # fmt: skip
    return reasons


def parent_images(chain: Chain, name: str) -> list[str]:
    """Every image ``name`` is built on: its chain parents' and external ones."""
    return [*(chain.definitions[p].image for p in chain.parents[name]), *chain.external[name]]


def parse_parents(value: str) -> dict[str, str]:
    """Read :data:`LABEL_PARENTS`: ``image=id`` pairs separated by spaces."""
    return dict(item.rsplit("=", 1) for item in value.split() if "=" in item)


def build_labels(chain: Chain, name: str, lookup: Lookup) -> dict[str, str]:
    """The labels recording what ``name`` is built from, with its parents' ids now."""
    parents = " ".join(
        f"{image}={found.id}"
        for image in parent_images(chain, name)
        if (found := lookup(image)) is not None
    )
    return {LABEL_CONTEXT: chain.definitions[name].context_hash(), LABEL_PARENTS: parents}


def run(chain: Chain, lookup: Lookup, build: Build) -> list[Step]:
    """Build what :func:`plan` says, parents first; return the plan."""
    steps = plan(chain, lookup)
    for step in steps:
        if step.rebuild:
            build(chain.definitions[step.name], build_labels(chain, step.name, lookup))
    return steps


def build_command(definition: Definition, labels: Mapping[str, str]) -> list[str]:
    """``podman build`` of one definition with its chain labels."""
    flags = [f"--label={key}={value}" for key, value in sorted(labels.items())]
    return ["podman", "build", "--layers", "--tag", definition.image, *flags,
            "--file", str(definition.path / "Containerfile"), str(definition.path)]  # fmt: skip


def podman_lookup(image: str) -> Image | None:
    """The local image's id and labels, ``None`` when podman has no such image."""
    result = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}\t{{json .Labels}}", image],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    image_id, _, labels = result.stdout.strip().partition("\t")
    return Image(image_id, json.loads(labels) or {})


def podman_build(definition: Definition, labels: Mapping[str, str]) -> None:
    """Build one definition with podman, output streaming to the terminal."""
    argv = build_command(definition, labels)
    print(f"+ {shlex.join(argv)}", flush=True)
    if subprocess.run(argv, check=False).returncode != 0:
        raise EngineError(f"building {definition.name} failed: see the output above")


def describe(steps: Sequence[Step], done: bool = False) -> str:
    """The plan (or, ``done``, what was built) as text: one line per definition in
    order, with its reasons."""
    lines = []
    for number, step in enumerate(steps, 1):
        verdict = ("rebuilt" if done else "rebuild") if step.rebuild else "up to date"
        lines.append(f"{number}. {step.name} ({step.image}): {verdict}")
        lines += [f"     - {reason}" for reason in step.reasons]
    return "\n".join(lines)
