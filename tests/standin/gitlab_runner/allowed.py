"""Image allow-lists: common/allowed_images.go ``VerifyAllowedImage``,
executors/docker/docker.go ``isInAllowedPrivilegedImages``, with
github.com/bmatcuk/doublestar/v4 ``Match`` (v4.10.0, match.go) as the glob.

doublestar globs: ``*`` any run of non-``/`` characters, ``?`` one, ``[...]`` a class
(``^``/``!`` negates), ``{a,b}`` alternatives, ``\\`` escapes, and ``**`` as a whole
path component zero or more directories (elsewhere it is ``*``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .buildlog import BuildLogger

ALLOWED_IMAGES_DOCS = (
    "Please check runner's allowed_images configuration: "
    "https://docs.gitlab.com/runner/configuration/advanced-configuration/"
)


class BadPattern(ValueError):
    """doublestar ``ErrBadPattern``."""

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


class DisallowedImage(Exception):
    """common ``ErrDisallowedImage``."""

    def __init__(self) -> None:
        super().__init__("disallowed image")


def _class(pattern: str, i: int) -> tuple[str, int]:
    """``[...]`` at ``pattern[i]``: the regex and the index after ``]``."""
    i += 1
    negate = i < len(pattern) and pattern[i] in "^!"
    i += negate
    items: list[str] = []
    while i < len(pattern) and (pattern[i] != "]" or not items):
        char = pattern[i]
        if char == "\\":
            i += 1
            if i >= len(pattern):
                raise BadPattern()
            char = pattern[i]
        elif char == "-" or char == "]":
            raise BadPattern()
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            high = pattern[i + 2]
            if high == "\\":
                if i + 3 >= len(pattern):
                    raise BadPattern()
                high, i = pattern[i + 3], i + 1
            if high < char:
                raise BadPattern()
            items.append(f"{re.escape(char)}-{re.escape(high)}")
            i += 3
        else:
            items.append(re.escape(char))
            i += 1
    if i >= len(pattern) or not items:
        raise BadPattern()
    body = "".join(items)
    return (f"[^/{body}]" if negate else f"(?!/)[{body}]"), i + 1


def _translate(pattern: str, i: int, stops: str) -> tuple[str, int]:
    """Regex for ``pattern[i:]`` up to a character in ``stops`` (inside ``{}``)."""
    out: list[str] = []
    while i < len(pattern) and pattern[i] not in stops:
        char = pattern[i]
        at_start = i == 0 or pattern[i - 1] == "/"
        if pattern.startswith("**", i) and at_start and i + 2 == len(pattern) and i == 0:
            out.append(".*")
            i += 2
        elif char == "/" and pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("(?:/.*)?")
            i += 3
        elif pattern.startswith("**/", i) and at_start:
            out.append("(?:.*/)?")
            i += 3
        elif char == "*":
            while i < len(pattern) and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            regex, i = _class(pattern, i)
            out.append(regex)
        elif char == "{":
            alternatives: list[str] = []
            i += 1
            while True:
                regex, i = _translate(pattern, i, ",}")
                alternatives.append(regex)
                if i >= len(pattern):
                    raise BadPattern()
                i += 1
                if pattern[i - 1] == "}":
                    break
            out.append("(?:" + "|".join(alternatives) + ")")
        elif char == "\\":
            if i + 1 >= len(pattern):
                raise BadPattern()
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out), i


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    regex, end = _translate(pattern, 0, "")
    if end != len(pattern):
        raise BadPattern()
    return re.compile(regex, re.DOTALL)


def match(pattern: str, name: str) -> bool:
    """doublestar ``Match`` (raises :class:`BadPattern` for a malformed pattern)."""
    return _compiled(pattern).fullmatch(name) is not None


def _matches(pattern: str, name: str) -> bool:
    """``ok, _ := doublestar.Match(...)``: a bad pattern matches nothing."""
    try:
        return match(pattern, name)
    except BadPattern:
        return False


def verify_allowed_image(
    logger: BuildLogger, image: str, option: str, allowed: list[str], internal: list[str]
) -> None:
    """``VerifyAllowedImage``: a glob of ``allowed`` or an ``internal`` image, or no
    list at all; else the list is printed and :class:`DisallowedImage` raised."""
    if any(_matches(pattern, image) for pattern in allowed) or image in internal:
        return
    if not allowed:
        return
    logger.println()
    logger.errorln(f'The "{image}" image is not present on list of allowed {option}:')
    for pattern in allowed:
        logger.println("-", pattern)
    logger.println()
    logger.println(ALLOWED_IMAGES_DOCS)
    raise DisallowedImage()


def is_in_allowed_privileged_images(image: str, allowed: list[str]) -> bool:
    """``isInAllowedPrivilegedImages``: every image without a list."""
    return not allowed or any(_matches(pattern, image) for pattern in allowed)
