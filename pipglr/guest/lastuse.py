"""When each image, executor volume and cache directory was last used.

The evictor writes a use whenever the nested podman reports one (a container created
or started from an image or with a volume or cache bind; an image pulled, built or
tagged; a volume created). The book lives on the storage volume beside what it
describes, so it survives restarts of the evictor and re-creation of the outer
container, and goes when the volume goes. Written atomically (temporary file, then
rename); an unreadable book counts as empty (everything then ages from its creation).
Standard library only: this module runs in the image.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

from pipglr import layout

BOOK_NAME = ".pipglr-last-use.json"
_VERSION = 1


def book_path(storage: Path = Path(str(layout.STORAGE_MOUNT))) -> Path:
    return storage / BOOK_NAME


class LastUse:
    """Last-use times by kind (``image``, ``volume``, ``cache``) and key; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._times: dict[str, dict[str, float]] = {}
        self._dirty = False
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(raw, dict) or raw.get("version") != _VERSION:
            return
        for kind, entries in raw.get("last_use", {}).items():
            if isinstance(entries, dict):
                self._times[kind] = {
                    str(k): float(v) for k, v in entries.items() if isinstance(v, int | float)
                }

    def touch(self, kind: str, key: str, when: float) -> None:
        """Record a use at ``when`` (an older time than the recorded one is ignored)."""
        with self._lock:
            entries = self._times.setdefault(kind, {})
            if entries.get(key, 0.0) < when:
                entries[key] = when
                self._dirty = True

    def get(self, kind: str, key: str) -> float | None:
        with self._lock:
            return self._times.get(kind, {}).get(key)

    def latest(self) -> float:
        """The newest use booked (0 when none): where a restarted evictor resumes the
        event stream, so uses made while it was down are booked too."""
        with self._lock:
            return max(
                (t for entries in self._times.values() for t in entries.values()), default=0.0
            )

    def forget_missing(self, kind: str, present: set[str]) -> None:
        """Drop entries of ``kind`` whose object no longer exists."""
        with self._lock:
            entries = self._times.get(kind, {})
            for key in [k for k in entries if k not in present]:
                del entries[key]
                self._dirty = True

    def save(self) -> bool:
        """Write the book if it changed; True when written."""
        with self._lock:
            if not self._dirty:
                return False
            text = json.dumps({"version": _VERSION, "last_use": self._times}, sort_keys=True)
            self._dirty = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".pipglr-last-use.")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.replace(tmp, self.path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            with self._lock:
                self._dirty = True
            raise
        return True
