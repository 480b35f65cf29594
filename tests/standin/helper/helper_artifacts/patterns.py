"""Artifact path patterns as gitlab-runner matches them: ``github.com/bmatcuk/doublestar/v4``
(``Match``, ``SplitPattern``, ``FilepathGlob`` with ``WithNoFollow``) and
commands/helpers/file_archiver.go ``findRelativePathInProject``.

``*`` and ``?`` stop at ``/``, ``**`` as a whole path component spans any number of
directories (``a/**`` matches ``a`` itself too), ``[...]``/``[!...]``/``[^...]`` are
character classes, ``{a,b}`` alternatives and ``\\`` escapes the next character; dot
files are matched like any other. Simplified: symbolic links to directories are not
followed (as ``WithNoFollow``), and a bad pattern matches nothing instead of failing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

META = "*?[{"


def split_pattern(pattern: str) -> tuple[str, str]:
    """``doublestar.SplitPattern``: everything up to the last ``/`` before the first
    unescaped meta character, and the rest (``(".", pattern)`` when there is none)."""
    slash = -1
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char in META:
            break
        if char == "/":
            slash = index
        index += 1
    else:
        return pattern, ""
    if slash == -1:
        return ".", pattern
    return (pattern[:slash] or "/"), pattern[slash + 1 :]


def _closing(pattern: str, start: int, opening: str, closing: str) -> int:
    """Index of the bracket closing the one at ``start`` (nesting, escapes), or -1."""
    depth, index = 0, start
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def _alternatives(body: str) -> list[str]:
    """``a,b{c,d}`` → ``["a", "b{c,d}"]`` (commas at nesting level 0)."""
    parts, depth, current, index = [], 0, "", 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            current += body[index : index + 2]
            index += 2
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
        index += 1
    return [*parts, current]


def translate(pattern: str) -> str:
    """A doublestar pattern as a regular expression for :func:`re.fullmatch`."""
    out: list[str] = []
    index, size = 0, len(pattern)
    while index < size:
        char = pattern[index]
        at_start = index == 0 or pattern[index - 1] == "/"
        if char == "\\" and index + 1 < size:
            out.append(re.escape(pattern[index + 1]))
            index += 2
        elif pattern.startswith("**", index) and at_start and pattern[index + 2 : index + 3] in "/":
            if index + 2 >= size:  # trailing "**": everything below, and "a/**" matches "a"
                if out and out[-1] == "/":
                    out[-1] = "(?:/.*)?"
                else:
                    out.append(".*")
                index += 2
            else:  # "**/": zero or more directories
                out.append("(?:.*/)?")
                index += 3
        elif char == "*":
            out.append("[^/]*")
            index += 1
        elif char == "?":
            out.append("[^/]")
            index += 1
        elif char == "[" and (end := _closing(pattern, index, "[", "]")) > index + 1:
            body = pattern[index + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            escaped = "".join("\\" + c if c in "\\]^[" else c for c in body)
            out.append(f"[^/{escaped}]" if negate else f"(?!/)[{escaped}]")
            index = end + 1
        elif char == "{" and (end := _closing(pattern, index, "{", "}")) > index:
            options = _alternatives(pattern[index + 1 : end])
            out.append("(?:" + "|".join(translate(option) for option in options) + ")")
            index = end + 1
        else:
            out.append("/" if char == "/" else re.escape(char))
            index += 1
    return "".join(out)


def match(pattern: str, path: str) -> bool:
    """``doublestar.Match``: the whole ``/``-separated ``path`` matches ``pattern``."""
    try:
        return re.fullmatch(translate(pattern), path, re.DOTALL) is not None
    except re.error:
        return False


def _below(base: str) -> Iterator[str]:
    """Every path under ``base`` (not following symbolic links), joined to ``base``."""
    for root, dirs, files in os.walk(base, followlinks=False):
        for name in sorted(dirs) + sorted(files):
            path = os.path.join(root, name)
            yield path[2:] if base == "." and path.startswith("./") else path


def glob(pattern: str) -> list[str]:
    """``doublestar.FilepathGlob(pattern, WithNoFollow())``, sorted."""
    base, rest = split_pattern(pattern)
    if not rest:
        return [pattern] if os.path.lexists(pattern) else []
    if not os.path.isdir(base):
        return []
    return sorted(path for path in _below(base) if match(pattern, path))


def relative_in_project(path: str, wd: str) -> str:
    """``findRelativePathInProject``: ``path`` relative to the build directory ``wd``
    (the glob part kept as written); ValueError when it points outside."""
    slashed = path.replace(os.sep, "/")
    if os.path.normpath(slashed) == os.path.normpath(wd):
        return "."
    base, rest = split_pattern(slashed) if any(c in slashed for c in META) else (slashed, "")
    relative = os.path.relpath(os.path.abspath(base), wd)
    if relative == ".." or relative.startswith("../"):
        raise ValueError(f"artifact path is not a subpath of project directory: {path}")
    return os.path.normpath(os.path.join(relative, rest)) if rest else relative
