"""``images-list [--json]``: the maintained job images (:mod:`pipglr.guest.maintained`)
and their state, as user podman (``pipglr images list`` runs it through ``podman exec``).

Per definition, in build order (parents first): its name, image (``localhost/NAME:latest``),
the image's id and when it was built (``Created``; null/``-`` when not built yet), the
external bases its chain stands on, its last use from the evictor's book
(:mod:`pipglr.guest.lastuse`; null/``-`` when none was booked) and why it is due
(:func:`pipglr.chain.plan`'s reasons; empty when up to date).
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

from podman.errors import ImageNotFound, NotFound

from pipglr import chain
from pipglr.guest import lru, maintained
from pipglr.guest.inventory import epoch
from pipglr.guest.lastuse import LastUse, book_path


def entries(loaded: chain.Chain, client: Any, book: LastUse) -> list[dict[str, Any]]:
    """The list as data (what ``--json`` prints)."""
    lookup = maintained.lookup_in(client)
    due = {s.name: list(s.reasons) for s in chain.plan(loaded, lookup)}
    found = []
    for name in loaded.order:
        image = loaded.definitions[name].image
        try:
            attrs = client.images.get(image).attrs
        except (NotFound, ImageNotFound):  # podman-py: not a NotFound
            attrs = {}
        image_id = str(attrs.get("Id") or "") or None
        found.append({
            "name": name,
            "image": image,
            "id": image_id,
            "built": (epoch(attrs.get("Created")) or None) if attrs else None,
            "bases": list(maintained.external_bases(loaded, name)),
            "last_use": book.get(lru.IMAGE, image_id) if image_id else None,
            "due": due[name],
        })  # fmt: skip
    return found


def _when(value: float | None) -> str:
    if not value:
        return "-"
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def render(items: list[dict[str, Any]]) -> str:
    """The list for people: one line per image, its due reasons below it."""
    if not items:
        return "no maintained images: add some with `pipglr images add DIR`"
    lines = [f"{'NAME':<24} {'ID':<12} {'BUILT (UTC)':<16} {'LAST USE (UTC)':<16} BASE"]
    for item in items:
        lines.append(
            f"{item['name']:<24} {(item['id'] or '-')[:12]:<12} {_when(item['built']):<16} "
            f"{_when(item['last_use']):<16} {', '.join(item['bases']) or '-'}"
        )
        lines += [f"    due: {reason}" for reason in item["due"]]
    return "\n".join(lines)


def main(args: list[str], client: Any = None) -> str:
    """The list as text, or as JSON with ``--json``."""
    loaded = maintained.load()
    items: list[dict[str, Any]] = []
    if loaded is not None:
        with maintained.connected(client) as podman:
            items = entries(loaded, podman, LastUse(book_path()))
    if "--json" in args:
        return json.dumps({"generated": time.time(), "images": items}, indent=2)
    return render(items)
