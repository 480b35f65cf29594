"""``evictor``: keep the nested storage under a size cap, least recently used first.

Runs as user podman (``pipglr-evictor.service``) beside the API service. One thread
follows the nested podman's event stream (``GET /libpod/events``) and books every use
(:mod:`pipglr.guest.lastuse`): a container created or started (its image, its
``runner-*`` volumes and its cache directory), an image pulled, built, tagged,
committed or loaded, a volume created. Whatever can grow the storage wakes the main
loop, which also wakes every :attr:`Settings.interval` as a safety net. When images +
executor volumes + cache directories take more than the threshold, it removes
candidates in :mod:`pipglr.guest.lru` order, asking podman again before each removal
whether a container uses it, and measures again after each one, until under the cap.

Settings come from the unit's environment, else the outer container's (``pipglr up
--env``; copied to :data:`ENV_FILE` by the unit's root ``ExecStartPre``, because
only root can read PID 1's environment), else the image's build arg
``STORAGE_THRESHOLD``:

``PIPGLR_STORAGE_THRESHOLD``  cap: ``20GB``, ``16GiB`` or ``25%`` of the storage filesystem
``PIPGLR_CACHE_THRESHOLD``    separate cap for the cache directories (default: none)
``PIPGLR_EVICT_MIN_AGE``      never evict what was used more recently (default ``1h``)
``PIPGLR_EVICT_KEEP``         extra keep-list regexes, space-separated (the helper is always kept)
``PIPGLR_EVICT_INTERVAL``     safety-net check (default ``5m``)
``PIPGLR_EVICTOR=off``        do not evict (the service only says so)

What it did is counted in :data:`pipglr.layout.EVICTOR_STATS` (:data:`EMPTY_STATS`,
:func:`record_round`) for the metrics exporter.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipglr import layout
from pipglr.guest import lru, netguard, statsbook
from pipglr.guest.inventory import Inventory
from pipglr.guest.lastuse import LastUse, book_path
from pipglr.settings import parse_bool

ENV_FILE = Path("/run/pipglr/storage.env")
#: The settings the running evictor goes by (its unit may add to ENV_FILE's).
RUNNING_FILE = Path(str(layout.PODMAN_RUNTIME_DIR)) / "pipglr-evictor.env"
ENV_PREFIXES = ("PIPGLR_STORAGE_", "PIPGLR_CACHE_", "PIPGLR_EVICT")
DEFAULT_MIN_AGE = "1h"
DEFAULT_INTERVAL = "5m"
#: Seconds to let a burst of events (a job pulling several images) settle.
SETTLE = 2.0
_GROWS = {"pull", "build", "commit", "load", "import", "tag", "create"}
Log = Callable[[str], None]


def write_env(values: Mapping[str, str], target: Path) -> list[str]:
    """Write ``NAME=VALUE`` lines (mode 0644, atomically); values with a newline are
    left out. The lines written."""
    lines = [f"{k}={v}" for k, v in values.items() if "\n" not in v]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text("".join(f"{line}\n" for line in lines))
    tmp.chmod(0o644)
    tmp.replace(target)
    return lines


def export_env(environ: bytes, target: Path = ENV_FILE) -> str:
    """Copy the storage settings of PID 1's environment (``/proc/1/environ``) to
    ``target`` for the podman user's services; say what was copied."""
    kept = write_env(storage_env(netguard.container_environment(environ)), target)
    return f"storage settings from the container's environment: {', '.join(kept) or 'none'}"


def read_env(path: Path | None = None) -> dict[str, str]:
    """What :func:`export_env` wrote to ``path`` (default :data:`ENV_FILE`); empty when
    missing."""
    try:
        lines = (path or ENV_FILE).read_text().splitlines()
    except OSError:
        return {}
    return dict(line.partition("=")[::2] for line in lines if "=" in line)


@dataclass(frozen=True)
class Settings:
    """The evictor's settings, validated."""

    threshold: lru.Threshold
    cache_threshold: lru.Threshold | None
    min_age: float
    keep: tuple[re.Pattern[str], ...]
    interval: float
    enabled: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str], image_threshold: str) -> Settings:
        """Settings from ``env`` over the image's default threshold."""
        get = env.get
        cache = get("PIPGLR_CACHE_THRESHOLD", "").strip()
        keep = " ".join((*lru.DEFAULT_KEEP, get("PIPGLR_EVICT_KEEP", "")))
        return cls(
            threshold=lru.parse_threshold(
                "PIPGLR_STORAGE_THRESHOLD", get("PIPGLR_STORAGE_THRESHOLD") or image_threshold
            ),
            cache_threshold=lru.parse_threshold("PIPGLR_CACHE_THRESHOLD", cache) if cache else None,
            min_age=lru.parse_duration(
                "PIPGLR_EVICT_MIN_AGE", get("PIPGLR_EVICT_MIN_AGE") or DEFAULT_MIN_AGE
            ),
            keep=lru.parse_keep("PIPGLR_EVICT_KEEP", keep),
            interval=lru.parse_duration(
                "PIPGLR_EVICT_INTERVAL", get("PIPGLR_EVICT_INTERVAL") or DEFAULT_INTERVAL
            ),
            enabled=parse_bool("PIPGLR_EVICTOR", get("PIPGLR_EVICTOR") or "on"),
        )

    def policy(self, filesystem_size: int) -> lru.Policy:
        """The policy on a storage filesystem of ``filesystem_size`` bytes."""
        cache = self.cache_threshold.resolve(filesystem_size) if self.cache_threshold else None
        return lru.Policy(self.threshold.resolve(filesystem_size), self.min_age, self.keep, cache)


