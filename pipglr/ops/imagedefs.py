"""Maintained job images, on the host: check a directory of definitions before any of
it is copied into pipglr, and pack it for the copy.

A maintained image's definition is ``NAME/Containerfile`` (its directory is the build
context) with an optional ``depends`` file, the format of the image chains
(:mod:`pipglr.chain`, which reads them here as in the image); it is built in
the nested podman as ``localhost/NAME``. What the chain offers beyond that does not
fit an image built inside pipglr, and is refused: a ``build`` file (a host command,
which never runs in the image), an ``image`` file (the name is always
``localhost/NAME``: jobs and the evictor find it by that) and a ``sources`` file (only
the definition's directory is copied).
"""

from __future__ import annotations

import io
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from pipglr import chain, layout
from pipglr.errors import ConfigError, UsageError

#: An image name's path component (the distribution reference grammar:
#: ``[a-z0-9]+`` joined by ``.``, ``_``, ``__`` or dashes).
NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
#: Files of the chain format a maintained definition may not have, and why.
REFUSED = {
    "build": "its command would run on the host, never in the image: write a Containerfile",
    "image": f"a maintained image is always {layout.MAINTAINED_PREFIX}NAME: remove the file",
    "sources": "only the definition's directory is copied: move those files into it",
}


def check_name(name: str) -> str:
    """``name`` when it is a valid image name component, else a one-line error."""
    if len(name) > 128 or not NAME_RE.match(name):
        raise UsageError(
            f"{name!r} is no image name: a maintained image's name is lower-case letters "
            "and digits, joined by '.', '_' or '-' (e.g. build-tools)"
        )
    return name


def definition_dirs(directory: Path) -> list[Path]:
    """The definitions in ``directory``: every subdirectory (hidden ones such as
    ``.git`` left out), each checked for what a maintained image needs."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory: give one holding NAME/Containerfile")
    found = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise UsageError(f"{directory} holds no NAME/Containerfile: add one directory per image")
    for path in found:
        check_name(path.name)
        for file, why in REFUSED.items():
            if (path / file).exists():
                raise ConfigError(f"{path}/{file}: not for a maintained image, {why}")
        if not (path / "Containerfile").is_file():
            raise ConfigError(
                f"{path} has no Containerfile: every subdirectory of "
                f"{directory} is one image, add {path.name}/Containerfile"
            )
    return found


def check_together(new: Sequence[Path], installed: Path) -> chain.Chain:
    """The chain of the definitions ``installed`` (a copy of those in pipglr) with
    ``new`` added or replacing them: refused when a ``depends`` name is unknown or
    the images form a cycle (the chain's paths are gone after: it is for its graph)."""
    with tempfile.TemporaryDirectory(prefix="pipglr-images-") as tmp:
        merged = Path(tmp) / "merged"
        shutil.copytree(installed, merged, symlinks=True)
        for path in new:
            shutil.rmtree(merged / path.name, ignore_errors=True)
            shutil.copytree(path, merged / path.name, symlinks=True)
        try:
            return chain.Chain.load(merged, layout.MAINTAINED_PREFIX)
        except UsageError as exc:
            raise ConfigError(f"{exc} (checked with the definitions pipglr holds)") from None


def dependents(definitions: chain.Chain, name: str) -> list[str]:
    """The definitions built on ``name`` (by ``FROM`` or ``depends``)."""
    return sorted(n for n, parents in definitions.parents.items() if name in parents)


def pack(paths: Iterable[Path]) -> bytes:
    """A tar of each definition directory as ``NAME/...`` (symbolic links kept as
    links; owners left out: the extracting user owns what it extracts)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in paths:
            tar.add(path, arcname=path.name, filter=_anonymous)
    return buffer.getvalue()


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def unpack(data: bytes, target: Path) -> None:
    """Extract a tar of definitions that came out of pipglr into ``target``: regular
    files and directories only, every name inside ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if member.name.startswith("/") or ".." in parts:
                raise ConfigError(f"pipglr's definitions hold an odd path {member.name!r}")
            if member.isfile() or member.isdir():
                members.append(member)
        # Python 3.11.4+ also checks every name itself ("data": no devices, no escape).
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(target, members=members, **safe)  # type: ignore[arg-type]
