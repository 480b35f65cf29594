"""The eviction policy of the nested storage: which unused things go first.

Pure functions over :class:`Item` (an image, an executor volume or a per-project
cache directory, with its size and last use), so the order is unit-tested without
podman. Rules (issue "storage governance"):

- least recently used first; an image's last use counts its children's (a parent's
  layers are used whenever a child is), and children go before their parents;
- never anything in use by a container in any state, nor the parent of such an image;
- never an image whose name matches a keep-list regex (default: the runner's helper);
- never a maintained job image (``pipglr images``: tagged ``localhost/NAME`` with
  :data:`pipglr.layout.MAINTAINED_LABEL` = NAME; :attr:`Item.maintained`), nor its
  parent. A rebuild's previous image, untagged, is no longer one: the prune (dangling)
  or the evictor removes it once no job uses it;
- never anything used more recently than the minimum age.

Also the parsers of the operator's values: sizes (``20GB``, ``512MiB``, ``25%``) and
durations (``90s``, ``30m``, ``1h``). Standard library only: this module runs in the image.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipglr.errors import UsageError

IMAGE = "image"
VOLUME = "volume"
CACHE = "cache"
#: Images kept whatever their age: the helper image every job's first stage needs.
DEFAULT_KEEP = (r"gitlab-runner-helper",)

_UNITS = {
    "": 1, "b": 1,
    "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20,
    "g": 2**30, "gib": 2**30, "t": 2**40, "tib": 2**40,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
}  # fmt: skip
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*")


@dataclass(frozen=True)
class Threshold:
    """A cap as given: bytes, or a percentage of the filesystem's size."""

    text: str
    bytes_: int | None = None
    percent: float | None = None

    def resolve(self, filesystem_size: int) -> int:
        """The cap in bytes on a filesystem of ``filesystem_size`` bytes."""
        if self.bytes_ is not None:
            return self.bytes_
        return int(filesystem_size * (self.percent or 0.0) / 100)


def parse_threshold(name: str, text: str) -> Threshold:
    """``20GB`` (10^9), ``20G``/``20GiB`` (2^30), ``1073741824``, ``25%``."""
    stripped = text.strip()
    if stripped.endswith("%"):
        try:
            percent = float(stripped[:-1])
        except ValueError:
            percent = -1.0
        if not 0 < percent <= 100:
            raise UsageError(f"{name}={text!r} is not a percentage: use e.g. 25%")
        return Threshold(stripped, percent=percent)
    match = _SIZE_RE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise UsageError(
            f"{name}={text!r} is not a size: use bytes with a unit (20GB, 512MiB) or a "
            "percentage of the storage filesystem (25%)"
        )
    return Threshold(stripped, bytes_=int(float(match.group(1)) * _UNITS[unit]))