def storage_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The storage settings among ``environ``."""
    return {k: v for k, v in environ.items() if k.startswith(ENV_PREFIXES)}


def own_env() -> dict[str, str]:
    """The storage settings this process goes by: the container's, overlaid by its own
    environment (the unit's)."""
    return {**read_env(), **storage_env(os.environ)}


def load_settings(image_threshold: str, running: bool = True) -> Settings:
    """The caller's environment over the running evictor's (``running``: what the
    report and the prune go by) over the container's over the image default."""
    merged = {**read_env(), **(read_env(RUNNING_FILE) if running else {})}
    return Settings.from_env({**merged, **storage_env(os.environ)}, image_threshold)


def book_uses(book: LastUse, inventory: Inventory, event: Mapping[str, Any]) -> bool:
    """Book the uses one podman event shows; True when the storage may have grown."""
    kind, action = event.get("Type"), str(event.get("Action") or event.get("status") or "")
    actor = event.get("Actor") or {}
    when = float(event.get("timeNano") or 0) / 1e9 or float(event.get("time") or time.time())
    if kind == "image":
        key = str(actor.get("ID") or "") or str((actor.get("Attributes") or {}).get("name", ""))
        if key and action not in ("remove", "untag", "delete"):
            book.touch(lru.IMAGE, key, when)
    elif kind == "volume" and action == "create":
        book.touch(lru.VOLUME, str((actor.get("Attributes") or {}).get("name", "")), when)
    elif kind == "container" and action in ("create", "init", "start", "restart"):
        try:
            attrs = inventory.client.containers.get(str(actor.get("ID", ""))).attrs
        except Exception:  # noqa: BLE001 - gone already: nothing to book
            return False
        use = inventory.use_of(attrs)
        book.touch(lru.IMAGE, use.image, when)
        for volume in use.volumes:
            book.touch(lru.VOLUME, volume, when)
        for cache in use.cache_dirs:
            book.touch(lru.CACHE, cache, when)
    return action in _GROWS


@dataclass(frozen=True)
class Evicted:
    item: lru.Item
    error: str | None


def evict(
    inventory: Inventory, book: LastUse, settings: Settings, now: float, log: Log
) -> list[Evicted]:
    """One round: remove LRU candidates until under the caps; what was tried."""
    usage = inventory.usage()
    policy = settings.policy(usage.filesystem_size)
    if not lru.over(usage.total, usage.cache, policy):
        return []
    uses = inventory.uses()
    items = inventory.items(book, uses)
    for kind in (lru.IMAGE, lru.VOLUME, lru.CACHE):
        book.forget_missing(kind, {i.key for i in items if i.kind == kind})
    candidates = lru.candidates(items, now, policy)
    if not candidates:
        log(
            f"nested storage over the cap of {policy.threshold} bytes, but nothing can be "
            "evicted now (in use, on the keep-list or used within the minimum age)"
        )
        return []
    log(
        f"nested storage {usage.total} bytes over the cap of {policy.threshold} "
        f"(images {usage.images}, volumes {usage.volumes}, cache {usage.cache}): evicting"
    )
    done: list[Evicted] = []
    for item in candidates:
        if not lru.over(usage.total, usage.cache, policy):
            break
        if not lru.helps(item.kind, usage.total, usage.cache, policy):
            continue
        booked = book.get(item.kind, item.key) or 0.0
        if booked > item.last_used and now - booked < policy.min_age:
            log(f"kept {item.kind} {item.label}: used while this round ran")
            continue
        if inventory.in_use(item):
            log(f"kept {item.kind} {item.label}: a container started using it")
            continue
        error = inventory.remove(item)
        done.append(Evicted(item, error))
        log(
            f"evicted {item.kind} {item.label} (last used {time.ctime(item.last_used)})"
            if error is None
            else f"could not evict {item.kind} {item.label}: {error}"
        )
        usage = inventory.usage()
    log(f"nested storage now {usage.total} bytes (cap {policy.threshold})")
    return done


#: The shape of :data:`pipglr.layout.EVICTOR_STATS` (:mod:`pipglr.guest.statsbook`).
EMPTY_STATS: dict[str, Any] = {
    "rounds": 0,
    "evicted": {kind: {"count": 0, "bytes": 0} for kind in (lru.IMAGE, lru.VOLUME, lru.CACHE)},
    "failures": 0,
    "last_run": None,
    "last_failure": None,
    "last_error": None,
}


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else repr(exc)


def record_round(
    stats: statsbook.Stats, now: float, done: Iterable[Evicted] = (), error: str | None = None
) -> None:
    """Count one round in ``stats``: each removal by kind (count and bytes), each item
    that could not be removed as a failure; ``error``: the round itself failed (it may
    not have measured: ``last_run`` is only set by a round that did)."""
    statsbook.add(stats, "rounds")
    for item in done:
        if item.error is None:
            statsbook.add(stats, "evicted", item.item.kind, "count")
            statsbook.add(stats, "evicted", item.item.kind, "bytes", amount=item.item.size)
        else:
            statsbook.add(stats, "failures")
            stats["last_failure"] = now
            stats["last_error"] = f"{item.item.kind} {item.item.label}: {item.error}"
    if error is None:
        stats["last_run"] = now
    else:
        statsbook.add(stats, "failures")
        stats["last_failure"] = now
        stats["last_error"] = error


def save_stats(stats: statsbook.Stats, path: Path, log: Log) -> None:
    """Write the counters; a failure is said (once, by the caller's log), not fatal."""
    try:
        statsbook.save(path, stats)
    except OSError as exc:
        log(f"could not write {path}: {exc.strerror or exc}")


class Watcher(threading.Thread):
    """Follows the event stream, books uses, wakes the evictor; reconnects."""

    def __init__(self, book: LastUse, inventory: Inventory, wake: threading.Event, log: Log):
        super().__init__(daemon=True, name="pipglr-events")
        self.book, self.inventory, self.wake, self.log = book, inventory, wake, log

    def events(self) -> Iterable[Mapping[str, Any]]:
        """The event stream from the newest booked use on (replays what was missed)."""
        since = int(self.book.latest()) or None
        return self.inventory.client.events(since=since, decode=True)  # type: ignore[no-untyped-call,no-any-return]

    def run(self) -> None:
        while True:
            try:
                for event in self.events():
                    if book_uses(self.book, self.inventory, event):
                        self.wake.set()
                    self.book.save()
            except Exception as exc:  # noqa: BLE001 - API restarted: follow it again
                self.log(f"event stream ended ({str(exc).splitlines()[0] if str(exc) else exc!r})")
            time.sleep(2)
            self.wake.set()  # what happened meanwhile is caught by a check


def _once(log: Log) -> Log:
    """``log`` without repeating the line it wrote last (a cap that cannot be met would
    otherwise say so at every event)."""
    last: list[str] = []

    def write(line: str) -> None:
        if last != [line]:
            last[:] = [line]
            log(line)

    return write


def serve(
    image_threshold: str, log: Log, stats_path: Path = Path(str(layout.EVICTOR_STATS))
) -> None:
    """The service: book uses and evict until stopped."""
    from podman import PodmanClient

    log = _once(log)
    settings = load_settings(image_threshold, running=False)
    # What it goes by, for the report (its unit may add to the container's settings).
    write_env(own_env(), RUNNING_FILE)
    stats = statsbook.load(stats_path, EMPTY_STATS)
    save_stats(stats, stats_path, log)  # the exporter sees the counters from the start
    if not settings.enabled:
        log("evictor disabled (PIPGLR_EVICTOR=off): the storage is only pruned by the timer")
        return
    client = PodmanClient(base_url=f"unix://{layout.SOCKET_PATH}")
    inventory = Inventory(client)
    book = LastUse(book_path())
    wake = threading.Event()
    log(
        f"evictor: cap {settings.threshold.text}, min age {settings.min_age:g} s, "
        f"cache cap {settings.cache_threshold.text if settings.cache_threshold else 'none'}, "
        f"keep {' '.join(p.pattern for p in settings.keep)}"
    )
    Watcher(book, inventory, wake, log).start()
    wake.set()
    while True:
        wake.wait(settings.interval)
        time.sleep(SETTLE)
        wake.clear()
        check_once(inventory, book, settings, stats, stats_path, log)


def check_once(
    inventory: Inventory,
    book: LastUse,
    settings: Settings,
    stats: statsbook.Stats,
    stats_path: Path,
    log: Log,
) -> None:
    """One round of the service: evict, save the book, count it in ``stats`` and
    write them; an error is said and counted, and the service goes on."""
    now = time.time()
    try:
        done = evict(inventory, book, settings, now, log)
        book.save()
        record_round(stats, now, done)
    except Exception as exc:  # noqa: BLE001 - keep serving; the next check retries
        log(f"check failed: {_first_line(exc)}")
        record_round(stats, now, error=_first_line(exc))
    save_stats(stats, stats_path, log)
