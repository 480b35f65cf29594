"""Image chains: build a directory of image definitions in dependency order.

Each subdirectory of a chain directory is one definition: a ``Containerfile`` and its
build context, built as ``PREFIX + directory name`` (``localhost/`` by default) or the
name in an optional one-line ``image`` file. Its parents are the images its ``FROM``
lines name (``ARG`` defaults before the first ``FROM`` are substituted, build stages
are not parents) plus the definitions listed in an optional ``depends`` file, one
name a line, for dependencies no ``FROM`` shows. A ``FROM`` image that is no
definition of the chain is external (a base image), which is fine; a ``depends``
name that is no definition is an error, and so is a cycle.

An image whose build is more than ``podman build`` of a directory (pipglr's own: its
build assembles a context, see ``ci/images``) is a definition with a ``build`` file
instead: one command line, run by ``sh`` from the definition's directory, in which
``{image}`` is this definition's image and ``{images[NAME]}`` another definition's;
the chain then adds its labels to the image the command built. Its parents come
from ``depends``; an optional ``sources`` file lists the paths (relative to the
definition's directory, one a line) whose files count as its context.

A definition is rebuilt when its image does not exist, when the hash of its
directory (and sources) differs from the one recorded in the image's
:data:`LABEL_CONTEXT`, when a parent is rebuilt in the same run, when a parent's
image id differs from the one recorded in :data:`LABEL_PARENTS` (an external base
that was pulled or re-imported), or when it is asked for by name (a weekly rebuild
of a base whose inputs live outside the repository, e.g. a Debian mirror).
Standard library only; podman is reached through the injectable ``lookup`` and
``build`` callables.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
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
    command: str | None = None
    sources: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: Path, prefix: str = DEFAULT_PREFIX) -> Definition:
        """Read ``path/Containerfile`` or ``path/build``, and the optional ``image``,
        ``depends`` and ``sources`` files."""
        containerfile, command = path / "Containerfile", _optional_lines(path / "build")
        if not containerfile.is_file() and not command:
            raise UsageError(
                f"{path} has neither a Containerfile nor a build file: every chain entry needs one"
            )
        if len(command) > 1:
            raise UsageError(f"{path}/build has {len(command)} lines: write one command line")
        named = path / "image"
        image = named.read_text().strip() if named.is_file() else f"{prefix}{path.name}"
        froms = from_images(containerfile.read_text()) if containerfile.is_file() else ()
        sources = tuple(_optional_lines(path / "sources"))
        for source in sources:
            if not (path / source).exists():
                raise UsageError(f"{path}/sources names {source}, which does not exist")
        return cls(path.name, path, normalize(image), froms,
                   tuple(_optional_lines(path / "depends")),
                   command[0] if command else None, sources)  # fmt: skip

    def context_hash(self) -> str:
        """``sha256:HEX`` over every file's relative path, mode and content: the
        definition's directory and its sources (Python caches left out)."""
        digest = hashlib.sha256()
        for name, file in sorted(self.context_files()):
            digest.update(f"{name}\0{file.stat().st_mode:o}\0".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        return f"sha256:{digest.hexdigest()}"

    def context_files(self) -> Iterable[tuple[str, Path]]:
        """Each context file with its name relative to the definition's directory."""
        for root in (".", *self.sources):
            top = self.path / root
            for file in [top] if top.is_file() else top.rglob("*"):
                if file.is_file() and "__pycache__" not in file.parts:
                    yield os.path.normpath(file.relative_to(self.path)), file


def _lines(text: str) -> list[str]:
    return [ln.split("#", 1)[0].strip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]


def _optional_lines(path: Path) -> list[str]:
    return _lines(path.read_text()) if path.is_file() else []


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
        images = {d.name: d.image for d in self.definitions.values()}
        for d in list(self.definitions.values()):
            if d.command is not None:
                self.definitions[d.name] = replace(d, command=_fill(d, images))
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
        """Every subdirectory of ``directory`` holding a Containerfile or a build file."""
        if not directory.is_dir():
            raise UsageError(f"{directory} is not a directory of image definitions")
        found = [Definition.load(p, prefix) for p in sorted(directory.iterdir())
                 if (p / "Containerfile").is_file() or (p / "build").is_file()]  # fmt: skip
        if not found:
            raise UsageError(f"{directory} holds no NAME/Containerfile (nor NAME/build)")
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


def _fill(definition: Definition, images: Mapping[str, str]) -> str:
    """The build command with ``{image}`` and ``{images[NAME]}`` filled in."""
    try:
        return str(definition.command).format(image=definition.image, images=images)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise UsageError(
            f"{definition.name}/build: cannot fill in {exc}: the command may use {{image}} "
            "and {images[NAME]} of this chain (write $VAR, not ${VAR}, for the shell)"
        ) from None


@dataclass(frozen=True)
class Step:
    """One definition in build order: whether it is rebuilt, and why."""

    name: str
    image: str
    rebuild: bool
    reasons: tuple[str, ...]


def plan(chain: Chain, lookup: Lookup, rebuild: Iterable[str] = ()) -> list[Step]:
    """Decide, in build order, which definitions to rebuild; those named in
    ``rebuild`` are rebuilt whatever their state."""
    asked = set(rebuild)
    unknown = sorted(asked - set(chain.definitions))
    if unknown:
        raise UsageError(f"no definition {', '.join(unknown)} in this chain: "
                         f"name one of {', '.join(chain.order)}")  # fmt: skip
    steps: list[Step] = []
    rebuilt: set[str] = set()
    for name in chain.order:
        definition = chain.definitions[name]
        reasons = ["asked for by name"] if name in asked else []
        reasons += _reasons(chain, definition, lookup, rebuilt)
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


def run(chain: Chain, lookup: Lookup, build: Build, rebuild: Iterable[str] = ()) -> list[Step]:
    """Build what :func:`plan` says, parents first; return the plan."""
    steps = plan(chain, lookup, rebuild)
    for step in steps:
        if step.rebuild:
            build(chain.definitions[step.name], build_labels(chain, step.name, lookup))
    return steps


def build_command(definition: Definition, labels: Mapping[str, str]) -> list[str]:
    """``podman build`` of one definition with its chain labels; for a definition with
    a build file, the ``podman build`` adding the labels to the image it built."""
    flags = [f"--label={key}={value}" for key, value in sorted(labels.items())]
    if definition.command is not None:
        return ["podman", "build", "--quiet", "--tag", definition.image, *flags, "-"]
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
    """Build one definition with podman (or its build command, then label what it
    built), output streaming to the terminal."""
    stdin = None
    if definition.command is not None:
        print(f"+ (cd {definition.path} && {definition.command})", flush=True)
        done = subprocess.run(["sh", "-c", definition.command], cwd=definition.path, check=False)
        if done.returncode != 0:
            raise EngineError(f"building {definition.name} failed: see the output above")
        if podman_lookup(definition.image) is None:
            raise EngineError(f"{definition.name}/build ran but made no {definition.image}: "
                              "make the command tag {image}")  # fmt: skip
        stdin = f"FROM {definition.image}\n"
    argv = build_command(definition, labels)
    print(f"+ {shlex.join(argv)}", flush=True)
    if subprocess.run(argv, input=stdin, text=True, check=False).returncode != 0:
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


def build_directory(
    directory: Path, prefix: str = DEFAULT_PREFIX, rebuild: Iterable[str] = (),
    dry_run: bool = False,
) -> str:  # fmt: skip
    """``invoke chain``: build the chain in ``directory`` with podman (or, ``dry_run``,
    only plan it); the order with each image's reason, as printed."""
    loaded = Chain.load(directory, prefix)
    if dry_run:
        return describe(plan(loaded, podman_lookup, rebuild))
    return describe(run(loaded, podman_lookup, podman_build, rebuild), done=True)