def parse_duration(name: str, text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``1h`` or ``2d``."""
    match = _DURATION_RE.fullmatch(text)
    if not match:
        raise UsageError(f"{name}={text!r} is not a duration: use e.g. 0, 90s, 30m, 1h or 2d")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_keep(name: str, text: str) -> tuple[re.Pattern[str], ...]:
    """Keep-list regexes, one per line or separated by spaces."""
    patterns = []
    for raw in text.split():
        try:
            patterns.append(re.compile(raw))
        except re.error as exc:
            raise UsageError(f"{name}: {raw!r} is not a regular expression ({exc})") from None
    return tuple(patterns)


@dataclass(frozen=True)
class Item:
    """One thing the evictor may remove."""

    kind: str
    key: str
    size: int
    last_used: float
    names: tuple[str, ...] = ()
    in_use: bool = False
    parent: str | None = None
    #: A maintained job image (see the module docstring): never evicted.
    maintained: bool = False

    @property
    def label(self) -> str:
        """How reports name it: the first tag or the name, else the short id."""
        return self.names[0] if self.names else self.key[:12]


@dataclass(frozen=True)
class Policy:
    """What may be evicted, and down to what size."""

    threshold: int
    min_age: float
    keep: tuple[re.Pattern[str], ...] = ()
    cache_threshold: int | None = None


@dataclass(frozen=True)
class Ranked:
    """An item with its effective last use and why it stays, if it does."""

    item: Item
    last_used: float
    protected: str | None


def _descendants_view(items: Sequence[Item]) -> tuple[dict[str, list[Item]], dict[str, int]]:
    images = {i.key: i for i in items if i.kind == IMAGE}
    children: dict[str, list[Item]] = {}
    for image in images.values():
        if image.parent in images:
            children.setdefault(image.parent, []).append(image)
    depth: dict[str, int] = {}
    for key in images:
        seen, current = 0, images[key]
        while current.parent in images and seen < len(images):
            current, seen = images[current.parent], seen + 1
        depth[key] = seen
    return children, depth


def rank(items: Sequence[Item], now: float, policy: Policy) -> list[Ranked]:
    """Every item in eviction order (protected ones included, with their reason)."""
    children, depth = _descendants_view(items)

    def subtree(item: Item) -> Iterable[Item]:
        stack, seen = [item], set()
        while stack:
            current = stack.pop()
            if current.key in seen:
                continue
            seen.add(current.key)
            yield current
            stack.extend(children.get(current.key, ()))

    ranked = []
    for item in items:
        tree = list(subtree(item)) if item.kind == IMAGE else [item]
        last = max(i.last_used for i in tree)
        reason = None
        if any(i.in_use for i in tree):
            reason = "in use" if item.in_use else "parent of an image in use"
        elif any(i.maintained for i in tree):
            reason = "maintained" if item.maintained else "parent of a maintained image"
        elif item.kind == IMAGE and any(
            p.search(n) for i in tree for n in i.names for p in policy.keep
        ):
            reason = (
                "keep-list"
                if any(p.search(n) for n in item.names for p in policy.keep)
                else ("parent of a kept image")
            )
        elif now - last < policy.min_age:
            reason = "used recently"
        ranked.append(Ranked(item, last, reason))
    ranked.sort(key=lambda r: (r.last_used, -depth.get(r.item.key, 0), r.item.kind, r.item.key))
    return ranked


def candidates(items: Sequence[Item], now: float, policy: Policy) -> list[Item]:
    """The evictable items, least recently used first, children before parents."""
    return [r.item for r in rank(items, now, policy) if r.protected is None]


def over(total: int, cache: int, policy: Policy) -> bool:
    """Whether usage is over either cap."""
    return total > policy.threshold or (
        policy.cache_threshold is not None and cache > policy.cache_threshold
    )


def helps(kind: str, total: int, cache: int, policy: Policy) -> bool:
    """Whether removing something of ``kind`` brings usage towards a cap it exceeds:
    anything while over the total cap, only cache directories while over the cache cap."""
    return total > policy.threshold or (kind == CACHE and over(total, cache, policy))


def plan(
    items: Sequence[Item], usage: int, cache_usage: int, now: float, policy: Policy
) -> list[Item]:
    """What one eviction round would remove, estimated from the items' sizes: LRU
    candidates until ``usage`` is under the threshold, then cache directories until
    ``cache_usage`` is under the cache cap. An image's estimate is what it adds to its
    parent (shared base layers of unrelated images are not known here); the evictor
    re-measures after every removal instead of trusting this."""
    sizes = {i.key: i.size for i in items if i.kind == IMAGE}
    chosen: list[Item] = []
    for item in candidates(items, now, policy):
        if not over(usage, cache_usage, policy):
            break
        if not helps(item.kind, usage, cache_usage, policy):
            continue
        own = item.size - sizes.get(item.parent or "", 0) if item.kind == IMAGE else item.size
        chosen.append(item)
        usage -= max(own, 0)
        if item.kind == CACHE:
            cache_usage -= item.size
    return chosen
