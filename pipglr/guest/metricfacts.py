"""``metrics-facts [--json]``: the monitoring facts, gathered as data.

One function, :func:`facts`, returns what the exporter (:mod:`pipglr.guest.metrics`)
serves and what ``pipglr status --json`` prints: the nested storage against its caps
(the same computation as ``pipglr storage``: :func:`pipglr.guest.storagereport.summary`),
running nested containers (a count, no names), the nested API's ping, what root's
collector wrote (units, egress-guard drops, the runner's metrics endpoint), the
evictor's and the prune's counters, the CA certificates' expiry, and the image's
build facts. Every source may be absent or malformed: that part is unknown (``None``)
or zero (the counters), never an error. Run as user podman; reads, writes nothing.
Runs in the image.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipglr import __version__, layout
from pipglr.errors import PipglrError
from pipglr.guest import evictor, health, lru, storagereport
from pipglr.guest.inventory import Inventory
from pipglr.settings import IMAGE_FACTS_PATH, load_image_facts

#: How long the storage facts (nested API plus ``du`` of the cache) are reused.
STORAGE_TTL = 10.0
#: The collector writes every 15 s: older facts say nothing about now (unknown).
COLLECTOR_STALE_SECONDS = 60.0
#: Timeouts of the nested API's ping and of its other calls, in seconds.
PING_TIMEOUT = 3.0
API_TIMEOUT = 20
EVICTED_KINDS = (lru.IMAGE, lru.VOLUME, lru.CACHE)
PRUNED_KINDS = ("containers", "images", "networks", "volumes")


def _client() -> Any:
    from podman import PodmanClient

    return PodmanClient(base_url=f"unix://{layout.SOCKET_PATH}", timeout=API_TIMEOUT)


def _ping() -> None:
    health.ping(timeout=PING_TIMEOUT)


@dataclass(frozen=True)
class Sources:
    """Where the facts come from (the image's places by default; tests pass fakes).
    ``client`` makes a podman-py client (a context manager); ``ping`` raises unless
    the nested API answers; ``settings`` gives the evictor's settings from the image's
    threshold; ``clock`` is the epoch time."""

    client: Callable[[], Any] = _client
    inventory: Callable[[Any], Inventory] = Inventory
    settings: Callable[[str], evictor.Settings] = evictor.load_settings
    ping: Callable[[], None] = _ping
    clock: Callable[[], float] = time.time
    collected: Path = Path(str(layout.COLLECTED_FACTS))
    evictor_stats: Path = Path(str(layout.EVICTOR_STATS))
    prune_stats: Path = Path(str(layout.PRUNE_STATS))
    cas: Path = Path(str(layout.CA_FACTS))
    image_facts: Path = Path(IMAGE_FACTS_PATH)


@dataclass
class StorageCache:
    """The storage facts of the last :data:`STORAGE_TTL` seconds; one computation at a
    time (concurrent scrapes wait for it instead of running ``du`` twice)."""

    ttl: float = STORAGE_TTL
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _kept: tuple[float, dict[str, Any]] | None = None

    def get(self, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            if self._kept is None or self.clock() - self._kept[0] >= self.ttl:
                self._kept = (self.clock(), compute())
            return self._kept[1]


def _line(exc: BaseException) -> str:
    """An exception as one line."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _json(path: Path) -> Any:
    """The JSON at ``path``; None when absent or malformed."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _count(value: Any) -> int:
    """A counter's value: a non-negative number, else 0."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return int(value)
    return 0


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _counts(value: Any, *keys: str) -> dict[str, int]:
    """``keys`` of a mapping as counters (0 when absent)."""
    return {k: _count(_mapping(value).get(k)) for k in keys}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def evictor_stats(raw: Any) -> dict[str, Any]:
    """The evictor's counters (``layout.EVICTOR_STATS``); absent parts are zero."""
    raw = _mapping(raw)
    evicted = _mapping(raw.get("evicted"))
    kinds = [*EVICTED_KINDS, *sorted(k for k in evicted if k not in EVICTED_KINDS)]
    return {
        "rounds": _count(raw.get("rounds")),
        "evicted": {k: _counts(evicted.get(k), "count", "bytes") for k in kinds},
        "failures": _count(raw.get("failures")),
        "last_run": _epoch(raw.get("last_run")),
        "last_failure": _epoch(raw.get("last_failure")),
        "last_error": _text(raw.get("last_error")),
    }


def prune_stats(raw: Any) -> dict[str, Any]:
    """The prune's counters (``layout.PRUNE_STATS``); absent parts are zero."""
    raw = _mapping(raw)
    removed = _mapping(raw.get("removed"))
    kinds = [*PRUNED_KINDS, *sorted(k for k in removed if k not in PRUNED_KINDS)]
    return {
        "runs": _count(raw.get("runs")),
        "removed": {k: _count(removed.get(k)) for k in kinds},
        "bytes": _count(raw.get("bytes")),
        "failures": _count(raw.get("failures")),
        "last_run": _epoch(raw.get("last_run")),
        "last_failure": _epoch(raw.get("last_failure")),
    }


def collected(raw: Any, now: float) -> dict[str, Any]:
    """What root's collector wrote (``layout.COLLECTED_FACTS``): ``units``, ``guard``
    and ``runner_metrics`` are None (unknown) when absent, malformed or older than
    :data:`COLLECTOR_STALE_SECONDS`; ``last_run`` is the collector's time, if any."""
    raw = _mapping(raw)
    last_run = _epoch(raw.get("time"))
    unknown = {"last_run": last_run, "fresh": False, "units": None, "guard": None,
               "runner_metrics": None}  # fmt: skip
    if last_run is None or now - last_run > COLLECTOR_STALE_SECONDS:
        return unknown
    units = {
        str(name): {
            "active": _text(_mapping(unit).get("active")),
            "sub": _text(_mapping(unit).get("sub")),
            "restarts": _count(_mapping(unit).get("restarts")),
            "since": _epoch(_mapping(unit).get("since")),
        }
        for name, unit in _mapping(raw.get("units")).items()
        if isinstance(unit, dict)
    }
    guard = raw.get("guard")
    runner = raw.get("runner_metrics")
    return {
        **unknown,
        "fresh": True,
        "units": units if isinstance(raw.get("units"), dict) else None,
        "guard": (
            {
                "enabled": _mapping(guard).get("enabled") is True,
                "drops": {
                    str(cls): _counts(d, "packets", "bytes")
                    for cls, d in _mapping(_mapping(guard).get("drops")).items()
                },
            }
            if isinstance(guard, dict)
            else None
        ),
        "runner_metrics": (
            {
                "ok": _mapping(runner).get("ok") is True,
                "error": _text(_mapping(runner).get("error")),
                "address": _text(_mapping(runner).get("address")),
            }
            if isinstance(runner, dict)
            else None
        ),
    }


def runner_up(units: Mapping[str, Any] | None, now: float) -> bool | None:
    """The runner unit is active, running and settled (started at least
    :data:`health.SETTLED_SECONDS` ago, as the health check asks); None: unknown."""
    if units is None or layout.RUNNER_SERVICE_UNIT not in units:
        return None
    unit = units[layout.RUNNER_SERVICE_UNIT]
    since = unit["since"]
    return (
        (unit["active"], unit["sub"]) == ("active", "running")
        and since is not None
        and now - since >= health.SETTLED_SECONDS
    )


def certificates(raw: Any) -> list[dict[str, Any]]:
    """The CA certificates the network unit described (name, subject, expiry,
    fingerprint); malformed entries are left out."""
    found = []
    for entry in raw if isinstance(raw, list) else []:
        entry = _mapping(entry)
        name, not_after = _text(entry.get("name")), _epoch(entry.get("not_after"))
        if name is not None and not_after is not None:
            found.append({
                "name": name, "subject": _text(entry.get("subject")) or "",
                "not_after": not_after, "fingerprint": _text(entry.get("fingerprint")),
            })  # fmt: skip
    return found


def storage(client: Any, sources: Sources, image_threshold: str) -> dict[str, Any]:
    """Usage per kind against the caps, as ``pipglr storage --json`` shows them."""
    usage = sources.inventory(client).usage()
    return storagereport.summary(usage, sources.settings(image_threshold))


def image_facts(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The image's build facts (``settings.IMAGE_FACTS_PATH``) and its storage
    threshold, as ``storage-report`` reads it; (None, None) when unreadable."""
    try:
        text = path.read_text()
        return json.loads(text), load_image_facts(text).storage_threshold
    except (OSError, ValueError, TypeError, PipglrError):
        return None, None


def _storage_or_error(client: Any, sources: Sources, threshold: str) -> dict[str, Any]:
    try:
        return {"storage": storage(client, sources, threshold), "error": None}
    except Exception as exc:  # noqa: BLE001 - unknown this time; the next scrape retries
        return {"storage": None, "error": f"storage: {_line(exc)}"}


def facts(sources: Sources | None = None, cache: StorageCache | None = None) -> dict[str, Any]:
    """Every monitoring fact as JSON-able data (see the module's docstring). Unknown
    parts are None, with an ``error`` beside them saying why; ``cache`` keeps the
    storage part for a while (the exporter's scrapes)."""
    sources = sources or Sources()
    now = sources.clock()
    image, threshold = image_facts(sources.image_facts)
    nested: dict[str, Any] = {"api_up": False, "error": None, "containers_running": None}
    stored: dict[str, Any] = {"storage": None, "error": None}
    try:
        sources.ping()
        nested["api_up"] = True
    except Exception as exc:  # noqa: BLE001 - any failure means down; say which
        nested["error"] = stored["error"] = f"nested API: {_line(exc)}"
    if nested["api_up"]:
        try:
            with sources.client() as client:
                if threshold is None:
                    stored["error"] = f"image facts {sources.image_facts}: absent or malformed"
                else:
                    compute = functools.partial(_storage_or_error, client, sources, threshold)
                    stored = compute() if cache is None else cache.get(compute)
                running = client.containers.list(filters={"status": "running"})
                nested["containers_running"] = len(running)
        except Exception as exc:  # noqa: BLE001 - the API went while asked
            nested["error"] = f"nested API: {_line(exc)}"
    found = collected(_json(sources.collected), now)
    return {
        "time": now,
        "version": __version__,
        "image": image,
        "storage": stored["storage"],
        "storage_error": stored["error"],
        "nested": nested,
        "runner": {"up": runner_up(found["units"], now)},
        "collector": found,
        "evictor": evictor_stats(_json(sources.evictor_stats)),
        "prune": prune_stats(_json(sources.prune_stats)),
        "cas": certificates(_json(sources.cas)),
    }


def main(args: list[str], sources: Sources | None = None) -> str:
    """The facts as JSON (``--json``), else as the exporter's text."""
    data = facts(sources)
    if "--json" in args:
        return json.dumps(data, indent=2, sort_keys=True)
    from pipglr.guest import metrics

    return metrics.exposition(data).decode().rstrip("\n")
