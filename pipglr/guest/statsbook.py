"""Counters a service keeps for the metrics exporter, in a small JSON file.

The evictor and the prune (user podman) keep theirs in :data:`pipglr.layout.EVICTOR_STATS`
and :data:`pipglr.layout.PRUNE_STATS`; root's collector writes its files with
:func:`write_atomic` too. The files live on tmpfs: a restarted service continues its
counters from the file (:func:`load`), a restarted container starts them at zero, as
Prometheus counters may. Every write is atomic (a temporary file renamed into place),
world-readable (0644): the exporter runs as another user. Standard library only: this
module runs in the image.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Stats = dict[str, Any]


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``: a hidden temporary file in the same directory,
    given ``mode`` (umask aside), renamed over ``path``. A reader sees the old or the
    new file, never a part."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(raw)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _merge(empty: Mapping[str, Any], found: Mapping[str, Any]) -> Stats:
    """``empty`` with the values of ``found`` whose type fits (nested mappings merged
    key by key; a number where a number or null is expected)."""
    merged = copy.deepcopy(dict(empty))
    for key, default in empty.items():
        value = found.get(key)
        if isinstance(default, Mapping):
            if isinstance(value, Mapping):
                merged[key] = _merge(default, value)
        elif default is None or isinstance(default, (int, float)):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[key] = value
            elif value is None and default is None:
                merged[key] = None
            elif isinstance(value, str) and default is None:
                merged[key] = value
        elif isinstance(value, type(default)):
            merged[key] = value
    return merged


def load(path: Path, empty: Mapping[str, Any]) -> Stats:
    """The counters in ``path`` laid over ``empty`` (its shape: keys it lacks are
    dropped, missing ones start from ``empty``); ``empty`` when the file is missing or
    unreadable."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        found = {}
    return _merge(empty, found if isinstance(found, Mapping) else {})


def add(stats: Stats, *keys: str, amount: int = 1) -> None:
    """Add ``amount`` to the counter at ``keys`` (``add(s, "evicted", "image", "count")``)."""
    *outer, last = keys
    place = stats
    for key in outer:
        place = place.setdefault(key, {})
    place[last] = int(place.get(last) or 0) + amount


def save(path: Path, stats: Mapping[str, Any]) -> None:
    """Write ``stats`` to ``path`` (JSON, 0644, atomically)."""
    write_atomic(path, json.dumps(stats, indent=1, sort_keys=True) + "\n")
