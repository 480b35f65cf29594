"""``storage-report [--json]``: what the nested storage holds and what goes next.

Run as user podman (``pipglr storage`` on the host does it through ``podman exec``):
the usage per kind against the cap, and every image, executor volume and cache
directory with its size, last use and either why it stays or its place in the
eviction order. Runs in the image.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pipglr import layout
from pipglr.guest import lru
from pipglr.guest.evictor import Settings, load_settings
from pipglr.guest.inventory import Inventory, Usage
from pipglr.guest.lastuse import LastUse, book_path


def summary(usage: Usage, settings: Settings) -> dict[str, Any]:
    """Usage per kind against the caps: the report's head, and what the metrics
    exporter serves (:mod:`pipglr.guest.metricfacts`), so both always agree."""
    policy = settings.policy(usage.filesystem_size)
    return {
        "enabled": settings.enabled,
        "threshold": {"text": settings.threshold.text, "bytes": policy.threshold},
        "cache_threshold": (
            {"text": settings.cache_threshold.text, "bytes": policy.cache_threshold}
            if settings.cache_threshold
            else None
        ),
        "usage": {
            "images": usage.images,
            "volumes": usage.volumes,
            "cache": usage.cache,
            "total": usage.total,
            "filesystem_size": usage.filesystem_size,
            "filesystem_free": usage.filesystem_free,
        },  # fmt: skip
    }


def report(inventory: Inventory, book: LastUse, settings: Settings, now: float) -> dict[str, Any]:
    """The report as data (what ``--json`` prints)."""
    usage: Usage = inventory.usage()
    policy = settings.policy(usage.filesystem_size)
    items = inventory.items(book, inventory.uses())
    ranked = lru.rank(items, now, policy)
    upcoming = {i.key for i in lru.plan(items, usage.total, usage.cache, now, policy)}
    order = {r.item.key: n for n, r in enumerate(r for r in ranked if r.protected is None)}
    return {
        **summary(usage, settings),
        "min_age_seconds": settings.min_age,
        "keep": [p.pattern for p in settings.keep],
        "items": [
            {
                "kind": r.item.kind,
                "id": r.item.key,
                "names": list(r.item.names),
                "size": r.item.size,
                "last_used": r.last_used,
                "protected": r.protected,
                "eviction_rank": order.get(r.item.key),
                "evict_next": r.item.key in upcoming,
            }  # fmt: skip
            for r in ranked
        ],
    }


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value, unit = float(n), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"


def render(data: dict[str, Any], now: float) -> str:
    """The report for people."""
    u, cap = data["usage"], data["threshold"]
    cache_cap = data["cache_threshold"]
    lines = [
        f"nested storage: {_size(u['total'])} of cap {_size(cap['bytes'])} ({cap['text']})"
        f"{'' if data['enabled'] else ' — evictor disabled'}",
        f"  images {_size(u['images'])}, executor volumes {_size(u['volumes'])}, cache "
        f"{_size(u['cache'])}" + (f" (cap {_size(cache_cap['bytes'])})" if cache_cap else ""),
        f"  filesystem {_size(u['filesystem_size'])}, {_size(u['filesystem_free'])} free; "
        f"min age {data['min_age_seconds']:g} s; keep {' '.join(data['keep'])}",
        "",
        f"{'KIND':<7} {'NAME':<48} {'SIZE':>10} {'LAST USE':>10}  STATUS",
    ]
    for item in data["items"]:
        age = max(0.0, now - item["last_used"])
        ago = f"{age / 3600:.1f} h ago" if age >= 3600 else f"{age / 60:.0f} min ago"
        status = item["protected"] or f"evictable #{item['eviction_rank'] + 1}"
        if item["evict_next"]:
            status += ", next to go"
        name = item["names"][0] if item["names"] else item["id"][:12]
        lines.append(f"{item['kind']:<7} {name:<48} {_size(item['size']):>10} {ago:>10}  {status}")
    return "\n".join(lines)


def main(args: list[str], image_threshold: str) -> str:
    """The report as text, or as JSON with ``--json``."""
    from podman import PodmanClient

    now = time.time()
    with PodmanClient(base_url=f"unix://{layout.SOCKET_PATH}") as client:
        data = report(Inventory(client), LastUse(book_path()), load_settings(image_threshold), now)
    return json.dumps(data, indent=2) if "--json" in args else render(data, now)
